"""Local submission had no rate limit (issue 13, finding 13): any local user (a web application
running as www-data, say) could send without bound through `mailcove sendmail`. Each local user
now has the hourly limits logged-in SMTP users have ([smtp] send_messages_per_hour and
send_recipients_per_hour, the same counters), and past them `sendmail` exits 75 (EX_TEMPFAIL,
so cron and MTAs' callers retry) with the server's reason."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtp"))
from sendmail_testing import require_other_user, sendmail
from smtp_lab import start_lab

MSG = b"Subject: s\n\nx\n"


def test_messages_per_hour_per_local_user(serve_factory):
    lab = start_lab(serve_factory, smtp="send_messages_per_hour = 2")
    for _ in range(2):
        r = sendmail(lab, "-i", "a@hamap.local", input=MSG)
        assert r.returncode == 0, r.stderr
    r = sendmail(lab, "-i", "a@hamap.local", input=MSG)
    assert r.returncode == 75, r
    assert r.stderr.startswith(b"mailcove: 451 4.7.1 sending limit exceeded for local user root")
    # A message far larger than the socket buffers: the refusal still arrives, not a broken pipe.
    r = sendmail(lab, "-i", "a@hamap.local", input=b"Subject: big\n\n" + b"x" * 4_000_000 + b"\n")
    assert r.returncode == 75 and b"451 4.7.1 sending limit exceeded" in r.stderr, r.stderr
    assert len(lab.inbox("a@hamap.local")) == 2


def test_recipients_per_hour_and_per_user(serve_factory):
    """The recipient limit counts every recipient of a message, and each user has their own."""
    require_other_user()
    lab = start_lab(serve_factory, smtp="send_recipients_per_hour = 3")
    rcpts = ["a@hamap.local", "b@hamap.local", "far1@example.net", "far2@example.net"]
    r = sendmail(lab, "-i", *rcpts, input=MSG, user="nobody")
    assert r.returncode == 75 and b"451 4.7.1" in r.stderr, r
    r = sendmail(lab, "-i", *rcpts[:3], input=MSG, user="nobody")
    assert r.returncode == 0, r.stderr
    r = sendmail(lab, "-i", "a@hamap.local", input=MSG, user="nobody")
    assert r.returncode == 75, r
    r = sendmail(lab, "-i", *rcpts[:3], input=MSG)  # root: a budget of its own
    assert r.returncode == 0, r.stderr
    assert len(lab.inbox("a@hamap.local")) == 2 and len(lab.queue()) == 2
