"""POP3 and IMAP on one maildrop: what a POP3 client deletes (DELE + QUIT) an IMAP client that has
INBOX selected sees as EXPUNGE, in IDLE and on NOOP, because POP3 expunges through the store and
the store's change bus tells every session of the user."""

from __future__ import annotations

import poplib

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from pop3.helpers import PASSWORD, fill, login, message, start_pop3

A = "a@hamap.local"


def test_pop3_deletions_are_imap_expunges(serve_factory):
    srv = start_pop3(serve_factory, listeners={"imap": "127.0.0.1:0"})
    msgs = [message(i) for i in range(1, 5)]
    uids = fill(srv, A, msgs)
    imap = IMAPClient("127.0.0.1", port=srv.port("imap"), ssl=False, timeout=30)
    imap.login(A, PASSWORD)
    assert imap.select_folder("INBOX")[b"EXISTS"] == 4
    imap.idle()
    p = login(srv, A)
    p.retr(2)
    p.dele(1)
    p.dele(3)
    assert imap.idle_check(timeout=0.5) == []  # DELE only marks; nothing is removed before QUIT
    p.quit()
    seen = []
    for _ in range(20):
        seen += [r for r in imap.idle_check(timeout=0.5) if r[1] == b"EXPUNGE"]
        if len(seen) == 2:
            break
    imap.idle_done()
    # Sequence numbers: message 1 goes first, then the old message 3 is number 2.
    assert sorted(r[0] for r in seen) in ([1, 2], [1, 3])
    assert sorted(imap.search("ALL")) == [uids[1], uids[3]]
    # RETR marked message 2 \Seen at QUIT, as Dovecot does.
    assert b"\\Seen" in imap.get_flags([uids[1]])[uids[1]]
    assert b"\\Seen" not in imap.get_flags([uids[3]])[uids[3]]
    imap.logout()
    p = login(srv, A)
    assert p.stat()[0] == 2
    p.quit()


def test_failed_pop3_logins_throttle_imap_too(serve_factory):
    """The failed-login throttle is the directory's, shared by every protocol: after POP3
    failures from one address, an IMAP login from it is refused even with the right password."""
    srv = start_pop3(
        serve_factory, "[auth]\nallow_plaintext = true\nmax_failures_per_ip = 2\n", listeners={"imap": "127.0.0.1:0"}
    )
    p = poplib.POP3(*srv.address("pop3"), timeout=30)
    for _ in range(2):
        p.user(A)
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.pass_("wrong")
    imap = IMAPClient("127.0.0.1", port=srv.port("imap"), ssl=False, timeout=30)
    with pytest.raises(LoginError):
        imap.login(A, PASSWORD)
