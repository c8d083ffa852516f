"""An open-relay probe: our own SMTP listener, from an address with no reason to relay, asked
to take mail from one outside domain to another. Anything but a refusal at RCPT is a failure.

The probe never sends DATA (and uses the reserved example.com / example.net), so no mail leaves.
Its source: `--probe-from`, else for a server reached on loopback 127.0.0.2 (mailcove trusts
only 127.0.0.1 and ::1 as "this machine"), else whatever address the kernel picks towards the
server's own public address, which is not "localhost"."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from mailcove.check.model import Finding, ServerState, split_address
from mailcove.config import Settings
from mailcove.directory import Action, Tag, open_directory

PROBE_FROM = "mailcove-relay-probe@example.com"
PROBE_TO = "mailcove-relay-probe@example.net"


def default_source(target_host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(target_host)
    except ValueError:
        return None
    if ip.version == 4 and ip.is_loopback:
        return "127.0.0.2"
    return None


async def _reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    """One (possibly multi-line) SMTP reply: (code, last line)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("the server closed the connection")
        text = line.decode("utf-8", "replace").rstrip()
        if len(text) < 4 or text[3] != "-":
            try:
                return int(text[:3]), text
            except ValueError:
                raise ConnectionError(f"not an SMTP reply: {text[:80]!r}") from None


async def _rule_for(settings: Settings, ip: str) -> str | None:
    """The access rule that lets `ip` relay, for the fix text."""
    try:
        async with open_directory(settings) as directory:
            rule = await directory.match_connect(ip)
    except Exception:
        return None
    if rule is not None and rule.action is Action.RELAY:
        flag = {Tag.TO: "--to ", Tag.FROM: "--from "}.get(rule.tag, "")
        return f"{rule.display.replace(chr(9), ' ')}|mailcove relay del {flag}{rule.pattern}"
    return None


async def check(settings: Settings, state: ServerState | None, timeout: float,
                probe_from: str | None = None) -> list[Finding]:
    if state is None or not state.alive:
        return [Finding("relay", "open relay", "warn", "skipped: the server is not running", "start it, then re-run")]
    addresses = state.listeners.get("smtp", [])
    if not addresses:
        return [Finding("relay", "open relay", "ok", "no smtp listener (port 25): nothing to relay through")]
    host, port = split_address(addresses[0])
    source = probe_from or default_source(host)
    subject = f"open relay via {host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0) if source else None), timeout)
    except OSError as exc:
        return [Finding("relay", subject, "warn", f"probe could not connect from {source or 'default'}: {exc}",
                        "re-run with --probe-from set to an address of this machine")]
    except TimeoutError:
        return [Finding("relay", subject, "warn", "probe timed out connecting", "see the listeners check")]
    src = writer.get_extra_info("sockname")[0]
    subject = f"open relay via {host}:{port} from {src}"
    steps: list[str] = []
    try:
        code, text = await _reply(reader, timeout)
        steps.append(text)
        if code != 220:
            return [Finding("relay", subject, "ok", f"refused at connect: {text}")]
        for command in ("EHLO relay-probe.invalid", f"MAIL FROM:<{PROBE_FROM}>", f"RCPT TO:<{PROBE_TO}>"):
            writer.write(command.encode() + b"\r\n")
            await writer.drain()
            code, text = await _reply(reader, timeout)
            steps.append(f"{command} -> {text}")
            if code >= 400:
                verb = command.split(":")[0].split()[0]
                return [Finding("relay", subject, "ok", f"refused at {verb}: {text}")]
        # RCPT accepted: an open relay (for this source). Never send DATA.
        with contextlib.suppress(Exception):
            writer.write(b"RSET\r\nQUIT\r\n")
            await writer.drain()
    except (ConnectionError, OSError, TimeoutError) as exc:
        return [Finding("relay", subject, "warn", f"probe inconclusive: {exc or type(exc).__name__}",
                        "look at the server log for this connection")]
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)
    rule = await _rule_for(settings, src)
    if rule:
        shown, delete = rule.split("|", 1)
        fix = (f"the access rule `{shown}` lets {src} relay without logging in; if that was not meant, delete it "
               f"(`{delete}`) and allow only your LAN "
               "(`mailcove relay allow 10.0.0.0/24`); clients elsewhere should log in on submission (587/465)")
    elif src in ("127.0.0.1", "::1") and settings.directory.relay_from_localhost:
        fix = ("the probe came from this machine, which [directory] relay_from_localhost = true lets relay; "
               "re-run with --probe-from set to a non-loopback address of this machine")
    else:
        fix = ("no access rule explains it: check `mailcove relay list` (To:/From: RELAY rules relay for "
               "everyone who names that recipient or sender) and report the case")
    return [Finding("relay", subject, "fail",
                    f"OPEN RELAY: accepted mail from <{PROBE_FROM}> to <{PROBE_TO}> without login "
                    f"({steps[-1]})", fix)]
