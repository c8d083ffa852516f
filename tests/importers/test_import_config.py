"""`mailcove import sendmail` and `mailcove import dovecot` against sample /etc trees written here,
through the real CLI, into a temporary data dir and config file."""

from __future__ import annotations

import json
import smtplib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mailcove.cli.main import root
from mailcove.config import load_settings
from mailcove_testing import ServerProcess

# The seed's files (its section 4), with the other entries a stock Rocky install has.
LOCAL_HOST_NAMES = """\
# local-host-names - include all aliases for your machine here.
rocky9-3
hamap.local
mx1.hamap.local
"""

ACCESS = """\
# Check the /usr/share/doc/sendmail/README.cf file for a description
# of the format of this file. (search for access_db in that file)
Connect:localhost.localdomain           RELAY
Connect:localhost                       RELAY
Connect:127.0.0.1                       RELAY
Connect:10.0.0                    RELAY
Connect:10.0.0.0/255.255.255.0    RELAY
Connect:hamap.local               RELAY
Connect:mx1.hamap.local           RELAY
Connect:rocky9-3                  RELAY
From:spammer@example.com          ERROR:5.7.1:550 Go away
To:partner.example                RELAY
Spam:abuse@                       FRIEND
"""

ALIASES = """\
#
#  Aliases in this file will NOT be expanded in the header from
#  Mail, but WILL be visible over networks or from /bin/mail.

# Basic system aliases -- these MUST be present.
mailer-daemon:	postmaster
postmaster:	root

# General redirections for pseudo accounts.
bin:		root
daemon:		root

# Person who should get root's mail
root:		a
team:		a, b,
		far@example.net
procmail:	"|/usr/bin/procmail -f-", b
archive:	/var/spool/archive
list:		:include:/etc/mail/list.txt
"""

VIRTUSERTABLE = """\
info@hamap.local      b
@shop.example         a
sales@shop.example    far@example.net
@alias.example        %1@hamap.local
nobody@hamap.local    error:nouser No such user here
@remote.example       %1@elsewhere.example
"""

MAILERTABLE = """\
partner.example     esmtp:[mail.partner.example]
.lab.test           relay:[10.0.0.99]:2525
v6.example          esmtp:[IPv6:2001:db8::1]
local.example       local:a
"""

RELAY_DOMAINS = "otherlan.example\n192.168.5\n"

DOVECOT_CONF = """\
## Dovecot configuration file
# Enable installed protocols
!include_try /usr/share/dovecot/protocols.d/*.protocol
protocols = imap pop3    # 24행 주석 제거
listen = *               # 30행 주석 제거
#base_dir = /var/run/dovecot/
dict {
  #quota = mysql:/etc/dovecot/dovecot-dict-sql.conf.ext
}
!include conf.d/*.conf
!include_try local.conf
"""

CONF_D = {
    "10-auth.conf": "#disable_plaintext_auth = yes\ndisable_plaintext_auth = no    # 평문 인증 허용\n"
    "auth_mechanisms = plain\n!include auth-system.conf.ext\n",
    "auth-system.conf.ext": "passdb {\n  driver = pam\n}\nuserdb {\n  driver = passwd\n}\n",
    "10-mail.conf": "mail_location = mbox:~/mail:INBOX=/var/mail/%u\nnamespace inbox {\n  inbox = yes\n}\n"
    "mbox_write_locks = fcntl\n",
    "10-master.conf": """\
service imap-login {
  inet_listener imap {
    port = 143
  }
  inet_listener imaps {
    #port = 993
    #ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 110
  }
  inet_listener pop3s {
    #port = 995
    #ssl = yes
  }
}
service lmtp {
  unix_listener lmtp {
    #mode = 0666
  }
}
""",
    "10-ssl.conf": "ssl = no    # SSL 비활성화 (테스트용)\nssl_cert = </etc/pki/dovecot/certs/dovecot.pem\n"
    "ssl_key = </etc/pki/dovecot/private/dovecot.pem\nssl_cipher_list = PROFILE=SYSTEM\n",
}

USER_CONFIG = """\
# the administrator's own file: comments and keys must survive the import
hostname = "mx1.hamap.local"

[auth]
# cheap hashes for the lab
argon2_time_cost = 1
argon2_memory_kib = 1024
"""


def write_etc(base: Path, *, access: str = ACCESS) -> Path:
    """A copy of the seed machine's /etc under `base` (base/etc/mail, base/etc/aliases, ...)."""
    etc = base / "etc"
    mail = etc / "mail"
    mail.mkdir(parents=True)
    (mail / "local-host-names").write_text(LOCAL_HOST_NAMES)
    (mail / "access").write_text(access)
    (mail / "virtusertable").write_text(VIRTUSERTABLE)
    (mail / "mailertable").write_text(MAILERTABLE)
    (mail / "relay-domains").write_text(RELAY_DOMAINS)
    (mail / "sendmail.mc").write_text("DAEMON_OPTIONS(`Port=smtp, Name=MTA')dnl\n")
    (etc / "aliases").write_text(ALIASES)
    dove = etc / "dovecot"
    (dove / "conf.d").mkdir(parents=True)
    (dove / "dovecot.conf").write_text(DOVECOT_CONF)
    for name, text in CONF_D.items():
        (dove / "conf.d" / name).write_text(text)
    # What the absolute !include_try finds on a Rocky machine, under --root.
    proto = base / "usr/share/dovecot/protocols.d"
    proto.mkdir(parents=True)
    (proto / "imapd.protocol").write_text("protocols = $protocols imap\n")
    (proto / "pop3d.protocol").write_text("protocols = $protocols pop3\n")
    return etc


@dataclass
class Cli:
    data: Path
    config: Path | None

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        pre = ["--config", str(self.config)] if self.config else []
        r = CliRunner().invoke(root, [*pre, "--data", str(self.data), *args], input=input, catch_exceptions=False)
        assert r.exit_code == code, r.output
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").output)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return write_etc(tmp_path / "old")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    config = tmp_path / "mailcove.toml"
    config.write_text(USER_CONFIG)
    return Cli(tmp_path / "data", config)


def listing(cli: Cli) -> dict[str, Any]:
    return {
        "domains": cli.json("domain", "list"),
        "aliases": cli.json("alias", "list"),
        "rules": cli.json("relay", "list"),
    }


def not_imported(report: dict[str, Any]) -> dict[tuple[str, int], str]:
    """(file name, line) -> the reasons given for it, joined."""
    out: dict[tuple[str, int], str] = {}
    for u in report["not_imported"]:
        key = (Path(u["file"]).name, u["line"])
        out[key] = f"{out[key]} | {u['reason']}" if key in out else u["reason"]
    return out


# --- sendmail ----------------------------------------------------------------------------------


def test_sendmail_seed_import(cli: Cli, etc: Path) -> None:
    r = cli("import", "sendmail", str(etc / "mail"))
    assert "Not imported" in r.output
    state = listing(cli)
    assert {(d["name"], d["alias_of"]) for d in state["domains"]} == {
        ("hamap.local", None),
        ("rocky9-3", "hamap.local"),
        ("mx1.hamap.local", "hamap.local"),
        ("alias.example", "hamap.local"),  # virtusertable @alias.example %1@hamap.local
        ("shop.example", None),  # a virtual domain: only what virtusertable lists
    }
    aliases = {a["source"]: a["targets"] for a in state["aliases"]}
    assert aliases["postmaster@hamap.local"] == ["root@hamap.local"]
    assert aliases["root@hamap.local"] == ["a@hamap.local"]
    # continuation line, and the mappable half of a line with a program target
    assert aliases["team@hamap.local"] == ["a@hamap.local", "b@hamap.local", "far@example.net"]
    assert aliases["procmail@hamap.local"] == ["b@hamap.local"]
    assert "archive@hamap.local" not in aliases and "list@hamap.local" not in aliases
    assert aliases["info@hamap.local"] == ["b@hamap.local"]
    assert aliases["@shop.example"] == ["a@hamap.local"]
    assert aliases["sales@shop.example"] == ["far@example.net"]
    rules = {(r["tag"], r["key"]): r for r in state["rules"]}
    # 10.0.0 and 10.0.0.0/255.255.255.0 are one network: one rule
    assert rules[("Connect", "10.0.0.0/24")]["action"] == "RELAY"
    assert rules[("Connect", "hamap.local")]["action"] == "RELAY"
    assert rules[("From", "spammer@example.com")]["reply"] == "550 5.7.1 Go away"
    assert rules[("To", "partner.example")]["action"] == "RELAY"
    assert rules[("To", "nobody@hamap.local")]["reply"] == "550 5.1.1 No such user here"
    assert rules[("Connect", "otherlan.example")]["action"] == "RELAY"  # relay-domains: clients...
    assert rules[("To", "otherlan.example")]["action"] == "RELAY"  # ... and recipients
    assert rules[("Connect", "192.168.5.0/24")]["action"] == "RELAY"
    assert ("To", "192.168.5.0/24") not in rules
    # mailertable -> [transport], merged into the user's file with its comments kept
    text = cli.config.read_text()  # type: ignore[union-attr]
    assert text.startswith(USER_CONFIG)
    assert tomllib.loads(text)["transport"] == {
        "partner.example": "mail.partner.example:25",
        ".lab.test": "10.0.0.99:2525",
        "v6.example": "[2001:db8::1]:25",
    }
    assert load_settings(cli.config).transport["v6.example"] == "[2001:db8::1]:25"


def test_sendmail_unmapped_lines_have_file_and_line(cli: Cli, etc: Path) -> None:
    report = cli.json("import", "sendmail", str(etc / "mail"))
    skipped = not_imported(report)
    assert "unsupported tag Spam" in skipped[("access", 13)]
    assert "program" in skipped[("aliases", 17)]
    assert "file target" in skipped[("aliases", 18)]
    assert ":include:" in skipped[("aliases", 19)]
    assert "remote domain" in skipped[("virtusertable", 6)]
    assert "local" in skipped[("mailertable", 4)]
    assert ("sendmail.mc", 0) in skipped  # a file not read is named too
    # the text form says FILE:LINE
    r = cli("import", "sendmail", str(etc / "mail"), "--dry-run")
    assert f"{etc / 'aliases'}:17: " in r.output
    assert f"{etc / 'mail' / 'access'}:13: " in r.output


def test_sendmail_dry_run_changes_nothing(cli: Cli, etc: Path) -> None:
    before = cli.config.read_bytes()  # type: ignore[union-attr]
    r = cli("import", "sendmail", str(etc / "mail"), "--dry-run")
    assert "dry run" in r.output
    assert "+ hamap.local" in r.output
    assert '+ transport."partner.example" = "mail.partner.example:25"' in r.output
    assert "would be added" in r.output
    assert not cli.data.exists()  # not even the data directory
    assert cli.config.read_bytes() == before  # type: ignore[union-attr]
    # and on an existing directory: the dry run reports the difference and leaves it alone
    cli("--create", "domain", "add", "hamap.local")
    state = listing(cli)
    report = cli.json("import", "sendmail", str(etc / "mail"), "--dry-run")
    assert report["dry_run"] is True
    statuses = {(c["section"], c["item"]): c["status"] for c in report["changes"]}
    assert statuses[("domains", "hamap.local")] == "unchanged"
    assert statuses[("domains", "rocky9-3 (alias of hamap.local)")] == "add"
    assert listing(cli) == state
    assert cli.config.read_bytes() == before  # type: ignore[union-attr]


def test_sendmail_reimport_is_idempotent(cli: Cli, etc: Path) -> None:
    cli("import", "sendmail", str(etc / "mail"))
    state = listing(cli)
    config = cli.config.read_bytes()  # type: ignore[union-attr]
    report = cli.json("import", "sendmail", str(etc / "mail"))
    assert {c["status"] for c in report["changes"]} == {"unchanged"}
    assert listing(cli) == state
    assert cli.config.read_bytes() == config  # type: ignore[union-attr]
    r = cli("import", "sendmail", str(etc / "mail"))
    assert "0 added, 0 changed" in r.output
    # a changed access line is an update, reported with the old value; nothing is duplicated
    (etc / "mail" / "access").write_text(ACCESS.replace("Connect:10.0.0                    RELAY",
                                                        "Connect:10.0.0                    REJECT"))
    report = cli.json("import", "sendmail", str(etc / "mail"))
    changed = [c for c in report["changes"] if c["status"] != "unchanged"]
    assert [(c["section"], c["status"], c["detail"]) for c in changed] == [
        ("access", "change", "was: Connect:10.0.0 RELAY")
    ]
    # the second spelling of the same network now disagrees with the first: reported, not imported
    assert "already has a rule for 10.0.0.0/24" in not_imported(report)[("access", 7)]
    assert len(listing(cli)["rules"]) == len(state["rules"])


def test_sendmail_existing_objects_are_kept(cli: Cli, etc: Path) -> None:
    """Import adds; it never deletes what the administrator made, and a conflict is reported."""
    cli("--create", "domain", "add", "rocky9-3")  # a domain of its own, not an alias of hamap.local
    cli("domain", "add", "hamap.local")
    cli("alias", "add", "root@hamap.local", "admin@example.net")
    report = cli.json("import", "sendmail", str(etc / "mail"))
    assert "already exists as a domain of its own" in not_imported(report)[("local-host-names", 2)]
    aliases = {a["source"]: a["targets"] for a in cli.json("alias", "list")}
    assert aliases["root@hamap.local"] == ["admin@example.net", "a@hamap.local"]


def test_sendmail_options(tmp_path: Path, etc: Path) -> None:
    """--aliases PATH and --primary; no config file at all: the TOML is printed, not written."""
    other = tmp_path / "aliases.other"
    other.write_text("staff: a\n")
    cli = Cli(tmp_path / "d2", None)
    r = cli("import", "sendmail", str(etc / "mail"), "--aliases", str(other), "--primary", "mx1.hamap.local")
    aliases = {a["source"]: a["targets"] for a in cli.json("alias", "list")}
    assert aliases == {
        "staff@mx1.hamap.local": ["a@mx1.hamap.local"],
        "info@mx1.hamap.local": ["b@mx1.hamap.local"],  # hamap.local is an alias of mx1.hamap.local now
        "@shop.example": ["a@mx1.hamap.local"],
        "sales@shop.example": ["far@example.net"],
    }
    assert "no config file" in r.output
    assert '[transport]\n"partner.example" = "mail.partner.example:25"' in r.output
    # --write-config: a new file, with the data dir the import used pinned in it
    out = tmp_path / "new.toml"
    cli("import", "sendmail", str(etc / "mail"), "--write-config", str(out))
    settings = load_settings(out)
    assert settings.data_dir == (tmp_path / "d2").resolve()
    assert settings.transport[".lab.test"] == "10.0.0.99:2525"


def test_sendmail_missing_directory_and_files(tmp_path: Path, cli: Cli) -> None:
    r = cli("import", "sendmail", str(tmp_path / "nope"), code=1)
    assert "not a directory" in r.output
    (tmp_path / "empty").mkdir()
    r = cli("import", "sendmail", str(tmp_path / "empty"), code=1)
    assert "nothing to import" in r.output


# --- dovecot -----------------------------------------------------------------------------------


def test_dovecot_seed_import(cli: Cli, etc: Path, tmp_path: Path) -> None:
    report = cli.json("import", "dovecot", str(etc / "dovecot"), "--root", str(tmp_path / "old"))
    names = [Path(f).name for f in report["files"]]
    # !include conf.d/*.conf in name order, an include inside an included file, the absolute
    # !include_try under --root; local.conf (include_try) is missing and that is fine
    assert names == ["dovecot.conf", "imapd.protocol", "pop3d.protocol", "10-auth.conf", "auth-system.conf.ext",
                     "10-mail.conf", "10-master.conf", "10-ssl.conf"]
    config = {c["key"]: (c["status"], c["value"]) for c in report["changes"]}
    assert config["tls.enabled"] == ("add", False)
    assert config["auth.allow_plaintext"] == ("add", True)
    # listen = * on the standard ports is mailcove's default: nothing to write
    assert config["listen.imap"] == ("unchanged", None)
    assert config["listen.pop3"] == ("unchanged", None)
    text = cli.config.read_text()  # type: ignore[union-attr]
    assert text.startswith(USER_CONFIG)
    settings = load_settings(cli.config)
    assert settings.tls.enabled is False and settings.auth.allow_plaintext is True
    assert settings.listen.imap is None and settings.listen.pop3 is None
    assert settings.tls.cert is None  # ssl = no: the certificate lines are listed, not imported
    # mail_location: kept for the mail import, as the command to run
    assert report["facts"]["mail_location"] == "mbox:~/mail:INBOX=/var/mail/%u"
    assert report["facts"]["mail_location_source"].endswith("10-mail.conf:1")
    assert any("mailcove import mail USER --location 'mbox:~/mail:INBOX=/var/mail/%u'" in s
               for s in report["next_steps"])
    skipped = not_imported(report)
    assert "ssl = no" in skipped[("10-ssl.conf", 2)]
    assert "ciphers" in skipped[("10-ssl.conf", 4)]
    assert "directory" in skipped[("auth-system.conf.ext", 1)]
    assert "lines 2-4" in skipped[("10-mail.conf", 2)]
    assert "mbox" in skipped[("10-mail.conf", 5)]
    assert "later value" in skipped[("imapd.protocol", 1)]
    # commented-out lines and empty sections (dict, service lmtp) are not settings: not listed
    assert not any(name == "dovecot.conf" for name, _ in skipped)
    assert ("10-master.conf", 19) not in skipped
    # text output: the command to run next
    r = cli("import", "dovecot", str(etc / "dovecot"), "--root", str(tmp_path / "old"))
    assert "mailcove import mail USER --location 'mbox:~/mail:INBOX=/var/mail/%u'" in r.output
    assert "0 added, 0 changed" in r.output


def test_dovecot_dry_run_and_idempotent(cli: Cli, etc: Path, tmp_path: Path) -> None:
    before = cli.config.read_bytes()  # type: ignore[union-attr]
    args = ("import", "dovecot", str(etc / "dovecot"), "--root", str(tmp_path / "old"))
    r = cli(*args, "--dry-run")
    assert "+ tls.enabled = false" in r.output and "+ auth.allow_plaintext = true" in r.output
    assert cli.config.read_bytes() == before  # type: ignore[union-attr]
    assert not cli.data.exists()
    cli(*args)
    after = cli.config.read_bytes()  # type: ignore[union-attr]
    assert after != before
    report = cli.json(*args)
    assert {c["status"] for c in report["changes"]} == {"unchanged"}
    assert cli.config.read_bytes() == after  # type: ignore[union-attr]


def test_dovecot_listeners_tls_and_2_4_names(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "dovecot"
    (d / "conf.d").mkdir(parents=True)
    (d / "dovecot.conf").write_text(
        "protocols = imap lmtp\nlisten = 127.0.0.1, ::1\n!include conf.d/*.conf\n"
    )
    (d / "conf.d" / "10-master.conf").write_text(
        "service imap-login {\n  inet_listener imap {\n    port = 1143\n  }\n"
        "  inet_listener imaps {\n    port = 0\n  }\n  process_min_avail = 4\n}\n"
    )
    (d / "conf.d" / "10-ssl.conf").write_text(
        "ssl = required\nssl_server_cert_file = /etc/ssl/mail.pem\nssl_server_key_file = /etc/ssl/mail.key\n"
        "ssl_min_protocol = TLSv1.3\n"
    )
    (d / "conf.d" / "10-auth.conf").write_text("auth_allow_cleartext = yes\nmail_driver = maildir\n"
                                               "mail_path = ~/Maildir\n")
    report = cli.json("import", "dovecot", str(d))
    settings = load_settings(cli.config)
    assert settings.listen.imap == ["127.0.0.1:1143", "[::1]:1143"]
    assert settings.listen.imaps == []  # port = 0
    assert settings.listen.pop3 == [] and settings.listen.pop3s == []  # not in protocols
    assert (settings.tls.enabled, str(settings.tls.cert), str(settings.tls.key)) == (
        True, "/etc/ssl/mail.pem", "/etc/ssl/mail.key")
    assert settings.tls.min_version == "TLSv1.3"
    assert settings.auth.allow_plaintext is False  # ssl = required wins over auth_allow_cleartext
    assert report["facts"]["mail_location"] == "maildir:~/Maildir"
    skipped = not_imported(report)
    assert "LMTP" in skipped[("dovecot.conf", 1)]
    assert "login service" in skipped[("10-master.conf", 8)]


def test_dovecot_syntax_problems_are_reported(cli: Cli, tmp_path: Path) -> None:
    d = tmp_path / "dovecot"
    d.mkdir()
    (d / "dovecot.conf").write_text(
        "!include missing.conf\n"
        "protocols = imap\n"
        "this is not dovecot syntax\n"
        "}\n"
        "listen = 127.0.0.1 \\\n  , ::1\n"
        "protocol imap {\n  mail_max_userip_connections = 20\n"
    )
    report = cli.json("import", "dovecot", str(d / "dovecot.conf"))  # a file path works too
    skipped = not_imported(report)
    assert skipped[("missing.conf", 0)] == "file not found"
    assert "not a setting" in skipped[("dovecot.conf", 3)]
    assert "no section open" in skipped[("dovecot.conf", 4)]
    assert "not closed" in skipped[("dovecot.conf", 7)]
    assert load_settings(cli.config).listen.imap == ["127.0.0.1:143", "[::1]:143"]  # continuation line


def test_import_help_lists_both(cli: Cli) -> None:
    r = cli("import", "--help")
    assert "sendmail" in r.output and "dovecot" in r.output


# --- a live server with the imported rules -------------------------------------------------------

LIVE_ACCESS = """\
Connect:127.0.0                   RELAY
Connect:127.0.0.0/255.255.255.0   RELAY
"""
MSG = b"From: x@hamap.local\r\nTo: far@example.net\r\nSubject: relay\r\n\r\nhello\r\n"


def test_imported_rules_on_a_live_server(serve_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """The seed's LAN rule with loopback standing in for 10.0.0.x: 127.0.0.2 is in the LAN and
    relays, 127.0.1.2 is not and is refused; and the Dovecot lab settings take effect."""
    etc = write_etc(tmp_path / "old", access=LIVE_ACCESS)
    srv = serve_factory(
        "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n[queue]\nhold = true\n",
        listeners={"imaps": None, "pop3s": None, "submissions": None, "https": None},
        start=False,
    )
    cli = Cli(srv.data_dir, srv.config_path)
    cli("import", "sendmail", str(etc / "mail"))
    cli("import", "dovecot", str(etc / "dovecot"), "--root", str(tmp_path / "old"))
    cli("user", "add", "a@hamap.local", "--password-stdin", input="It1\n")
    srv.start()
    assert "LAB MODE" in srv.banner  # ssl = no + disable_plaintext_auth = no
    host, port = srv.address("smtp")
    with smtplib.SMTP(host, port, source_address=("127.0.0.2", 0), timeout=30) as c:
        c.sendmail("x@hamap.local", ["far@example.net"], MSG)
    with smtplib.SMTP(host, port, source_address=("127.0.1.2", 0), timeout=30) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("x@hamap.local", ["far@example.net"], MSG)
        code, text = e.value.recipients["far@example.net"]
        assert (code, text[:5]) == (550, b"5.7.1")
        # local mail is fine from anywhere: the imported aliases resolve (root -> a)
        c.sendmail("x@example.net", ["root@rocky9-3"], MSG.replace(b"far@example.net", b"root@rocky9-3"))
    assert len(srv.read_mailbox("a@hamap.local")) == 1
