"""`mailcove serve` as a real process: banner, data dir, listeners, TLS reload, shutdown, logs."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailcove_testing import unavailable

ECHO = Path(__file__).with_name("echo_protocol.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(addr: tuple[str, int], tls: bool = False) -> tuple[socket.socket, object]:
    s = socket.create_connection(addr, timeout=10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    return s, s.makefile("rb")


def peer_fingerprint(s: ssl.SSLSocket) -> str:
    der = s.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_banner_lists_every_listener_and_data_dir(serve_factory):
    srv = serve_factory()
    lines = srv.banner.splitlines()
    assert lines[0].startswith("mailcove ") and "mx1.hamap.local" in lines[0]
    assert any(line.split()[:2] == ["data", "dir"] and str(srv.data_dir.resolve()) in line for line in lines)
    for name in ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http"):
        row = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(row) == 1, (name, srv.banner)
        if name in srv.state["listeners"]:
            assert all(a in row[0] for a in srv.state["listeners"][name])
        else:
            assert "not yet available" in row[0]
    assert any(line.split()[0] == "control" and str(srv.control_socket) in line for line in lines)
    assert any(line.split()[0] == "tls" and "SHA-256" in line for line in lines)
    assert lines[-1] == "ready"


def test_data_dir_is_created_0700_and_control_socket_0600(serve_factory, tmp_path):
    data = tmp_path / "deep" / "data"
    srv = serve_factory(data_dir=data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(srv.control_socket.stat().st_mode) == 0o600
    key = data / "tls" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_unregistered_protocol_is_shown_and_not_bound(serve_factory, tmp_path):
    port = free_port()
    # Every listener has a protocol now; take http's away to see how a protocol not written yet
    # is shown.
    missing = tmp_path / "missing_protocol.py"
    missing.write_text("import functools\nfrom mailcove import app\nfrom mailcove.cli import serve\n"
                       "serve.run_server = functools.partial(app.run_server, handlers={'http': None})\n")
    srv = serve_factory(preload=[missing], listeners={"http": f"127.0.0.1:{port}"})
    assert "http" not in srv.state["listeners"]
    row = next(line for line in srv.banner.splitlines() if line.split()[0] == "http")
    assert "not yet available" in row and f"127.0.0.1:{port}" in row
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_http_listener_serves_and_can_be_switched_off(serve_factory):
    srv = serve_factory(listeners={"http": None})
    row = next(line for line in srv.banner.splitlines() if line.split()[0] == "http")
    assert row.split()[1] == "off"
    srv = serve_factory()  # the fixture configures every listener, http included
    s, f = connect(srv.address("http"))
    s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert f.readline().startswith(b"HTTP/1.1 404 ")
    s.close()


def test_registered_protocol_serves_and_listen_off(serve_factory):
    srv = serve_factory(preload=[ECHO], listeners={"imaps": None})
    s, f = connect(srv.address("smtp"))
    assert f.readline().startswith(b"HELLO ")
    s.sendall(b"ping\r\n")
    assert f.readline() == b"ECHO ping\r\n"
    s.close()
    row = next(line for line in srv.banner.splitlines() if line.split()[0] == "imaps")
    assert row.split()[1] == "off"
    assert "imaps" not in srv.state["listeners"]


def test_ipv6_and_several_addresses(serve_factory):
    if not socket.has_ipv6:
        unavailable("IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        unavailable("a ::1 loopback address")
    srv = serve_factory(preload=[ECHO], listeners={"smtp": "127.0.0.1:0,[::1]:0"})
    addrs = srv.addresses("smtp")
    assert {a[0] for a in addrs} == {"127.0.0.1", "::1"}
    for addr in addrs:
        s, f = connect(addr)
        assert f.readline().startswith(b"HELLO ")
        s.close()


def test_tls_disabled_turns_implicit_tls_listeners_off_lab_mode(serve_factory):
    srv = serve_factory("[tls]\nenabled = false\n[auth]\nallow_plaintext = true\n", preload=[ECHO])
    for name in ("submissions", "imaps", "pop3s"):
        row = next(line for line in srv.banner.splitlines() if line.split()[0] == name)
        assert "[tls] enabled = false" in row
    assert "LAB MODE" in srv.banner
    assert not (srv.data_dir / "tls").exists()


def test_implicit_tls_and_starttls(serve_factory):
    srv = serve_factory(preload=[ECHO])
    s, f = connect(srv.address("imaps"), tls=True)
    assert f.readline().endswith(b"tls=1\r\n")
    assert s.version() in ("TLSv1.2", "TLSv1.3")
    s.close()
    s, f = connect(srv.address("smtp"))
    assert f.readline().endswith(b"tls=0\r\n")
    # "ping" pipelined after STARTTLS must be discarded, not read as if it came over TLS.
    s.sendall(b"STARTTLS\r\nping\r\n")
    assert f.readline() == b"GO\r\n"
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.settimeout(10)
    tf = t.makefile("rb")
    t.sendall(b"after\r\n")
    assert tf.readline() == b"ECHO after\r\n"
    t.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_versions_refused(serve_factory):
    srv = serve_factory(preload=[ECHO])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        unavailable("an OpenSSL that can offer TLS 1.1")
    raw = socket.create_connection(srv.address("imaps"), timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()


def _write_cert(dir_: Path, cn: str) -> tuple[Path, Path]:
    from mailcove.net.tls import generate_self_signed

    cert, key = dir_ / f"{cn}.crt", dir_ / f"{cn}.key"
    generate_self_signed(cn, cert, key)
    return cert, key


def test_sighup_reloads_certificate_without_dropping_connections(serve_factory, tmp_path):
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    cert, key = _write_cert(cert_dir, "one.test")
    live_cert, live_key = cert_dir / "live.crt", cert_dir / "live.key"
    live_cert.write_bytes(cert.read_bytes())
    live_key.write_bytes(key.read_bytes())
    srv = serve_factory(f'[tls]\ncert = "{live_cert}"\nkey = "{live_key}"\n', preload=[ECHO])
    old, old_f = connect(srv.address("imaps"), tls=True)
    assert old_f.readline().startswith(b"HELLO ")
    fp_old = peer_fingerprint(old)
    new_cert, new_key = _write_cert(cert_dir, "two.test")
    live_cert.write_bytes(new_cert.read_bytes())
    live_key.write_bytes(new_key.read_bytes())
    srv.reload()
    want = hashlib.sha256(
        x509.load_pem_x509_certificate(new_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()
    deadline = time.monotonic() + 10
    while True:
        s, f = connect(srv.address("imaps"), tls=True)
        f.readline()
        fp = peer_fingerprint(s)
        s.close()
        if fp == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert fp == want != fp_old
    # The connection made before the reload still works, with its original certificate.
    old.sendall(b"still\r\n")
    assert old_f.readline() == b"ECHO still\r\n"
    assert peer_fingerprint(old) == fp_old
    # A broken file on SIGHUP keeps the current certificate serving.
    live_cert.write_text("garbage")
    srv.reload()
    time.sleep(0.5)
    s, f = connect(srv.address("imaps"), tls=True)
    assert f.readline().startswith(b"HELLO ")
    assert peer_fingerprint(s) == want
    s.close()
    assert "TLS reload failed" in srv.logs()
    old.close()


def test_sigterm_lets_sessions_finish_then_exits_0(serve_factory):
    srv = serve_factory("[server]\nshutdown_timeout = 10\n", preload=[ECHO])
    busy, busy_f = connect(srv.address("smtp"))
    _idle, idle_f = connect(srv.address("smtp"))
    busy_f.readline()
    idle_f.readline()
    busy.sendall(b"SLOW 1.5\r\n")
    time.sleep(0.3)
    srv.signal(15)
    # Nothing new is accepted once shutdown began.
    time.sleep(0.3)
    with pytest.raises(OSError):
        c = socket.create_connection(srv.address("smtp"), timeout=2)
        if not c.recv(100):
            raise ConnectionResetError("closed without greeting")
    assert idle_f.readline() == b"SHUTDOWN\r\n"
    assert busy_f.readline() == b"DONE\r\n"
    assert srv.wait(15) == 0
    assert not srv.control_socket.exists()
    assert not (srv.data_dir / "serve.json").exists()


def test_shutdown_timeout_cancels_stuck_sessions(serve_factory):
    srv = serve_factory("[server]\nshutdown_timeout = 1\n", preload=[ECHO])
    s, f = connect(srv.address("smtp"))
    f.readline()
    s.sendall(b"SLOW 60\r\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.signal(15)
    assert srv.wait(20) == 0
    assert time.monotonic() - t0 < 10
    assert "did not finish within the shutdown timeout" in srv.logs()


def test_one_log_line_per_session_event_with_session_id(serve_factory):
    srv = serve_factory(preload=[ECHO])
    s, f = connect(srv.address("smtp"))
    sid = f.readline().split()[1].decode()
    s.sendall(b"hello\r\nQUIT\r\n")
    f.readline()
    f.readline()
    s.close()
    time.sleep(0.3)
    srv.stop()
    lines = [line for line in srv.logs().splitlines() if f"s={sid}" in line]
    assert any("connect from 127.0.0.1:" in line for line in lines), lines
    assert any("command hello" in line for line in lines)
    assert any("disconnect" in line for line in lines)


def test_tls_show_prints_subject_sans_expiry_fingerprint(tmp_path):
    data = tmp_path / "d"
    cfg = tmp_path / "c.toml"
    cfg.write_text('hostname = "mx1.hamap.local"\n')
    out = subprocess.run(
        [sys.executable, "-m", "mailcove", "--config", str(cfg), "--data", str(data), "--create", "tls", "show"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "CN=mx1.hamap.local" in out.stdout
    assert "DNS:mx1.hamap.local" in out.stdout and "DNS:localhost" in out.stdout and "IP:127.0.0.1" in out.stdout
    der = x509.load_pem_x509_certificate((data / "tls" / "cert.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    fp = hashlib.sha256(der).hexdigest().upper()
    assert ":".join(fp[i : i + 2] for i in range(0, 64, 2)) in out.stdout
    assert "UTC" in out.stdout
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_concurrent_sessions_are_independent(serve_factory):
    srv = serve_factory(preload=[ECHO])
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            s, f = connect(srv.address("smtp"))
            f.readline()
            for j in range(5):
                s.sendall(f"m{i}-{j}\r\n".encode())
                assert f.readline() == f"ECHO m{i}-{j}\r\n".encode()
            s.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _deliver_cli(srv, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "mailcove", "--config", str(srv.config_path), "--data", str(srv.data_dir), "deliver"]
    return subprocess.run([*argv, *args], input=data, capture_output=True, timeout=60)


def test_mailcove_deliver_through_server_and_without_one(serve_factory):
    srv = serve_factory(accounts=["a@hamap.local"])
    out = _deliver_cli(srv, "--to", "a@hamap.local", data=b"Subject: one\n\nvia server\n")
    assert out.returncode == 0, out.stderr
    assert "delivered" in srv.logs()  # it went through the control socket
    out = _deliver_cli(srv, "--to", "nobody@hamap.local", data=b"Subject: x\n\nx\n")
    assert out.returncode == 67, out.stderr  # EX_NOUSER, as an MTA expects of an LDA
    assert srv.stop() == 0
    out = _deliver_cli(srv, "-d", "A@hamap.local", data=b"Subject: two\n\nno server\n")
    assert out.returncode == 0, out.stderr
    # Bare LF became CRLF once, so the stored size is what IMAP and POP3 will serve.
    assert srv.read_mailbox("a@hamap.local") == [
        b"Subject: one\r\n\r\nvia server\r\n",
        b"Subject: two\r\n\r\nno server\r\n",
    ]


def test_tls_handshakes_never_lose_the_client_hello(serve_factory):
    """Regression: a ClientHello that reached the plain stream buffer before the upgrade was
    discarded with the pipelined bytes, and the handshake hung."""
    srv = serve_factory(preload=[ECHO])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(25):
        s = ctx.wrap_socket(socket.create_connection(srv.address("imaps"), timeout=5), server_hostname="localhost")
        s.close()
        raw = socket.create_connection(srv.address("smtp"), timeout=5)
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"STARTTLS\r\n")
        assert f.readline() == b"GO\r\n"
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        t.close()
