"""Issue 14: one local-injection protocol (net/control.py) on both local sockets, one client, one
result type, and the same handlers (delivery/local.py) over a socket or in process."""

from __future__ import annotations

import os

from smtp_lab import start_lab, strip_trace

from mailcove.net.control import ControlClient, LocalReply, Request

LARGE = b"Subject: large\r\n\r\n" + (b"x" * 78 + b"\r\n") * 3000  # past [store] inline_max_bytes


def test_reply_is_the_line_and_its_fields() -> None:
    ok = LocalReply.parse("OK a@hamap.local:1:7\r\n")
    assert (ok, ok.ok, ok.code, ok.enhanced, ok.text) == ("OK a@hamap.local:1:7", True, 250, "2.0.0",
                                                          "a@hamap.local:1:7")
    err = LocalReply.error(452, "4.2.2", "a@hamap.local is over its\r\nquota")
    assert err == "ERR 452 4.2.2 a@hamap.local is over its quota" and err.wire().endswith(b"quota\r\n")
    assert (err.ok, err.code, err.enhanced, err.text) == (False, 452, "4.2.2", "a@hamap.local is over its quota")
    garbled = LocalReply.parse("what?")
    assert (garbled.code, garbled.enhanced, garbled.text) == (451, "4.3.0", "what?")
    assert LocalReply.parse("").text == "no reply from the server"


def test_request_lines_round_trip() -> None:
    for r in (Request.deliver(10, ["a@hamap.local", "a@hamap.local", "b@hamap.local"]),
              Request.submit(3, None, ["a"]), Request.submit(3, "", ["a"]), Request.submit(3, "x@y.example", ["a"])):
        words = r.line().decode().split()
        assert Request.parse(words[0], words[1:]) == r
    assert Request.deliver(1, ["a", "a"]).recipients == ("a",)


def test_both_sockets_speak_it(serve_factory) -> None:  # type: ignore[no-untyped-def]
    lab = start_lab(serve_factory)
    # the control socket (the administrator's): DELIVER, the bytes as given, no trace
    with ControlClient(lab.srv.control_socket) as c:
        assert c.ping()
        r = c.deliver(b"Subject: lda\r\n\r\nx\r\n", ["a@hamap.local"])
        assert r.ok and r.text.startswith("a@hamap.local:")
        # and SUBMIT on the same connection: resolved, traced, the queue entry in the same commit
        r = c.submit(LARGE, None, ["b@hamap.local", "far@remote.example"])
        assert r.ok and r.text.endswith(" queue:1"), r
        assert c.deliver(b"x", ["nobody@hamap.local"]).enhanced == "5.1.1"  # refused after the body: usable
        assert c.ping()
    assert lab.inbox("a@hamap.local") == [b"Subject: lda\r\n\r\nx\r\n"]
    [stored] = lab.inbox("b@hamap.local")
    trace, body = strip_trace(stored)
    assert trace.startswith(b"Return-Path: <root@") and b"Received: from local user root (uid 0)" in trace
    assert body == LARGE
    # the message went into the store as sent: the stored file is the bytes the client wrote
    blobs = lab.srv.data_dir / "blobs"
    assert LARGE in [p.read_bytes() for p in blobs.rglob("*") if p.is_file()]
    # the submit socket (any local user's) takes SUBMIT only
    with ControlClient(lab.submit_socket) as c:
        r = c.deliver(b"x", ["a@hamap.local"])
        assert (r.code, r.enhanced) == (500, "5.5.1") and "SUBMIT" in r.text
    with ControlClient(lab.submit_socket) as c:
        assert c.submit(b"Subject: s\r\n\r\ns\r\n", None, ["a@hamap.local"]).ok
    assert len(lab.inbox("a@hamap.local")) == 2


def test_in_process_request_is_handled_alike(serve_factory) -> None:  # type: ignore[no-untyped-def]
    """No server: the same request and handler in this process (`mailcove deliver` and
    `sendmail` without a server)."""
    from mailcove.config import load_settings
    from mailcove.delivery.local import run_locally

    lab = start_lab(serve_factory)
    lab.srv.stop()
    settings = load_settings(lab.srv.config_path, data_dir=str(lab.srv.data_dir))
    r = run_locally(settings, Request.deliver(5, ["nobody@hamap.local"]), b"x\r\n\r\n")
    assert (r.ok, r.code, r.enhanced) == (False, 550, "5.1.1")
    r = run_locally(settings, Request.submit(len(LARGE), None, ["a@hamap.local"]), LARGE)
    assert r.ok and r.text.startswith("a@hamap.local:")
    [stored] = lab.inbox("a@hamap.local")
    trace, body = strip_trace(stored)
    assert body == LARGE and f"with local (user {_me()})".encode() in trace
    r = run_locally(settings, Request.submit(1, None, ["nobody@hamap.local"]), b"x")
    assert (r.code, r.enhanced) == (550, "5.1.1") and "nobody@hamap.local" in r.text


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
