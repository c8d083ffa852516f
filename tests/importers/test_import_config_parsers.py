"""The configuration parsers on their own: text in (through MemoryFiles), a Plan out. No server,
no disk; Hypothesis checks that no input makes them raise."""

from __future__ import annotations

import fnmatch
import os
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from mailcove.importers.apply import Existing, diff_directory
from mailcove.importers.dovecot import plan_dovecot
from mailcove.importers.files import decode
from mailcove.importers.plan import DEFAULT, ConfigSet, Plan, Source
from mailcove.importers.sendmail import choose_primary, parse_mailer_host, plan_sendmail
from mailcove.importers.tomlconfig import diff_config, fragment, merge, parse_doc


class MemoryFiles:
    """The parsers' `Files` (importers/files.py) held in a dict."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = {os.path.normpath(k): v for k, v in files.items()}

    def read(self, path: str) -> str | None:
        return self.files.get(os.path.normpath(path))

    def glob(self, pattern: str) -> list[str]:
        pat = os.path.normpath(pattern)
        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, pat) and p.count("/") == pat.count("/"))


def sendmail(files: dict[str, str], **kw: str) -> Plan:
    return plan_sendmail("/etc/mail", MemoryFiles({f"/etc/{k}": v for k, v in files.items()}), **kw)


def dovecot(files: dict[str, str]) -> Plan:
    return plan_dovecot("/etc/dovecot", MemoryFiles({f"/etc/dovecot/{k}": v for k, v in files.items()}))


def skipped(plan: Plan) -> dict[tuple[str, int], str]:
    return {(u.file.rsplit("/", 1)[-1], u.line): u.reason for u in plan.unmapped}


def test_choose_primary() -> None:
    assert choose_primary(["rocky9-3", "hamap.local", "mx1.hamap.local"]) == "hamap.local"
    assert choose_primary(["mx1.a.example", "b.example", "c.example"]) == "b.example"
    assert choose_primary(["rocky9-3"]) == "rocky9-3"
    assert choose_primary([]) is None


def test_aliases_syntax() -> None:
    plan = sendmail({
        "mail/local-host-names": "hamap.local  # the lab\n[10.0.0.13]\n",
        "aliases": (
            "# comment\n"
            "Root: \\root, a\n"
            "  , b@example.net\n"
            "\n"
            "   orphan continuation\n"
            "nocolon here\n"
            'q: "|/bin/prog a,b", "c"\n'
            "bad name: a\n"
            "err: error:nouser gone\n"
            "empty:\n"
            "self: \\self\n"
        ),
    })
    assert [(a.source_address, a.targets) for a in plan.aliases] == [
        ("root@hamap.local", ("root@hamap.local", "a@hamap.local", "b@example.net")),  # keep a copy
        ("q@hamap.local", ("c@hamap.local",)),
    ]
    s = skipped(plan)
    assert "address literal" in s[("local-host-names", 2)]
    assert "continuation" in s[("aliases", 5)]
    assert "name:" in s[("aliases", 6)]
    assert "program" in s[("aliases", 7)]  # the comma inside the quotes did not split it
    assert "alias name" in s[("aliases", 8)]
    assert "error:" in s[("aliases", 9)]
    assert "no targets" in s[("aliases", 10)]
    assert "only the alias itself" in s[("aliases", 11)]


def test_aliases_without_a_domain() -> None:
    plan = sendmail({"aliases": "root: a\n"})
    assert plan.aliases == []
    assert "--primary" in skipped(plan)[("aliases", 1)]
    plan = sendmail({"aliases": "root: a\n"}, primary="Example.ORG")
    assert [(a.source_address, a.targets) for a in plan.aliases] == [("root@example.org", ("a@example.org",))]
    assert [(d.name, d.alias_of) for d in plan.domains] == [("example.org", None)]  # --primary adds it


def test_virtusertable_forms() -> None:
    plan = sendmail({
        "mail/local-host-names": "hamap.local\n",
        "mail/virtusertable": (
            "a+*@hamap.local   b\n"
            "@v.example        %1\n"
            "@w.example        %2@hamap.local\n"
            "x@v2.example      %1@hamap.local\n"
            "bad               b\n"
            "@err.example      error:nouser\n"
            "e@hamap.local     error:4.2.2:450 over quota\n"
            "f@hamap.local     error:odd\n"
            "lonely@hamap.local\n"
        ),
    })
    assert [(d.name, d.alias_of) for d in plan.domains] == [
        ("hamap.local", None), ("v.example", "hamap.local"), ("err.example", None)]
    assert [r.rule.display for r in plan.access] == ["To:e@hamap.local\tERROR:4.2.2:450 over quota"]
    s = skipped(plan)
    assert "+detail" in s[("virtusertable", 1)]
    assert "%1" in s[("virtusertable", 3)]
    assert "catch-all" in s[("virtusertable", 4)]
    assert "user@domain" in s[("virtusertable", 5)]
    assert "by default" in s[("virtusertable", 6)]
    assert "cannot read" in s[("virtusertable", 8)]
    assert "no target" in s[("virtusertable", 9)]


def test_mailertable_hosts() -> None:
    assert parse_mailer_host("[mail.example]") == ("mail.example", 25)
    assert parse_mailer_host("[10.0.0.5]:2525") == ("10.0.0.5", 2525)
    assert parse_mailer_host("[IPv6:2001:db8::1]") == ("2001:db8::1", 25)
    assert parse_mailer_host("host.example") == ("host.example", 25)
    assert parse_mailer_host("a.example:b.example") is None
    plan = sendmail({"mail/mailertable": (
        ".                 relay:[smart.example]\n"
        "bad..domain       esmtp:[x]\n"
        "two.example       esmtp:a.example:b.example\n"
        "no.example        error:5.1.2:550 no such domain\n"
        "mx.example        smtp:mx.example\n"
    )})
    assert {c.dotted: c.value for c in plan.config} == {
        "relayhost.host": "smart.example", "relayhost.port": 25, "relayhost.tls": "may",
        "relayhost.tls_verify": False, 'transport."mx.example"': "mx.example:25"}
    assert next(c.note for c in plan.config if c.key[0] == "transport").startswith("Sendmail looks up the MX")
    assert [r.rule.display for r in plan.access] == ["To:no.example\tERROR:5.1.2:550 no such domain"]
    s = skipped(plan)
    assert "valid domain" in s[("mailertable", 2)] and "one HOST:PORT" in s[("mailertable", 3)]


def test_dovecot_include_loop_and_sections() -> None:
    plan = dovecot({
        "dovecot.conf": "!include a.conf\nssl = yes\nssl_cert = -----BEGIN CERTIFICATE-----\n",
        "a.conf": "!include ../dovecot/a.conf\nservice imap-login {\n  inet_listener imap {\n"
        "    port = 99999\n    haproxy = yes\n  }\n}\n",
    })
    s = skipped(plan)
    assert "includes itself" in s[("a.conf", 0)]
    assert "not a port" in s[("a.conf", 4)]
    assert "listener setting" in s[("a.conf", 5)]
    assert "inline PEM" in s[("dovecot.conf", 3)]
    assert plan.files == ["/etc/dovecot/dovecot.conf", "/etc/dovecot/a.conf"]


def test_dovecot_quotes_comments_and_variables() -> None:
    plan = dovecot({"dovecot.conf": (
        'protocols = "imap"\n'
        "protocols = $protocols pop3 # and pop3\n"
        "listen = '10.0.0.13'   # the LAN address\n"
        'login_greeting = "ready # really"\n'
    )})
    config = {c.dotted: c.value for c in plan.config}
    assert config["listen.imap"] == ["10.0.0.13:143"]
    assert config["listen.pop3s"] == ["10.0.0.13:995"]
    # line 1 is not "superseded": line 2 builds on it ($protocols)
    assert [u.line for u in plan.unmapped] == [4]
    greeting = [u for u in plan.unmapped if u.line == 4]
    assert greeting and "ready # really" in greeting[0].text


def test_config_merge_keeps_the_file() -> None:
    text = "# top\nhostname = \"mx\"  # inline\n\n[tls]\n# keep me\nmin_version = \"TLSv1.3\"\n"
    doc = parse_doc(text, "x.toml")
    changes = [
        ConfigSet(("tls", "enabled"), False, Source("a", 1)),
        ConfigSet(("tls", "min_version"), "TLSv1.3", Source("a", 2)),
        ConfigSet(("auth", "allow_plaintext"), False, Source("a", 3)),  # the default
        ConfigSet(("transport", "x.example"), "h:25", Source("a", 4)),
        ConfigSet(("listen", "imap"), DEFAULT, Source("a", 5)),
        ConfigSet(("listen", "pop3"), ["1.2.3.4:110"], Source("a", 6)),
        ConfigSet(("listen", "pop3"), [], Source("a", 7)),  # the later one wins
    ]
    outcomes, superseded = diff_config(doc, changes)
    assert {o.change.dotted: o.status for o in outcomes} == {
        "tls.enabled": "add", "tls.min_version": "unchanged", "auth.allow_plaintext": "unchanged",
        'transport."x.example"': "add", "listen.imap": "unchanged", "listen.pop3": "add"}
    assert [(u.line, u.reason) for u in superseded] == [(6, "superseded by a:7")]
    merged = merge(doc, outcomes)
    assert merged.startswith(text.rstrip("\n"))
    assert "# keep me" in merged
    assert tomllib.loads(merged)["tls"] == {"min_version": "TLSv1.3", "enabled": False}
    # a key going back to the default is removed
    doc2 = parse_doc(merged, "x.toml")
    out2, _ = diff_config(doc2, [ConfigSet(("listen", "pop3"), DEFAULT, Source("b", 1))])
    assert out2[0].status == "change"
    assert "pop3" not in tomllib.loads(merge(doc2, out2)).get("listen", {})
    assert "enabled = false" in fragment(outcomes)


def test_diff_directory_alias_domains() -> None:
    plan = sendmail({
        "mail/local-host-names": "hamap.local\nrocky9-3\n",
        "aliases": "info: a\n",
        "mail/virtusertable": "info@rocky9-3  b\n",
    })
    diff = diff_directory(plan, Existing())
    assert [(o.section, o.status) for o in diff.outcomes] == [
        ("domains", "add"), ("domains", "add"), ("aliases", "add")]
    # info@rocky9-3 is info@hamap.local once rocky9-3 is an alias domain: the second definition
    # is reported, not merged
    assert [c.reason for c in diff.conflicts] == [
        "info@hamap.local is already defined at /etc/aliases:1 (the first definition is imported)"]


def test_decode() -> None:
    assert decode("héllo".encode()) == "héllo"
    assert decode(b"h\xe9llo") == "h\xe9llo"


_PIECES = [*"ab@.:%!{}=#<>\"'\\|/ \t\n,*[]-10", "RELAY", "Connect:", "!include ", "error:", "%1", "ssl", "listen"]
TEXT = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)


@settings(max_examples=150, deadline=None)
@given(TEXT, TEXT, TEXT, TEXT)
def test_sendmail_never_raises(lhn: str, access: str, aliases: str, vut: str) -> None:
    plan = sendmail({"mail/local-host-names": lhn, "mail/access": access, "aliases": aliases,
                     "mail/virtusertable": vut, "mail/mailertable": vut, "mail/relay-domains": lhn})
    diff_directory(plan, Existing())
    diff_config(parse_doc(None, "x"), plan.config)


@settings(max_examples=150, deadline=None)
@given(TEXT, TEXT)
def test_dovecot_never_raises(main: str, other: str) -> None:
    plan = dovecot({"dovecot.conf": main + "\n!include conf.d/*.conf\n", "conf.d/a.conf": other})
    outcomes, _ = diff_config(parse_doc(None, "x"), plan.config)
    fragment(outcomes)
