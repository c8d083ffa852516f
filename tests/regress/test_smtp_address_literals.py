"""Domain literals in recipients (issue 13, finding 13): `x@[a>b\x01]` reached the queue through
local submission, and over SMTP any `[digits.and.dots]` or `[IPv6:hex:and:colons]` passed. Now a
recipient domain literal must be an RFC 5321 section 4.1.3 address-literal (an IPv4 address,
`IPv6:` and an IPv6 address, or a General-address-literal `tag:content`); anything else is
refused with a reply that says the address syntax is bad, and nothing is queued."""

from __future__ import annotations

import base64
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, Lab, RawClient, start_lab

BAD = [b"x@[1.2.3.256]", b"x@[999.1.1.1]", b"x@[1.2.3.4.5]", b"x@[IPv6:1:2:3:4:5:6:7:8:9]", b"x@[IPv6:::::::::]",
       b"x@[IPv6:1::2::3]", b"x@[IPv6:]"]
GOOD = [b"x@[192.0.2.1]", b"x@[IPv6:2001:db8::1]", b"x@[IPv6:::ffff:192.0.2.1]"]
MESSAGE = b"From: a@hamap.local\r\nSubject: literal\r\n\r\nhi\r\n"


def _submit(lab: Lab, recipient: bytes) -> str:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    try:
        s.connect(str(lab.submit_socket))
        s.sendall(b"SUBMIT %d - %s\r\n" % (len(MESSAGE), recipient) + MESSAGE)
        return s.recv(4096).decode("utf-8", "replace")
    finally:
        s.close()


def test_local_submission_refuses_a_bad_domain_literal(serve_factory) -> None:
    lab = start_lab(serve_factory)
    for rcpt in (b"x@[a>b\x01]", b"x@[a>b]", b"x@[evil\x7f]", *BAD):
        reply = _submit(lab, rcpt)
        assert reply.startswith("ERR 5") and "bad address syntax" in reply, (rcpt, reply)
    assert lab.queue() == []
    reply = _submit(lab, b"x@[192.0.2.1]")  # a good literal is still a remote address (held queue)
    assert reply.startswith("OK queue:"), reply
    [(item, _)] = lab.queue()
    assert [r.address for r in item.recipients] == ["x@[192.0.2.1]"]


def _login(lab: Lab) -> RawClient:
    c = lab.raw("submission")
    assert c.cmd(b"EHLO x").startswith(b"250")
    token = base64.b64encode(b"\0a@hamap.local\0" + PASSWORD.encode())
    assert c.cmd(b"AUTH PLAIN " + token).startswith(b"235")
    return c


def test_submission_refuses_a_bad_domain_literal_in_rcpt(serve_factory) -> None:
    lab = start_lab(serve_factory, auth="allow_plaintext = true")
    c = _login(lab)
    assert c.cmd(b"MAIL FROM:<a@hamap.local>").startswith(b"250")
    for rcpt in BAD:
        reply = c.cmd(b"RCPT TO:<" + rcpt + b">")
        # 501 from the path parser, 553 from the address check behind it: both say why
        assert reply[:10] in (b"501 5.1.3 ", b"553 5.1.3 ") and b"syntax" in reply, (rcpt, reply)
    for rcpt in GOOD:
        assert c.cmd(b"RCPT TO:<" + rcpt + b">").startswith(b"250"), rcpt
    assert c.cmd(b"RSET").startswith(b"250")
    c.close()
