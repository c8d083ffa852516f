# A replay of a hand-written trace (a unit test); tests/interop/test_thunderbird_real.py runs the real client.
"""Thunderbird's first connection and new-mail check, replayed command for command against mailcove
AND against Dovecot from Debian, every response checked by the strict parser (interop/imapwire.py).

The command lines are Thunderbird 115's, as its IMAP log shows them (lower-case verbs and all):
CAPABILITY, LOGIN, ID, ENABLE, LIST ... RETURN (SPECIAL-USE SUBSCRIBED), SELECT ... (CONDSTORE),
UID FETCH 1:* (FLAGS), IDLE; then on new mail: DONE, NOOP, UID FETCH n:* (FLAGS), the header
fetch of the new message, IDLE again. Running the same replay on Dovecot shows the assertions
are about IMAP, not about mailcove's habits; tests/imap/test_thunderbird.py has the mailcove-only
version with its own client core.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from interop.dovecot import PrivateDovecot, dovecot_binary
from interop.imap_servers import PASSWORD, TB_USER, message
from interop.imapwire import Atom, DataResponse, RawClient, StatusResponse
from mailcove_testing import ServerProcess, require_tool

pytestmark = pytest.mark.interop  # `make test-interop`: runs a private Dovecot from Debian

USER = TB_USER
TB_HEADERS = (
    "From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
    "Content-Type Reply-To"
)


@dataclass
class Target:
    name: str
    host: str
    port: int


@pytest.fixture(scope="module", params=["mailcove", "dovecot"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "dovecot":
        if dovecot_binary() is None:
            require_tool("dovecot")
        with PrivateDovecot({USER: PASSWORD}) as dc:
            yield Target("dovecot", dc.host, dc.port)
        return
    srv: ServerProcess = request.getfixturevalue("imap_lab")
    host, port = srv.address("imap")
    yield Target("mailcove", host, port)


def append(t: Target, msgs: list[bytes]) -> None:
    c = RawClient(t.host, t.port)
    c.command(f'LOGIN "{USER}" "{PASSWORD}"').ok()
    for m in msgs:
        c.command(f"APPEND INBOX {{{len(m)}}}", m).ok()
    c.command("LOGOUT")
    c.close()


def caps_of(resps: list) -> set[str]:
    for r in resps:
        if isinstance(r, DataResponse) and r.name == "CAPABILITY":
            return {str(x).upper() for x in r.values}
        if isinstance(r, StatusResponse) and r.code and str(r.code[0]).upper() == "CAPABILITY":
            return {str(x).upper() for x in r.code[1:]}
    return set()


def test_first_connection_and_new_mail_check(target: Target) -> None:
    append(target, [message(i, f"tb {i}") for i in range(1, 4)])
    c = RawClient(target.host, target.port)
    assert c.greeting.status == "OK"
    pre = caps_of([*c.command("capability").ok().untagged, c.greeting])
    assert "IMAP4REV1" in pre
    login = c.command(f'login "{USER}" "{PASSWORD}"').ok()
    caps = caps_of([login.tagged, *login.untagged]) or caps_of(c.command("capability").ok().untagged)
    for cap in ("IDLE", "CONDSTORE", "SPECIAL-USE", "LIST-EXTENDED", "UIDPLUS", "MOVE", "ENABLE", "ID", "LITERAL+"):
        assert cap in caps, (target.name, cap, caps)

    ids = c.command('ID ("name" "Thunderbird" "version" "115.3.1")').ok().data("ID")
    assert len(ids) == 1

    enabled = c.command("ENABLE CONDSTORE").ok().data("ENABLED")
    assert [str(x).upper() for x in enabled[0].values] == ["CONDSTORE"]

    lists = c.command('list "" "*" return (special-use subscribed)').ok().data("LIST")
    by_name = {bytes(r.values[2]) if not isinstance(r.values[2], Atom) else str(r.values[2]).encode(): r
               for r in lists}
    assert b"INBOX" in by_name, by_name
    attrs = {name: {str(a).lower() for a in r.values[0]} for name, r in by_name.items()}
    assert "\\subscribed" in attrs[b"INBOX"]
    assert "\\sent" in attrs[b"Sent"] and "\\trash" in attrs[b"Trash"] and "\\drafts" in attrs[b"Drafts"]
    delimiters = {bytes(r.values[1]) for r in lists if r.values[1] is not None}
    assert len(delimiters) == 1  # one hierarchy separator

    sel = c.command('select "INBOX" (CONDSTORE)').ok()
    codes = {str(u.code[0]).upper(): u.code[1:] for u in sel.untagged if isinstance(u, StatusResponse) and u.code}
    assert {"UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "PERMANENTFLAGS"} <= codes.keys(), codes
    assert [r.number for r in sel.data("EXISTS")] == [3]
    assert sel.tagged.code and str(sel.tagged.code[0]).upper() == "READ-WRITE"

    got = c.command("UID fetch 1:* (FLAGS)").ok().fetches()
    assert sorted(v["UID"] for v in got.values()) == [1, 2, 3]
    # MODSEQ may come along (mailcove sends it once CONDSTORE is on, Dovecot does not: RFC 7162 3.1
    # requires it only in unsolicited FETCH); when present the parser has checked its form.
    assert all("FLAGS" in v for v in got.values())

    # IDLE; new mail arrives (another session appends, as a delivery would); EXISTS within 1 s
    tag = c.tag()
    c.send(f"{tag} IDLE\r\n".encode())
    cont = c.read_response()
    assert cont.startswith(b"+"), cont
    append(target, [message(4, "new one")])
    deadline = time.monotonic() + 1.0
    seen: list = []
    while time.monotonic() < deadline and not any(
        isinstance(r, DataResponse) and r.name == "EXISTS" for r in seen
    ):
        seen += c.read_untagged(0.1)
    assert any(isinstance(r, DataResponse) and r.name == "EXISTS" and r.number == 4 for r in seen), seen
    c.send(b"DONE\r\n")
    done = c.read_until(tag)
    assert done.tagged.status == "OK"

    # the new-mail check
    c.command("noop").ok()
    got = c.command("UID fetch 4:* (FLAGS)").ok().fetches()
    assert [v["UID"] for v in got.values()] == [4]
    section = f"BODY[HEADER.FIELDS ({TB_HEADERS.upper()})]"
    got = c.command(f"UID fetch 4 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ({TB_HEADERS})])").ok().fetches()
    item = next(iter(got.values()))
    header = bytes(item[section])
    assert b"Subject: new one\r\n" in header and header.endswith(b"\r\n\r\n")
    assert item["RFC822.SIZE"] == len(message(4, "new one"))
    tag = c.tag()
    c.send(f"{tag} IDLE\r\n".encode())
    assert c.read_response().startswith(b"+")
    c.send(b"DONE\r\n")
    assert c.read_until(tag).tagged.status == "OK"
    bye = c.command("logout")
    assert bye.tagged.status == "OK" and any(isinstance(u, StatusResponse) and u.status == "BYE" for u in bye.untagged)
    c.close()
