"""Configuration: the loader's errors, relative paths, and `mailcove serve` refusing a bad config
with one line naming file and key, exit status 2, and nothing started."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailcove.config import ConfigError, Settings, load_settings
from mailcove.config.settings import LISTENER_NAMES, ListenSettings
from mailcove.net.addresses import ListenAddress, can_bind_privileged, parse_address, parse_overrides, plan_listeners


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mailcove.toml"
    p.write_text(text)
    return p


# ---- the loader -------------------------------------------------------------------------------


def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "[tls]\nenable = true\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert e.value.source == str(p) and e.value.key == "tls.enable"
    assert "unknown key" in str(e.value)


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, '[auth]\nallow_plaintext = "yes"\n')
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert e.value.key == "auth.allow_plaintext"
    p = write(tmp_path, "[listen]\nsmtp = [25]\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert e.value.key == "listen.smtp[0]"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path / "nope.toml")
    assert "file not found" in str(e.value)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    p = sub / "m.toml"
    p.write_text('data_dir = "data"\n[tls]\ncert = "c.pem"\nkey = "k.pem"\n[server]\ncontrol_socket = "ctl"\n')
    s = load_settings(p)
    assert s.data_dir == sub / "data"
    assert s.tls.cert == sub / "c.pem" and s.tls.key == sub / "k.pem"
    assert s.control_socket_path == sub / "ctl"


def test_env_and_data_override(tmp_path, monkeypatch):
    p = write(tmp_path, 'hostname = "x.example"\n')
    monkeypatch.setenv("MAILCOVE_CONFIG", str(p))
    s = load_settings(None, data_dir=str(tmp_path / "d"))
    assert s.hostname == "x.example" and s.data_dir == tmp_path / "d"


def test_defaults_are_documented():
    """Every key in settings.py appears in docs/configuration.md with its default."""
    import dataclasses

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    s = Settings()
    for section in dataclasses.fields(s):
        value = getattr(s, section.name)
        if not section.metadata.get("toml", True):
            continue
        if dataclasses.is_dataclass(value):
            assert f"[{section.name}]" in doc, section.name
            for f in dataclasses.fields(value):
                assert f"`{f.name}`" in doc, f"{section.name}.{f.name} is not documented"
        else:
            assert f"`{section.name}`" in doc, section.name
    for name in LISTENER_NAMES:
        assert f"`{name}`" in doc


# ---- listener addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:25", "127.0.0.1", 25),
        ("[::1]:143", "::1", 143),
        ("*:25", None, 25),
        (":25", None, 25),
        ("2525", None, 2525),
        ("mx1.hamap.local:587", "mx1.hamap.local", 587),
        ("127.0.0.1", "127.0.0.1", 99),
        ("[::]", "::", 99),
    ],
)
def test_parse_address(text, host, port):
    assert parse_address(text, 99) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["", "::1:143", "[::1", "[nope]:1", "host:x", "host:70000", "[::1]x"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_address_str_round_trips():
    for text in ("127.0.0.1:25", "[::1]:143", "*:25"):
        assert str(parse_address(text)) == text


def test_standard_or_unprivileged_ports():
    s = Settings()
    # http is off unless configured (issue 7); None asks for its default address like the others
    assert next(p for p in plan_listeners(s) if p.name == "http").addresses == ()
    assert next(p for p in plan_listeners(s) if p.name == "https").addresses == ()
    s.listen.http = s.listen.https = None
    std = {p.name: p.addresses[0].port for p in plan_listeners(s, privileged=True)}
    unpriv = {p.name: p.addresses[0].port for p in plan_listeners(s, privileged=False)}
    assert std == {"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993, "pop3": 110,
                   "pop3s": 995, "http": 80, "https": 443}
    assert unpriv == {"smtp": 2525, "submission": 2587, "submissions": 2465, "imap": 2143, "imaps": 2993,
                      "pop3": 2110, "pop3s": 2995, "http": 8080, "https": 8443}
    assert all(p.addresses[0].host is None for p in plan_listeners(s, privileged=True))


def test_can_bind_privileged_reads_capabilities(monkeypatch, tmp_path):
    import mailcove.net.addresses as addresses

    monkeypatch.setattr(addresses.os, "geteuid", lambda: 1000)
    real_path = addresses.Path

    def fake_path(status: str, sysctl: str):
        def make(p: str):
            if p == "/proc/self/status":
                return real_path(tmp_path / "status")
            if p.endswith("ip_unprivileged_port_start"):
                return real_path(tmp_path / "sysctl")
            return real_path(p)

        (tmp_path / "status").write_text(status)
        (tmp_path / "sysctl").write_text(sysctl)
        return make

    monkeypatch.setattr(addresses, "Path", fake_path("CapEff:\t0000000000000000\n", "1024\n"))
    assert not can_bind_privileged()
    monkeypatch.setattr(addresses, "Path", fake_path("CapEff:\t0000000000000400\n", "1024\n"))
    assert can_bind_privileged()  # bit 10 = CAP_NET_BIND_SERVICE
    monkeypatch.setattr(addresses, "Path", fake_path("CapEff:\t0000000000000000\n", "0\n"))
    assert can_bind_privileged()
    monkeypatch.setattr(addresses, "Path", fake_path("CapEff:\t0000000000000000\n", "100\n"))
    assert not can_bind_privileged()  # 25 and 80 would still be refused


def test_overrides_and_switching_off():
    s = Settings()
    plans = {p.name: p for p in plan_listeners(s, parse_overrides(["smtp=", "imap=127.0.0.1:1143,[::1]:1143"]))}
    assert plans["smtp"].addresses == ()
    assert [str(a) for a in plans["imap"].addresses] == ["127.0.0.1:1143", "[::1]:1143"]
    with pytest.raises(ConfigError) as e:
        parse_overrides(["imap4=1"])
    assert e.value.source == "--listen"
    with pytest.raises(ConfigError) as e:
        plan_listeners(s, parse_overrides(["imap=bad:port"]))
    assert e.value.key == "listen.imap"


def test_tls_off_switches_implicit_tls_listeners_off():
    s = Settings()
    s.tls.enabled = False
    plans = {p.name: p for p in plan_listeners(s)}
    assert plans["imaps"].addresses == () and "tls" in plans["imaps"].reason_off
    with pytest.raises(ConfigError) as e:
        plan_listeners(s, parse_overrides(["pop3s=127.0.0.1:995"]))
    assert e.value.key == "listen.pop3s"


# ---- `mailcove serve` with a bad configuration --------------------------------------------------


def serve(tmp_path: Path, config: str, *listen: str) -> subprocess.CompletedProcess[str]:
    cfg = write(tmp_path, config)
    args = [sys.executable, "-m", "mailcove", "--config", str(cfg), "--data", str(tmp_path / "data"), "serve"]
    for item in listen:
        args += ["--listen", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def one_error_line(out: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert "ready" not in out.stdout


def test_serve_unknown_key(tmp_path):
    out = serve(tmp_path, "[server]\nshutdown_timout = 3\n")
    one_error_line(out, str(tmp_path / "mailcove.toml"), "server.shutdown_timout", "unknown key")
    assert not (tmp_path / "data").exists()  # nothing started, nothing created


def test_serve_wrong_type(tmp_path):
    out = serve(tmp_path, "[tls]\nenabled = 1\n")
    one_error_line(out, str(tmp_path / "mailcove.toml"), "tls.enabled")


def test_serve_missing_config_file(tmp_path):
    args = [sys.executable, "-m", "mailcove", "--config", str(tmp_path / "none.toml"), "serve"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    one_error_line(out, str(tmp_path / "none.toml"), "file not found")


def test_serve_bad_listen_address(tmp_path):
    out = serve(tmp_path, '[listen]\nimap = ["::1:143"]\n')
    one_error_line(out, "listen.imap", "brackets")


def test_serve_port_in_use_names_listener_and_starts_nothing(tmp_path):
    echo = Path(__file__).resolve().parents[1] / "serve" / "echo_protocol.py"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    cfg = write(tmp_path, "")
    # smtp and imaps have the echo protocol registered; smtp binds first and would succeed.
    code = (
        f"import runpy, sys; runpy.run_path({str(echo)!r}); from mailcove.cli.main import main; "
        f"sys.argv = ['mailcove', '--config', {str(cfg)!r}, '--data', {str(tmp_path / 'data')!r}, 'serve', "
        f"'--listen', 'smtp=127.0.0.1:{free_port}', '--listen', 'imaps=127.0.0.1:{port}']; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    busy.close()
    one_error_line(out, "--listen", "listen.imaps", f"127.0.0.1:{port}", "in use")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port), timeout=5)
    assert not (tmp_path / "data" / "control.sock").exists()
    assert not (tmp_path / "data" / "mail.db").exists()


def test_serve_port_in_use_from_config_file_names_file(tmp_path):
    echo = Path(__file__).resolve().parents[1] / "serve" / "echo_protocol.py"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cfg = write(tmp_path, f'[listen]\nsmtp = ["127.0.0.1:{port}"]\n')
    code = (
        f"import runpy, sys; runpy.run_path({str(echo)!r}); from mailcove.cli.main import main; "
        f"sys.argv = ['mailcove', '--config', {str(cfg)!r}, '--data', {str(tmp_path / 'data')!r}, 'serve', "
        "'--listen', 'imaps=']; main()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    busy.close()
    one_error_line(out, str(cfg), "listen.smtp", "in use")


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_serve_unreadable_cert_names_tls_cert(tmp_path, content):
    cert = tmp_path / "cert.pem"
    if content is not None:
        cert.write_text(content)
    out = serve(tmp_path, f'[tls]\ncert = "{cert}"\n')
    one_error_line(out, str(tmp_path / "mailcove.toml"), "tls.cert", str(cert))


def test_serve_key_not_matching_cert_names_tls_key(tmp_path):
    from mailcove.net.tls import generate_self_signed

    generate_self_signed("one.test", tmp_path / "1.crt", tmp_path / "1.key")
    generate_self_signed("two.test", tmp_path / "2.crt", tmp_path / "2.key")
    out = serve(tmp_path, f'[tls]\ncert = "{tmp_path / "1.crt"}"\nkey = "{tmp_path / "2.key"}"\n')
    one_error_line(out, "tls.key")


def test_serve_bad_min_version(tmp_path):
    out = serve(tmp_path, '[tls]\nmin_version = "TLSv1.0"\n')
    one_error_line(out, "tls.min_version")


def test_listen_settings_by_listener_has_every_listener_in_order():
    listen = ListenSettings(smtp=["127.0.0.1:25"], https=["*:443"])
    by_name = listen.by_listener()
    assert tuple(by_name) == LISTENER_NAMES == tuple(f.name for f in dataclasses.fields(ListenSettings))
    assert by_name["smtp"] == ["127.0.0.1:25"] and by_name["https"] == ["*:443"] and by_name["imap"] is None
