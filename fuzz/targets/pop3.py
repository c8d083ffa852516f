"""POP3: the sans-IO server connection (proto/pop3/connection.py: lines, the state table, AUTH
continuations, STLS) with the command parser (commands.py) and SASL PLAIN (sasl.py), driven as
pop3/session.py drives them: one reply per event, +OK to USER/PASS/AUTH enters TRANSACTION, a
continuation keeps AUTH going, +OK to STLS drops pipelined plaintext, QUIT closes.

Bad input is a `BadCommand` (answer -ERR); a bad PLAIN message is a `SaslError`; any other
exception (a ProtocolUsageError included: the harness follows the core's rules) is a finding."""

from __future__ import annotations

import base64

from fuzz.common import Finding, seed, split
from mailcove.proto.pop3 import commands as c
from mailcove.proto.pop3.connection import NEED_DATA, BadCommand, ServerConnection, State
from mailcove.proto.pop3.responses import Continue, Err, Ok, capabilities, listing
from mailcove.proto.pop3.sasl import SaslError, parse_plain

INSTRUMENT = ["mailcove.proto.pop3"]
MODULES = ["src/mailcove/proto/pop3/connection.py", "src/mailcove/proto/pop3/commands.py",
           "src/mailcove/proto/pop3/sasl.py", "src/mailcove/proto/pop3/responses.py"]


def _plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


SESSIONS = [
    b"CAPA\r\nUSER alice\r\nPASS secret word \r\nSTAT\r\nLIST\r\nLIST 1\r\nUIDL\r\nUIDL 2\r\nRETR 1\r\n"
    b"TOP 1 10\r\nDELE 1\r\nNOOP\r\nRSET\r\nQUIT\r\n",
    b"CAPA\r\nAUTH\r\nAUTH PLAIN " + _plain("alice", "secret") + b"\r\nSTAT\r\nQUIT\r\n",
    b"AUTH PLAIN\r\n" + _plain("alice", "s\u00e4cret") + b"\r\nLIST\r\nTOP 1 0\r\nQUIT\r\n",
    b"AUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\nAUTH LOGIN\r\nAUTH x y z\r\nAUTH PLAIN !!!\r\nSTLS\r\nUSER pipelined\r\n"
    b"USER bob\r\nPASS\r\nQUIT\r\n",
    b"STAT\r\nPASS first\r\nFOO\r\nRETR\r\nRETR x\r\nRETR 99999999999\r\nTOP 1\r\nLIST 1 2\r\n\r\n \r\n"
    b"USER \xff\r\nUSER a\x00b\r\nUSER a\r\nPASS b\r\nSTLS\r\nUSER x\r\nDELE \xd9\xa3\r\nQUIT x\r\nQUIT\r\n",
    b"USER a\r\nPASS b\r\n" + b"NOOP " + b"x" * 9000 + b"\r\nNOOP\r\nQUIT\r\n",
]
SEEDS = [seed(s) for s in SESSIONS] + [seed(SESSIONS[0], 0, 3), seed(SESSIONS[1], 0x01, 0),
                                       seed(SESSIONS[3], 0x02, 1)]
TOKENS = [b"USER ", b"PASS ", b"AUTH ", b"PLAIN", b"STAT", b"LIST", b"UIDL", b"RETR ", b"TOP ", b"DELE ", b"NOOP",
          b"RSET", b"QUIT", b"CAPA", b"STLS", b"\r\n", b"=", b"*", b"AGFsaWNlAHNlY3JldA==", b"\x00", b" 1 10",
          b"4294967295", b"\xc3\xa4"]


class _Session:
    def __init__(self, policy: int) -> None:
        self.policy = policy
        self.conn = ServerConnection(max_line=8192 if not policy & 0x04 else 64,
                                     max_bad_commands=20 if not policy & 0x08 else 3)
        self.events = 0

    def pump(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                return
            self.events += 1
            if self.events > 10_000:
                raise Finding("the core keeps producing events without input")
            reply = self.answer(ev)
            if isinstance(ev, c.Quit) and conn.state is State.TRANSACTION:
                conn.begin_update()
            out = conn.send(reply)
            if not out.endswith(b"\r\n") or b"\n" in out[:-1]:
                raise Finding(f"a reply that is not one line: {out[:200]!r}")

    def answer(self, ev: object) -> Ok | Err | Continue:
        p = self.policy
        if isinstance(ev, BadCommand):
            return Err(ev.reason)
        if isinstance(ev, c.Auth):
            if ev.mechanism is None:
                listing([b"PLAIN"])
                return Ok("SASL mechanisms follow")
            if ev.mechanism != "PLAIN":
                return Err("unsupported mechanism")
            if ev.initial is None:
                return Continue()
            return self._plain(ev.initial)
        if isinstance(ev, c.AuthData):
            return self._plain(ev.data)
        if isinstance(ev, c.AuthCancel):
            return Err("cancelled")
        if isinstance(ev, c.Pass):
            return Err("bad password", "AUTH") if p & 0x01 else Ok("logged in")
        if isinstance(ev, c.Capa):
            capabilities(user=True, sasl=["PLAIN"], stls=True)
            return Ok("Capability list follows")
        if isinstance(ev, c.Stls):
            return Err("TLS unavailable") if p & 0x02 else Ok("Begin TLS negotiation")
        if isinstance(ev, c.Retr | c.Dele | c.Top) and ev.msg == 0:
            return Err("no such message")
        if isinstance(ev, c.Command):
            return Ok(f"{ev.name} done")
        raise Finding(f"an event of an unknown kind: {ev!r}")

    def _plain(self, data: bytes) -> Ok | Err:
        try:
            creds = parse_plain(data)
        except SaslError as exc:
            return Err(str(exc))
        if not creds.authcid or not creds.password:
            raise Finding("PLAIN credentials without a user or password")
        return Err("bad password", "AUTH") if self.policy & 0x01 else Ok("logged in")


def one_input(data: bytes) -> None:
    policy, reads = split(data)
    session = _Session(policy)
    for chunk in reads:
        session.pump(chunk)
