"""Every listener of the running server answers: connect, (TLS for the implicit-TLS ones), read
the greeting, say goodbye."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from mailcove.check.model import Finding, ServerState, split_address
from mailcove.config import ConfigError, Settings
from mailcove.config.settings import IMPLICIT_TLS_LISTENERS
from mailcove.net.addresses import plan_listeners

# listener -> (what to send first, or None to wait for a greeting; the greeting's prefix; goodbye)
PROBES: dict[str, tuple[bytes | None, bytes, bytes]] = {
    "smtp": (None, b"220", b"QUIT\r\n"),
    "submission": (None, b"220", b"QUIT\r\n"),
    "submissions": (None, b"220", b"QUIT\r\n"),
    "imap": (None, b"* OK", b"a LOGOUT\r\n"),
    "imaps": (None, b"* OK", b"a LOGOUT\r\n"),
    "pop3": (None, b"+OK", b"QUIT\r\n"),
    "pop3s": (None, b"+OK", b"QUIT\r\n"),
    "http": (b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", b"HTTP/1.", b""),
    "https": (b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", b"HTTP/1.", b""),
}


def no_verify_context() -> ssl.SSLContext:
    # Reachability only; whether the certificate is any good is the tls check's question.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def not_running(settings: Settings, state: ServerState | None) -> Finding | None:
    if state is None:
        return Finding("listeners", "server", "fail",
                       f"mailcove serve is not running (no {settings.data_dir / 'serve.json'})",
                       "start it: `mailcove serve` (or `systemctl start mailcove`), then look at its log for errors")
    if not state.alive:
        return Finding("listeners", "server", "fail",
                       f"{state.path} names pid {state.pid}, which is not running: the server stopped without "
                       "cleaning up (killed, crashed, or out of memory)",
                       "start it again (`systemctl restart mailcove` or `mailcove serve`) and look at the end of "
                       "its log (`journalctl -u mailcove`) for why it stopped")
    return None


async def check(settings: Settings, state: ServerState | None, timeout: float) -> list[Finding]:
    out: list[Finding] = []
    problem = not_running(settings, state)
    if problem is not None:
        out.append(problem)
    if state is None:
        return out
    probes = [probe(settings, name, address, timeout)
              for name, addresses in state.listeners.items() if name in PROBES for address in addresses]
    out.extend(await asyncio.gather(*probes))
    if state.alive:
        out.extend(compare_with_config(settings, state))
    return out


def compare_with_config(settings: Settings, state: ServerState) -> list[Finding]:
    """The configuration file against what the running server bound: a listener added or moved
    in the file after the start (a restart is due), or `--listen` overrides on the command line."""
    try:
        plans = plan_listeners(settings)
    except ConfigError as exc:
        return [Finding("listeners", "configuration", "fail", f"the configuration is invalid: {exc}",
                        "fix that key; the running server still uses the configuration it started with")]
    out: list[Finding] = []
    for plan in plans:
        bound = state.listeners.get(plan.name, [])
        configured = sorted({a.port for a in plan.addresses if a.port != 0})
        wanted = ", ".join(str(a) for a in plan.addresses)
        if plan.addresses and not bound:
            out.append(Finding("listeners", f"{plan.name} (configured)", "warn",
                               f"configured on {wanted}, but the running server does not listen for it",
                               "restart mailcove to apply the configuration (`systemctl restart mailcove`), "
                               "unless it was switched off on purpose with --listen"))
        elif bound and configured and sorted({split_address(a)[1] for a in bound}) != configured:
            out.append(Finding("listeners", f"{plan.name} (configured)", "warn",
                               f"configured on {wanted}, but running on {', '.join(bound)}",
                               "restart mailcove to apply the configuration, or drop the --listen override"))
    return out


async def probe(settings: Settings, name: str, address: str, timeout: float) -> Finding:
    host, port = split_address(address)
    subject = f"{name} {address}"
    first, expect, bye = PROBES[name]
    tls = name in IMPLICIT_TLS_LISTENERS
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=no_verify_context() if tls else None,
                                    server_hostname=settings.hostname if tls else None),
            timeout)
    except ConnectionRefusedError:
        return Finding("listeners", subject, "fail", f"connection to {host}:{port} refused: nothing listens there",
                       "start mailcove (`systemctl start mailcove` or `mailcove serve`); if it runs, check "
                       f"[listen] {name} and that no other program took port {port}")
    except TimeoutError:
        return Finding("listeners", subject, "fail", f"{host}:{port} did not answer within {timeout:g}s",
                       f"a firewall drops the connection (open {port}/tcp) or the server is overloaded")
    except (OSError, ssl.SSLError) as exc:
        what = "TLS handshake failed" if isinstance(exc, ssl.SSLError) else "cannot connect"
        return Finding("listeners", subject, "fail", f"{what}: {exc}",
                       "look at the server log; for TLS, `mailcove tls show` and the tls check below")
    try:
        if first is not None:
            writer.write(first.replace(b"%s", settings.hostname.encode()))
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if bye:
            writer.write(bye)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), timeout)
    except (TimeoutError, OSError, ssl.SSLError) as exc:
        err = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Finding("listeners", subject, "fail", f"connected but no greeting ({err})",
                       "the server accepts but does not answer: look at its log; it may be overloaded")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)
    shown = line.decode("utf-8", "replace").strip()[:120]
    if not line.startswith(expect):
        return Finding("listeners", subject, "fail", f"unexpected greeting {shown!r} (expected {expect.decode()}...)",
                       f"another program answers on port {port}, or the server refuses this client: look at the log")
    return Finding("listeners", subject, "ok", shown)
