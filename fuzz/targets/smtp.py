"""SMTP: the sans-IO server core (proto/smtp/server.py) with its MAIL/RCPT parameter parsing
(params.py), the DATA decoder (data.py) and the SASL mechanisms (sasl.py), driven as smtp/session.py
drives them: every command event gets a reply, 354 starts DATA, 334 keeps AUTH going, 220 to
STARTTLS restarts the core with start_tls().

Bad input is reported by the core as a `Rejected` event carrying its reply; any exception (a
LocalProtocolError included: the harness follows the core's rules) is a finding."""

from __future__ import annotations

import base64

from fuzz.common import Finding, seed, split
from mailcove.core.address import Address, AddressError
from mailcove.proto.smtp import (
    NEED_DATA,
    Auth,
    AuthResponse,
    Bdat,
    ChunkEnd,
    Data,
    DataChunk,
    DataEnd,
    Ehlo,
    Helo,
    Help,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rejected,
    Reply,
    Rset,
    ServerConnection,
    StartTls,
    State,
    Vrfy,
)
from mailcove.proto.smtp import replies as R
from mailcove.proto.smtp.params import check_mailbox, unquote_local
from mailcove.proto.smtp.sasl import Challenge, Credentials, SaslFailure, ServerMechanism, server_mechanism

INSTRUMENT = ["mailcove.proto.smtp", "mailcove.core.address"]
MODULES = ["src/mailcove/proto/smtp/server.py", "src/mailcove/proto/smtp/params.py",
           "src/mailcove/proto/smtp/data.py", "src/mailcove/proto/smtp/sasl.py",
           "src/mailcove/proto/smtp/events.py", "src/mailcove/proto/smtp/replies.py"]

FULL = frozenset({"SIZE", "8BITMIME", "SMTPUTF8", "PIPELINING", "DSN", "CHUNKING", "BINARYMIME", "STARTTLS",
                  "AUTH", "ENHANCEDSTATUSCODES"})
PLAIN = frozenset({"SIZE", "8BITMIME", "PIPELINING"})


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


_MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\n"
            b"line one\r\n..a stuffed dot\r\n.\r\n")
SESSIONS = [
    b"EHLO client.example.org\r\nMAIL FROM:<alice@example.org> SIZE=120 BODY=8BITMIME\r\n"
    b"RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.net\r\n"
    b"RCPT TO:<carol@example.net>\r\nDATA\r\n" + _MESSAGE + b"QUIT\r\n",
    b"EHLO c\r\nAUTH PLAIN " + _plain("alice", "secret").encode() + b"\r\nMAIL FROM:<alice@example.org> "
    b"RET=HDRS ENVID=QQ+2B1 AUTH=<>\r\nRCPT TO:<bob@example.net> NOTIFY=NEVER\r\nBDAT 10\r\n0123456789"
    b"BDAT 5 LAST\r\nabcde\r\nRSET\r\nQUIT\r\n",
    b"EHLO c\r\nAUTH LOGIN\r\n" + _b64("alice").encode() + b"\r\n" + _b64("secret").encode() + b"\r\n"
    b"MAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<postmaster>\r\nDATA\r\nBDAT 3 LAST\r\n\x00\xff\n\r\nQUIT\r\n",
    b"HELO c\r\nSTARTTLS\r\nEHLO c\r\nSTARTTLS\r\nEHLO again\r\nAUTH PLAIN\r\n" + _plain("a", "b").encode()
    + b"\r\nAUTH LOGIN " + _b64("x").encode() + b"\r\n*\r\nMAIL FROM:<a@b.c>\r\nQUIT\r\n",
    b"NOOP\r\nMAIL FROM:<a@b>\r\nEHLO c\r\nRCPT TO:<a@b>\r\nDATA\r\nVRFY postmaster\r\nEXPN list\r\nHELP\r\n"
    b"TURN\r\nFOO bar\r\nRSET x\r\nQUIT now\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<c@d>\r\nDATA\r\nBDAT 2\r\nxyBDAT x\r\n"
    b"QUIT\r\n",
    "EHLO c\r\nMAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<\"user@remote\"@[127.0.0.1]>\r\n"
    "RCPT TO:<@relay.example,@b.example:u@c.example>\r\nRCPT TO:<x@[IPv6:2001:db8::1]>\r\n"
    "RCPT TO:<\"a\\\"b\"@example.org>\r\nRCPT TO:<\"a.b\"@example.org>\r\nDATA\r\n".encode()
    + b"Subject: \xc3\xa4\r\n\r\nbody\n.\nstill body\r.\r\n\r\n.\r\n" + b"QUIT\r\n",
    b"EHLO c\r\nMAIL FROM:<a@b> SIZE=999999999999999999999 BODY=9BIT\r\nMAIL FROM:a@b\r\n"
    b"RCPT TO:<b@c> ORCPT=rfc822;+0D+0Ainjected\r\nRCPT TO:<b@c> NOTIFY=SUCCESS,NEVER\r\n"
    b"MAIL FROM:<a@b> ENVID=+00 RET=FULL RET=HDRS\r\nRCPT TO:<b@c> FOO=bar\r\nQUIT\r\n",
    b"EHLO c\r\n" + b"NOOP " + b"x" * 600 + b"\r\nMAIL FROM:<" + b"a" * 300 + b"@b>\r\nDATA\r\nQUIT\r\n",
]
SEEDS = [seed(s) for s in SESSIONS] + [seed(SESSIONS[0], 0, 7), seed(SESSIONS[1], 0x21, 3),
                                       seed(SESSIONS[3], 0x80, 1)]
TOKENS = [b"EHLO ", b"HELO ", b"MAIL FROM:", b"RCPT TO:", b"DATA\r\n", b"BDAT ", b" LAST", b"RSET", b"NOOP",
          b"QUIT", b"VRFY ", b"HELP", b"STARTTLS", b"AUTH PLAIN ", b"AUTH LOGIN", b"EXPN", b"\r\n", b"\r\n.\r\n",
          b"\n.\n", b"\r\n..", b"<>", b"<postmaster>", b" SIZE=", b" BODY=8BITMIME", b" BODY=BINARYMIME",
          b" BODY=7BIT", b" SMTPUTF8", b" RET=FULL", b" RET=HDRS", b" ENVID=", b" AUTH=<>", b" NOTIFY=",
          b"SUCCESS,FAILURE,DELAY", b"NEVER", b" ORCPT=rfc822;", b"+2B", b"+0D", b"@[IPv6:::1]", b"@[127.0.0.1]",
          b"<@a,@b:", b'"', b"\\", b"AGFsaWNlAHNlY3JldA==", b"=", b"*", b"\xc3\xa4"]

_MAX_EVENTS = 10_000


class _Server:
    """The policy side, as smtp/session.py plays it, with the choices the policy byte makes."""

    def __init__(self, policy: int) -> None:
        self.policy = policy
        self.conn = ServerConnection(
            max_line=512, max_size=1000 if policy & 0x20 else 0, max_recipients=3 if policy & 0x40 else 0,
            extensions=PLAIN if policy & 0x08 else FULL)
        self.mech: ServerMechanism | None = None
        self.events = 0
        self.in_data = False

    def pump(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                return
            self.events += 1
            if self.events > _MAX_EVENTS:
                raise Finding("the core keeps producing events without input")
            reply = self.answer(ev)
            if reply is None:
                continue
            out = conn.send(reply)
            if not out.endswith(b"\r\n"):
                raise Finding(f"reply not CRLF-terminated: {out!r}")
            if isinstance(ev, StartTls) and reply.code == 220:
                conn.start_tls()
                conn.extensions = conn.extensions | {"AUTH"}

    def answer(self, ev: object) -> Reply | None:
        p = self.policy
        conn = self.conn
        if isinstance(ev, Rejected):
            if ev.reply.code < 400:
                raise Finding(f"a rejection with a success code: {ev!r}")
            return ev.reply
        if isinstance(ev, DataChunk):
            if conn.state not in (State.DATA, State.BDAT):
                raise Finding(f"data outside DATA/BDAT: {conn.state}")
            return None
        if isinstance(ev, Bdat):
            if ev.size < 0:
                raise Finding(f"negative BDAT size {ev!r}")
            return None
        if isinstance(ev, Ehlo | Helo):
            return R.OK
        if isinstance(ev, Mail):
            if ev.sender:
                check_mailbox(ev.sender)  # the core promises a checked path
                _address(ev.sender)
            return Reply(550, "5.7.1", "refused") if p & 0x01 else R.SENDER_OK
        if isinstance(ev, Rcpt):
            if ev.recipient != "postmaster":
                check_mailbox(ev.recipient)
                _address(ev.recipient)
            if ev.orcpt is not None and any(c in ev.orcpt for c in "\r\n\0"):
                raise Finding(f"a control character in ORCPT: {ev.orcpt!r}")
            return Reply(550, "5.1.1", "no such user") if p & 0x02 else R.RCPT_OK
        if isinstance(ev, Data):
            return R.START_DATA
        if isinstance(ev, DataEnd | ChunkEnd):
            if ev.too_big:
                return R.TOO_BIG
            return Reply(451, "4.3.0", "try later") if p & 0x04 else R.OK
        if isinstance(ev, StartTls):
            return Reply(454, "4.7.0", "TLS not available") if p & 0x80 else R.READY_TLS
        if isinstance(ev, Auth):
            self.mech = server_mechanism(ev.mechanism)
            if self.mech is None:
                return R.AUTH_MECH_UNKNOWN
            return self._sasl(self.mech.start(ev.initial))
        if isinstance(ev, AuthResponse):
            if self.mech is None:
                raise Finding("an AUTH response without AUTH")
            if ev.line == "*":
                self.mech = None
                return R.AUTH_CANCELLED
            return self._sasl(self.mech.step(ev.line))
        if isinstance(ev, Quit):
            return R.BYE
        if isinstance(ev, Rset):
            return R.RESET_OK
        if isinstance(ev, Noop):
            return R.NOOP_OK
        if isinstance(ev, Vrfy):
            return R.VRFY_CANNOT
        if isinstance(ev, Help):
            return R.HELP
        raise Finding(f"an event of an unknown kind: {ev!r}")

    def _sasl(self, step: object) -> Reply:
        if isinstance(step, Challenge):
            return Reply(334, "", base64.b64encode(step.data).decode())
        self.mech = None
        if isinstance(step, Credentials):
            return Reply(535, "5.7.8", "bad credentials") if self.policy & 0x10 else R.AUTH_OK
        if isinstance(step, SaslFailure):
            return R.AUTH_CANCELLED if step.reason == "cancelled" else Reply(501, "5.5.2", step.reason)
        raise Finding(f"a SASL step of an unknown kind: {step!r}")


def _address(path: str) -> None:
    """What the session and the directory make of a path: core.address's Address (AddressError is
    its documented refusal, answered 501/550)."""
    try:
        addr = Address.parse(unquote_local(path))
    except AddressError:
        return
    if any(c in addr.domain for c in "\r\n\0<>"):
        raise Finding(f"a domain with a control or bracket character: {addr.domain!r}")


def one_input(data: bytes) -> None:
    policy, reads = split(data)
    server = _Server(policy)
    server.conn.send(Reply(220, "", "mx ESMTP"))
    for chunk in reads:
        server.pump(chunk)
