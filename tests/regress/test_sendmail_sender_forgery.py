"""`mailcove sendmail -f` by a local user who is not trusted (issue 13, finding 13). Any local user
could set any envelope sender, and nothing in the message showed it. As with Postfix the mail is
still accepted, but now, as Sendmail does, a user not in [smtp] trusted_users who names an
address that is not their own gets an `X-Authentication-Warning:` header naming them. Run with
the real command, as `nobody`, through the submit socket."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from sendmail_testing import require_other_user, sendmail
from smtp_lab import start_lab, strip_trace

MSG = b"Subject: hello\n\nhi\n"
WARNING = b"X-Authentication-Warning: mx1.hamap.local: nobody set sender to %s using -f\r\n"


def _trace(stored: bytes) -> bytes:
    """Our trace fields and the warning, if any (it follows our Received:)."""
    trace, rest = strip_trace(stored)
    if rest.startswith(b"X-Authentication-Warning:"):
        trace += rest[: rest.index(b"\r\n") + 2]
    return trace


def test_untrusted_user_setting_another_sender_is_marked(serve_factory):
    require_other_user()
    lab = start_lab(serve_factory)
    cases = [
        (["-f", "b@hamap.local"], b"b@hamap.local"),  # another user's address
        (["-f", "ceo@example.com"], b"ceo@example.com"),  # anyone's
        (["-f", "<>"], b"<>"),  # the null sender: the mail system's, not a user's
        (["-f", "nobody@mx1.hamap.local"], None),  # their own: user@hostname
        (["-f", "nobody"], None),  # a bare name: their own, qualified as recipients are
        ([], None),
    ]
    for args, _claimed in cases:
        r = sendmail(lab, "-i", *args, "a@hamap.local", input=MSG, user="nobody")
        assert r.returncode == 0, (args, r.stderr)  # accepted, as before
    stored = lab.inbox("a@hamap.local")
    assert len(stored) == len(cases)
    for (args, claimed), m in zip(cases, stored, strict=True):
        trace = _trace(m)
        assert b"Received: from local user nobody (uid 65534)" in trace
        if claimed is None:
            assert b"X-Authentication-Warning" not in m, (args, trace)
        else:
            assert trace.endswith(WARNING % claimed), (args, trace)
            assert trace.startswith(b"Return-Path: <%s>" % (b"" if claimed == b"<>" else claimed))
        assert m.endswith(b"Subject: hello\r\n\r\nhi\r\n")
    # The default From: names the caller's own account whatever $LOGNAME says.
    assert b"\r\nFrom: nobody@mx1.hamap.local\r\n" in stored[-1]


def test_trusted_users_set_any_sender(serve_factory):
    require_other_user()
    lab = start_lab(serve_factory, smtp='trusted_users = ["root", "nobody"]')
    for user in ("nobody", None):  # listed, and root (this process)
        r = sendmail(lab, "-i", "-f", "ceo@example.com", "a@hamap.local", input=MSG, user=user)
        assert r.returncode == 0, r.stderr
    for m in lab.inbox("a@hamap.local"):
        assert m.startswith(b"Return-Path: <ceo@example.com>\r\n") and b"X-Authentication-Warning" not in m


def test_root_is_trusted_by_default(serve_factory):
    lab = start_lab(serve_factory)
    r = sendmail(lab, "-i", "-f", "ceo@example.com", "a@hamap.local", input=MSG)
    assert r.returncode == 0, r.stderr
    [m] = lab.inbox("a@hamap.local")
    assert m.startswith(b"Return-Path: <ceo@example.com>\r\n") and b"X-Authentication-Warning" not in m
