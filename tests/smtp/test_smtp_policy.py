"""Access rules (Connect/From/To with REJECT, DISCARD, OK, RELAY), aliases, plus-addressing,
catch-all, postmaster and abuse, a whole pipelined transaction in one write, BDAT, DSN
parameters kept for the queue."""

from __future__ import annotations

from smtp_lab import start_lab, strip_trace

MSG = b"Subject: p\r\n\r\nbody\r\n"


def _setup_rules(lab):
    lab.cli("relay", "add", "Connect:127.0.0.4", "REJECT")
    lab.cli("relay", "add", "Connect:127.0.0.5", "DISCARD")
    lab.cli("relay", "add", "--from", "spammer@example.org", "REJECT")
    lab.cli("relay", "add", "--from", "quiet@example.org", "DISCARD")
    lab.cli("relay", "add", "--to", "blocked@hamap.local", "ERROR:5.7.1:550 Not this one")
    lab.cli("relay", "add", "--to", "partner.example", "RELAY")
    lab.cli("relay", "allow", "10.0.0")
    lab.cli("alias", "add", "team@hamap.local", "a@hamap.local", "b@hamap.local", "a@hamap.local")
    lab.cli("alias", "add", "fwd@hamap.local", "b@hamap.local", "out@example.com")
    lab.cli("alias", "add", "blocked@hamap.local", "a@hamap.local")


def test_access_rules(serve_factory):
    lab = start_lab(serve_factory, setup=_setup_rules)
    # Connect REJECT: 554 greeting, MAIL refused, QUIT answered.
    c = lab.raw(source="127.0.0.4")
    assert c.greeting.startswith(b"554 5.7.1")
    assert c.cmd(b"EHLO x").startswith(b"503 5.7.1")  # RFC 5321 3.1: 503 to all but QUIT
    assert c.cmd(b"MAIL FROM:<x@example.org>").startswith(b"503")
    assert c.cmd(b"QUIT").startswith(b"221")
    c.close()
    # Connect DISCARD: everything accepted, nothing stored.
    c = lab.raw(source="127.0.0.5")
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<a@hamap.local>\r\nDATA\r\n" + MSG + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.close()
    c = lab.raw(source="127.0.0.3")
    c.cmd(b"EHLO x")
    assert c.cmd(b"MAIL FROM:<spammer@example.org>").startswith(b"550 5.7.1")
    # From DISCARD: accepted and dropped.
    c.send(b"MAIL FROM:<quiet@example.org>\r\nRCPT TO:<a@hamap.local>\r\nDATA\r\n" + MSG + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    # To with its own ERROR reply; To RELAY lets anyone send to that domain.
    c.cmd(b"MAIL FROM:<x@example.org>")
    assert c.cmd(b"RCPT TO:<blocked@hamap.local>") == b"550 5.7.1 Not this one\r\n"
    assert c.cmd(b"RCPT TO:<someone@partner.example>").startswith(b"250")
    c.close()
    assert lab.inbox("a@hamap.local") == []
    [(item, _)] = [(i, b) for i, b in lab.queue()] or [(None, None)]
    assert item is None  # the transaction above had no DATA


def test_aliases_plus_catchall_postmaster_abuse(serve_factory):
    def setup(lab):
        _setup_rules(lab)
        lab.cli("alias", "add", "@hamap.local", "b@hamap.local")

    lab = start_lab(serve_factory, setup=setup)
    c = lab.raw(source="127.0.0.3")
    c.cmd(b"EHLO x")
    # team -> a, b (a listed twice); a+tag -> a; fwd -> b and a remote address.
    rcpts = [b"team@hamap.local", b"a+tag@hamap.local", b"A@HAMAP.LOCAL", b"fwd@hamap.local", b'"a"@hamap.local']
    c.send(b"MAIL FROM:<x@example.org>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r for r in rcpts) + b"DATA\r\n")
    assert [r[:3] for r in c.replies(7)] == [b"250"] * 6 + [b"354"]
    c.send(MSG + b".\r\n")
    assert c.reply().startswith(b"250")
    # Unknown names go to the catch-all; postmaster and abuse go to the configured admin (a).
    for rcpt in (b"whoever", b"postmaster", b"abuse"):
        c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<%s@hamap.local>\r\nDATA\r\n" % rcpt + MSG + b".\r\n")
        assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.send(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<postmaster>\r\nDATA\r\n" + MSG + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.close()
    a, b = lab.inbox("a@hamap.local"), lab.inbox("b@hamap.local")
    assert len(a) == 4  # once for the alias message, then postmaster, abuse, bare postmaster
    assert len(b) == 2  # once for the alias message (team and fwd), then the catch-all
    assert strip_trace(a[0])[1] == MSG
    [(item, body)] = lab.queue()
    assert [r.address for r in item.recipients] == ["out@example.com"]
    assert body.endswith(MSG)


def test_pipelined_transaction_in_one_write_bdat_and_dsn(serve_factory):
    lab = start_lab(serve_factory)
    c = lab.raw(source="127.0.0.1")
    blob = (b"EHLO pipeline.example\r\n"
            b"MAIL FROM:<x@hamap.local> BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef SIZE=100\r\n"
            b"RCPT TO:<a@hamap.local>\r\n"
            b"RCPT TO:<nobody@hamap.local>\r\n"
            b"RCPT TO:<far@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;far+40example.net\r\n"
            b"DATA\r\n" + MSG + b".\r\n"
            b"MAIL FROM:<x@hamap.local>\r\nRCPT TO:<b@hamap.local>\r\n"
            b"BDAT 10\r\n" + MSG[:10] + b"BDAT 3\r\n" + MSG[10:13] + b"BDAT %d LAST\r\n" % len(MSG[13:])
            + MSG[13:] + b"QUIT\r\n")
    c.send(blob)
    replies = c.replies(14)
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"550", b"250", b"354", b"250",
                                         b"250", b"250", b"250", b"250", b"250", b"221", b""], replies
    assert replies[10].startswith(b"250 2.0.0 13 octets")
    c.close()
    assert strip_trace(lab.inbox("a@hamap.local")[0])[1] == MSG
    assert strip_trace(lab.inbox("b@hamap.local")[0])[1] == MSG
    [(item, _)] = lab.queue()
    env = item.envelope
    assert (env.sender, env.ret, env.envid, env.body) == ("x@hamap.local", "HDRS", "abc+def", "8BITMIME")
    [r] = item.recipients
    assert (r.address, r.notify, r.orcpt) == ("far@example.net", ("SUCCESS", "DELAY"), "rfc822;far@example.net")


def test_mailq_lists_the_queue(serve_factory):
    lab = start_lab(serve_factory)
    assert "Mail queue is empty" in lab.cli("mailq").output
    c = lab.raw(source="127.0.0.1")
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@hamap.local>\r\nRCPT TO:<far@example.net>\r\nDATA\r\n" + MSG + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.close()
    out = lab.cli("mailq").output
    assert "x@hamap.local" in out and "far@example.net" in out and "1 Request." in out
    import json

    [item] = json.loads(lab.cli("mailq", "--json").output)
    assert item["recipients"][0]["address"] == "far@example.net"


def test_queue_alarm_is_logged(serve_factory):
    def setup(lab):
        from mailcove.config import load_settings
        from mailcove.delivery.local import run_locally
        from mailcove.net.control import Request

        settings = load_settings(lab.srv.config_path, data_dir=str(lab.srv.data_dir))
        assert run_locally(settings, Request.submit(len(MSG), "x@hamap.local", ["far@example.net"]), MSG).ok

    lab = start_lab(serve_factory, smtp="queue_alarm = 1", setup=setup)
    c = lab.raw(source="127.0.0.1")
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<x@hamap.local>\r\nRCPT TO:<far@example.net>\r\nDATA\r\n" + MSG + b".\r\n")
    assert [r[:3] for r in c.replies(4)] == [b"250", b"250", b"354", b"250"]
    c.close()
    import time

    deadline = time.monotonic() + 10
    while "above the alarm threshold 1" not in lab.srv.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "outbound queue holds 2 entries, above the alarm threshold 1" in lab.srv.logs()
