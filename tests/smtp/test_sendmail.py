"""`mailcove sendmail` and `mailcove-sendmail`: the /usr/sbin/sendmail interface, through the submit
socket (also as another Unix user without access to the data dir) and straight into the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from smtp_lab import start_lab, strip_trace

from mailcove.cli.sendmail import SendmailArgs, UsageError, parse_args, prepare
from mailcove_testing import require_tool, unavailable

REPO = Path(__file__).resolve().parents[2]


def _sendmail(lab, *args, input: bytes, script: bool = False):
    env = dict(os.environ, MAILCOVE_CONFIG=str(lab.srv.config_path))
    if script:
        argv = [str(Path(sys.executable).parent / "mailcove-sendmail"), *args]
    else:
        argv = [sys.executable, "-m", "mailcove", "--data", str(lab.srv.data_dir), "sendmail", *args]
    if script:
        env["MAILCOVE_CONFIG"] = str(lab.srv.config_path)
    return subprocess.run(argv, input=input, capture_output=True, timeout=60, env=env, cwd=REPO)


def test_parse_args_sendmail_syntax():
    a = parse_args(["-t", "-oi", "-f", "root@x.org", "-FCron Daemon", "-odi", "-oem", "-v", "u1,u2", "u3"])
    assert (a.read_headers, a.dot_ends, a.sender, a.full_name) == (True, False, "root@x.org", "Cron Daemon")
    assert a.recipients == ["u1", "u2", "u3"]
    assert parse_args(["-i", "-fme@x.org", "--", "-odd"]).recipients == ["-odd"]
    assert parse_args(["-bp"]).mode == "p"
    assert parse_args(["-f<>", "a"]).sender == ""
    with pytest.raises(UsageError):
        parse_args(["-bs"])
    with pytest.raises(UsageError):
        parse_args(["-f"])


def test_prepare_headers_dot_and_bcc():
    raw = b"To: a@hamap.local, B <b@hamap.local>\nCc: c@example.net\nBcc: secret@hamap.local\n"
    raw += b"Subject: s\n\nx\n.\nafter\n"
    data, rcpts = prepare(raw, SendmailArgs(read_headers=True, full_name="Cron"), "root", "mx1.hamap.local")
    assert rcpts == ["a@hamap.local", "b@hamap.local", "c@example.net", "secret@hamap.local"]
    assert b"Bcc" not in data and b"after" not in data  # no -i: the dot line ended the input
    assert data.startswith(b'From: Cron <root@mx1.hamap.local>\r\nDate: ')
    assert b"\r\nMessage-ID: <" in data and data.endswith(b"Subject: s\r\n\r\nx\r\n")
    data, rcpts = prepare(b"Subject: s\n\n.\nkept\n", SendmailArgs(dot_ends=False, recipients=["a"]), "u", "h")
    assert data.endswith(b"\r\n.\r\nkept\r\n") and rcpts == ["a"]
    data, _ = prepare(b"just text\n", SendmailArgs(recipients=["a"]), "u", "h")
    assert data.endswith(b"\r\n\r\njust text\r\n")


def test_sendmail_through_the_submit_socket(serve_factory):
    lab = start_lab(serve_factory)
    msg = b"From: root@mx1.hamap.local\nTo: a, far@example.net\nBcc: b@hamap.local\nSubject: cron\n\n.\nline\n"
    r = _sendmail(lab, "-t", "-i", input=msg)
    assert r.returncode == 0, r.stderr
    [a] = lab.inbox("a@hamap.local")
    [b] = lab.inbox("b@hamap.local")
    trace, body = strip_trace(a)
    assert b"Received: from local user root (uid 0)" in trace
    assert body.startswith(b"Date: ") and b"\r\nMessage-ID: <" in body  # added, as sendmail does
    assert b"\r\nFrom: root@mx1.hamap.local\r\nTo: a, far@example.net\r\nSubject: cron\r\n" in body
    assert body.endswith(b"\r\n\r\n.\r\nline\r\n") and b"Bcc" not in body
    assert strip_trace(b)[1] == body
    [(item, _)] = lab.queue()
    assert item.envelope.sender == "root@mx1.hamap.local" and item.recipients[0].address == "far@example.net"
    # Unknown local user: EX_NOUSER, nothing stored.
    r = _sendmail(lab, "nobody-here@hamap.local", input=b"Subject: x\n\nx\n")
    assert r.returncode == 67 and b"5.1.1" in r.stderr
    # The installable script, sendmail's own syntax, no -i: "." ends the input.
    r = _sendmail(lab, "-f", "cron@hamap.local", "b", input=b"Subject: two\n\nx\n.\nignored\n", script=True)
    assert r.returncode == 0, r.stderr
    b2 = lab.inbox("b@hamap.local")[1]
    assert b2.startswith(b"Return-Path: <cron@hamap.local>\r\n") and b2.endswith(b"Subject: two\r\n\r\nx\r\n")
    assert b"\r\nFrom: cron@hamap.local\r\n" in b2


def test_another_unix_user_without_data_dir_access(serve_factory):
    """The submit socket is the only way in for other users: the data dir is 0700. The kernel
    names the caller (SO_PEERCRED), whatever the client claims."""
    if os.geteuid() != 0:
        unavailable("root (to switch to another user)")
    require_tool("setpriv")
    lab = start_lab(serve_factory)
    assert lab.srv.data_dir.stat().st_mode & 0o077 == 0
    client = (
        "import socket,sys\n"
        "m=b'Subject: from nobody\\r\\n\\r\\nhi\\r\\n'\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "s.sendall(b'SUBMIT %d - a@hamap.local\\r\\n' % len(m) + m)\n"
        "print(s.recv(4096).decode().strip())\n"
        "try:\n open(sys.argv[2] + '/mail.db')\nexcept PermissionError:\n print('no data dir access')\n"
    )
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c",
                        client, str(lab.submit_socket), str(lab.srv.data_dir)], capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert out.startswith("OK a@hamap.local:"), (out, r.stderr)
    assert "no data dir access" in out
    [stored] = lab.inbox("a@hamap.local")
    trace, body = strip_trace(stored)
    assert trace.startswith(b"Return-Path: <nobody@mx1.hamap.local>\r\nReceived: from local user nobody (uid 65534)")
    assert body == b"Subject: from nobody\r\n\r\nhi\r\n"


def test_sendmail_without_a_server_stores_directly(serve_factory):
    lab = start_lab(serve_factory, smtp="")
    lab.srv.stop()
    # The same config without the socket: an administrator's sendmail opens the store.
    text = lab.srv.config_path.read_text().replace(f'submit_socket = "{lab.submit_socket}"', "")
    lab.srv.config_path.write_text(text)
    r = _sendmail(lab, "-i", "a@hamap.local", "far@example.net", input=b"Subject: direct\n\nx\n")
    assert r.returncode == 0, r.stderr
    [stored] = lab.inbox("a@hamap.local")
    assert stored.endswith(b"Subject: direct\r\n\r\nx\r\n") and b"with local (user root)" in stored
    out = subprocess.run([sys.executable, "-m", "mailcove", "--config", str(lab.srv.config_path), "--data",
                          str(lab.srv.data_dir), "mailq"], capture_output=True, timeout=60, cwd=REPO)
    assert b"far@example.net" in out.stdout
