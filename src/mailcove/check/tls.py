"""The TLS certificate: the one the running server presents (through an implicit-TLS listener)
or, with no server running, the one it would load. Valid now, names the hostname, days to expiry,
trusted by the system CAs, and the same as the file on disk (a renewed file needs a SIGHUP)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailcove.check.listeners import no_verify_context
from mailcove.check.model import Finding, ServerState, split_address
from mailcove.config import Settings
from mailcove.net.tls import self_signed_paths

WARN_DAYS = 21
TLS_LISTENERS = ("imaps", "submissions", "pop3s")


def cert_file(settings: Settings) -> Path:
    return settings.tls.cert or self_signed_paths(settings.data_dir)[0]


def names_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n).lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:  # only without SANs do clients fall back to the CN (RFC 6125 6.4.4)
        names = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return names


def name_matches(host: str, pattern: str) -> bool:
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        # a wildcard covers exactly one left-most label (RFC 6125 6.4.3)
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return host == pattern


async def fetch_live(settings: Settings, state: ServerState, timeout: float) -> tuple[str, bytes, str | None] | None:
    """(where, DER certificate, why the system CAs refuse it or None) from the first reachable
    implicit-TLS listener; None when there is none."""
    for name in TLS_LISTENERS:
        for address in state.listeners.get(name, []):
            host, port = split_address(address)
            try:
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=no_verify_context(), server_hostname=settings.hostname),
                    timeout)
            except (OSError, ssl.SSLError, TimeoutError):
                continue
            try:
                sslobj = writer.get_extra_info("ssl_object")
                der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2)
            if der:
                return f"{name} {address}", der, await _trust_error(host, port, settings.hostname, timeout)
    return None


async def _trust_error(host: str, port: int, hostname: str, timeout: float) -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # the name is checked separately, with a clearer message
    try:
        _r, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx, server_hostname=hostname),
                                            timeout)
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message or exc)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return f"handshake failed: {exc}"
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)
    return None


async def check(settings: Settings, state: ServerState | None, timeout: float,
                now: dt.datetime | None = None) -> list[Finding]:
    if not settings.tls.enabled:
        return [Finding("tls", "tls", "warn", "TLS is off ([tls] enabled = false): passwords and mail cross the "
                        "network in clear (the seed's lab mode)",
                        "set [tls] enabled = true (a self-signed certificate is made on start) and remove "
                        "[auth] allow_plaintext")]
    now = now or dt.datetime.now(dt.UTC)
    path = cert_file(settings)
    file_cert: x509.Certificate | None = None
    with contextlib.suppress(OSError, ValueError):
        file_cert = x509.load_pem_x509_certificate(path.read_bytes())
    live = await fetch_live(settings, state, timeout) if state is not None and state.alive else None
    if live is not None:
        where, der, trust_error = live
        cert = x509.load_der_x509_certificate(der)
        source = f"served on {where}"
    elif file_cert is not None:
        cert, trust_error, source = file_cert, None, f"in {path} (no running implicit-TLS listener to ask)"
    else:
        return [Finding("tls", "certificate", "fail", f"no certificate: {path} is missing or unreadable",
                        "start `mailcove serve` once to make a self-signed one, or set [tls] cert and key")]
    out: list[Finding] = []
    subject = "certificate"
    hup = f"`kill -HUP {state.pid}`" if state is not None and state.alive else "`kill -HUP <pid>`"
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    days = (not_after - now).total_seconds() / 86400
    self_signed = cert.issuer == cert.subject
    renew = ("restart mailcove: a self-signed certificate is regenerated within 30 days of its expiry"
             if self_signed and settings.tls.cert is None else
             "renew it (e.g. `certbot renew`), point [tls] cert/key at the new files, then "
             f"{hup} (SIGHUP reloads TLS without a restart)")
    if now < not_before:
        out.append(Finding("tls", subject, "fail", f"{source}: not valid before {not_before:%Y-%m-%d %H:%M} UTC",
                           "check the clock of this machine (timedatectl) or the certificate's dates"))
    elif days < 0:
        out.append(Finding("tls", subject, "fail", f"{source}: EXPIRED on {not_after:%Y-%m-%d} "
                           f"({-days:.0f} days ago); clients refuse it", renew))
    elif days < WARN_DAYS:
        out.append(Finding("tls", subject, "warn", f"{source}: expires {not_after:%Y-%m-%d}, in {days:.0f} days",
                           renew))
    else:
        out.append(Finding("tls", subject, "ok", f"{source}: valid until {not_after:%Y-%m-%d} ({days:.0f} days), "
                           f"SHA-256 {cert.fingerprint(hashes.SHA256()).hex()[:16]}..."))
    names = names_of(cert)
    wanted = [settings.hostname.rstrip(".").lower()]
    if settings.web.public_hostname:
        wanted.append(settings.web.public_hostname.rstrip(".").lower())
    missing = [h for h in dict.fromkeys(wanted) if not any(name_matches(h, n) for n in names)]
    if missing:
        out.append(Finding("tls", "certificate name", "fail",
                           f"the certificate names {', '.join(names) or 'nothing'}, not {', '.join(missing)}: "
                           "clients connecting to that name refuse it",
                           f"get a certificate for {missing[0]} (e.g. `certbot certonly --standalone -d {missing[0]}`) "
                           f"and set [tls] cert/key, then {hup}; or set hostname to a name the certificate has"))
    else:
        out.append(Finding("tls", "certificate name", "ok", f"names {', '.join(wanted)}"))
    if self_signed:
        out.append(Finding("tls", "certificate issuer", "warn",
                           "self-signed: mail clients warn on first connect, and MTA-STS senders refuse it",
                           f"get a certificate from a CA (Let's Encrypt: `certbot certonly --standalone -d "
                           f"{wanted[0]}`), set [tls] cert and key, then {hup}"))
    elif trust_error and days >= 0:
        out.append(Finding("tls", "certificate issuer", "warn", f"the system CAs do not trust it: {trust_error}",
                           "serve the full chain: [tls] cert must hold the certificate followed by its "
                           "intermediates (certbot's fullchain.pem)"))
    if live is not None and file_cert is not None and file_cert.fingerprint(hashes.SHA256()) != cert.fingerprint(
            hashes.SHA256()):
        out.append(Finding("tls", "certificate file", "warn",
                           f"{path} holds another certificate than the one served (renewed but not reloaded?)",
                           f"{hup} makes the server load it"))
    return out
