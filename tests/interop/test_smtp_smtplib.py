"""smtplib, the stdlib client, in every mode: plain, STARTTLS, implicit TLS, AUTH PLAIN and LOGIN,
relaying from different loopback sources, big, 8-bit and UTF-8 mail. Every stored message is
compared byte for byte with what was sent."""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from smtp_lab import PASSWORD, insecure_context, start_lab, strip_trace

MSG = b"From: a@hamap.local\r\nTo: b@hamap.local\r\nSubject: smtplib\r\n\r\nbody line\r\n"


@pytest.fixture(autouse=True, params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both store backends: serve_factory reads this fixture."""
    return str(request.param)


def _check_stored(lab, user, sent, *, count=1):
    stored = lab.inbox(user)
    assert len(stored) == count
    trace, rest = strip_trace(stored[-1])
    assert rest == sent
    return trace


def test_plain_starttls_and_auth_modes(serve_factory):
    lab = start_lab(serve_factory)
    # Plain, unauthenticated, to a local user (the MX case).
    with lab.smtp() as c:
        c.ehlo("plain.example")
        assert not c.has_extn("auth")  # never before TLS without lab mode
        c.sendmail("x@example.org", ["b@hamap.local"], MSG)
    trace = _check_stored(lab, "b@hamap.local", MSG)
    assert b"with ESMTP id" in trace

    # STARTTLS on the MX listener, then AUTH PLAIN, then relaying to a remote address.
    with lab.smtp() as c:
        c.ehlo("tls.example")
        c.starttls(context=insecure_context())
        c.ehlo("tls.example")
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        c.login("a@hamap.local", PASSWORD)
        c.sendmail("a@hamap.local", ["b@hamap.local", "friend@example.net"], MSG)
    trace = _check_stored(lab, "b@hamap.local", MSG, count=2)
    assert b"with ESMTPSA id" in trace and b"using TLSv1." in trace
    [(item, body)] = lab.queue()
    assert item.envelope.sender == "a@hamap.local" and item.envelope.auth_user == "a@hamap.local"
    assert [r.address for r in item.recipients] == ["friend@example.net"]
    assert strip_trace(body)[1] == MSG

    # Submission (587) with STARTTLS and AUTH LOGIN.
    with lab.smtp("submission") as c:
        c.ehlo("sub.example")
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            c.sendmail("a@hamap.local", ["b@hamap.local"], MSG)
        assert e.value.smtp_code == 530
        c.starttls(context=insecure_context())
        c.ehlo("sub.example")
        c.user, c.password = "b@hamap.local", PASSWORD
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235
        c.sendmail("b@hamap.local", ["a@hamap.local"], MSG.replace(b"From: a@", b"From: b@"))
    _check_stored(lab, "a@hamap.local", MSG.replace(b"From: a@", b"From: b@"))

    # Submissions (465): implicit TLS, AUTH PLAIN.
    with lab.smtp("submissions") as c:
        c.ehlo("smtps.example")
        assert "PLAIN" in c.esmtp_features["auth"]
        assert not c.has_extn("starttls")
        c.login("a@hamap.local", PASSWORD)
        c.sendmail("a@hamap.local", ["b@hamap.local"], MSG)
    _check_stored(lab, "b@hamap.local", MSG, count=3)


def test_lab_mode_auth_without_tls(serve_factory):
    """The seed's Thunderbird: SMTP on port 25, no TLS, normal password, then relay."""
    lab = start_lab(serve_factory, auth="allow_plaintext = true", extra="[tls]\nenabled = false\n")
    with lab.smtp(source="127.0.0.3") as c:
        c.ehlo("thunderbird")
        assert not c.has_extn("starttls")
        c.login("a@hamap.local", PASSWORD)
        c.sendmail("a@hamap.local", ["someone@example.com"], MSG)
    [(item, _body)] = lab.queue()
    assert item.recipients[0].address == "someone@example.com"


def test_auth_failures(serve_factory):
    lab = start_lab(serve_factory)
    with lab.smtp("submissions") as c:
        c.ehlo("x")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("a@hamap.local", "wrong")
        assert e.value.smtp_code == 535
        # Sender must be the user's own address.
        c.login("a@hamap.local", PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as e2:
            c.sendmail("b@hamap.local", ["a@hamap.local"], MSG)
        assert (e2.value.smtp_code, e2.value.smtp_error[:5]) == (553, b"5.7.1")
        # From: header not theirs: 550 5.7.1 after the data.
        with pytest.raises(smtplib.SMTPDataError) as e3:
            c.sendmail("a@hamap.local", ["b@hamap.local"], MSG.replace(b"From: a@", b"From: b@"))
        assert (e3.value.smtp_code, e3.value.smtp_error[:5]) == (550, b"5.7.1")
    assert lab.inbox("b@hamap.local") == []


def test_relay_by_source_address(serve_factory):
    """127.0.0.2 has a RELAY rule, 127.0.0.3 has none; neither is authenticated."""
    lab = start_lab(serve_factory, setup=lambda lab: lab.cli("relay", "allow", "127.0.0.2"))
    with lab.smtp(source="127.0.0.2") as c:
        c.sendmail("x@hamap.local", ["far@example.net"], MSG)
    with lab.smtp(source="127.0.0.3") as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("x@hamap.local", ["far@example.net"], MSG)
        code, text = e.value.recipients["far@example.net"]
        assert (code, text[:5]) == (550, b"5.7.1")
        # Local recipients are still fine from anywhere.
        c.sendmail("x@example.net", ["a@hamap.local"], MSG)
    [(item, _)] = lab.queue()
    assert item.envelope.client == "127.0.0.2"
    assert len(lab.inbox("a@hamap.local")) == 1


def test_big_8bit_and_utf8(serve_factory):
    lab = start_lab(serve_factory)
    # 50 MB, with long lines and dots at line starts, through DATA.
    line = b"." + b"x" * 9998 + b"\r\n"
    big = b"Subject: big\r\n\r\n" + line * 5000
    assert len(big) > 50_000_000
    with lab.smtp() as c:
        c.sendmail("x@example.org", ["a@hamap.local"], big)
    [stored] = lab.inbox("a@hamap.local")
    assert strip_trace(stored)[1] == big
    # 8-bit body with BODY=8BITMIME, and a UTF-8 sender with SMTPUTF8.
    eight = "Subject: 8bit\r\n\r\nGrüße, ½ € \r\n".encode() + bytes(range(128, 256)) + b"\r\n"
    utf8 = "From: jörg@exämple.org\r\nSubject: ünïcode\r\n\r\nhi\r\n".encode()
    with lab.smtp() as c:
        c.ehlo("x")
        c.sendmail("x@example.org", ["b@hamap.local"], eight, mail_options=["BODY=8BITMIME"])
        c.sendmail("jörg@exämple.org", ["b@hamap.local"], utf8, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        c.rset()
        c.send("MAIL FROM:<jörg@exämple.org>\r\n".encode())  # without SMTPUTF8: refused
        code, text = c.getreply()
        assert (code, text[:5]) == (553, b"5.6.7")
    stored = lab.inbox("b@hamap.local")
    assert strip_trace(stored[0])[1] == eight
    trace, rest = strip_trace(stored[1])
    assert rest == utf8 and trace.startswith("Return-Path: <jörg@exämple.org>".encode())
    assert b"with UTF8SMTP id" in trace
