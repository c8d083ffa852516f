"""TLS for every listener: the server SSLContext, the self-signed certificate made on first
start, and a holder that SIGHUP reloads.

Reloading swaps the holder's context. STARTTLS reads `holder.context` when it starts; implicit-TLS
servers keep the context they started with, whose SNI callback (called for every ClientHello)
switches the handshake to the current one. New handshakes get the new certificate; established
connections keep theirs.

Memory: an idle asyncio TLS connection costs ~267 KB, almost all of it the 256 KiB read buffer
of asyncio's (and uvloop's) SSL protocol, against ~1.7 KB for plain TCP. 10,000 idle IMAP IDLE
sessions over TLS are ~2.6 GB. Protocol servers should keep per-connection state small and cap
connections per IP; see docs/design/serve.md."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailcove.config.settings import TlsSettings

log = logging.getLogger("mailcove.tls")

# Mozilla "intermediate" for TLS 1.2: forward-secret AEAD suites only. TLS 1.3 suites are fixed
# by OpenSSL and all strong.
CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"
MIN_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
SELF_SIGNED_DAYS = 5 * 365
RENEW_BEFORE = dt.timedelta(days=30)


class TlsConfigError(Exception):
    """A problem with [tls] settings or files; `key` is the dotted setting ("tls.cert")."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    d = data_dir / "tls"
    return d / "cert.pem", d / "key.pem"


def generate_self_signed(hostname: str, cert_path: Path, key_path: Path) -> None:
    """RSA-2048 (every mail client in use speaks it; ECDSA is not a given with older Outlook),
    SANs hostname + localhost + 127.0.0.1 + ::1. The key file is created 0600 and both files are
    written to a temp name and renamed, so a crash never leaves half a key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "localhost")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(hostname)] if hostname and hostname != "localhost" else []
    sans += [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _self_signed_is_usable(cert_path: Path, key_path: Path, hostname: str) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return False
    # A changed hostname would leave clients facing a name mismatch; make a fresh one.
    return not hostname or hostname == "localhost" or hostname in names


def ensure_certificate(tls: TlsSettings, data_dir: Path, hostname: str) -> tuple[Path, Path | None, bool]:
    """(cert, key, generated?) to use. Generates the self-signed pair when none is configured
    and the stored one is missing, expiring, or for another hostname."""
    if tls.cert is not None:
        return tls.cert, tls.key, False
    if tls.key is not None:
        raise TlsConfigError("tls.cert", "[tls] key is set but cert is not")
    cert_path, key_path = self_signed_paths(data_dir)
    if _self_signed_is_usable(cert_path, key_path, hostname):
        return cert_path, key_path, False
    generate_self_signed(hostname, cert_path, key_path)
    # debug, not info: the banner says "generated now", and a failed start stays one line.
    log.debug("generated a self-signed certificate for %s in %s", hostname, cert_path.parent)
    return cert_path, key_path, True


def build_server_context(cert: Path, key: Path | None, min_version: str = "TLSv1.2") -> ssl.SSLContext:
    """A server context with modern defaults. Raises TlsConfigError naming the file's key."""
    if min_version not in MIN_VERSIONS:
        raise TlsConfigError("tls.min_version", f"expected one of {', '.join(MIN_VERSIONS)}, got {min_version!r}")
    _check_readable(cert, "tls.cert")
    if key is not None:
        _check_readable(key, "tls.key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_VERSIONS[min_version]
    ctx.set_ciphers(CIPHERS_TLS12)
    # No compression (CRIME), no renegotiation (a DoS lever), fresh ECDH keys per handshake.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_SINGLE_ECDH_USE | ssl.OP_NO_RENEGOTIATION
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    except ssl.SSLError as exc:
        # OpenSSL does not say which file is wrong; a key mismatch names the key.
        which = "tls.key" if key is not None and "KEY_VALUES_MISMATCH" in str(exc) else "tls.cert"
        path = key if which == "tls.key" else cert
        raise TlsConfigError(which, f"{path}: cannot load certificate/key: {exc.reason or exc}") from None
    except OSError as exc:
        raise TlsConfigError("tls.cert", f"{cert}: {exc.strerror or exc}") from None
    return ctx


def _check_readable(path: Path, key: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise TlsConfigError(key, f"{path}: {exc.strerror or exc}") from None


class TlsHolder:
    """The current server context. `reload()` builds a new one from the same settings and swaps
    it in only if that worked, so a bad file on SIGHUP keeps the old certificate serving."""

    def __init__(self, tls: TlsSettings, data_dir: Path, hostname: str) -> None:
        self._tls = tls
        self._data_dir = data_dir
        self._hostname = hostname
        self._context: ssl.SSLContext | None = None
        self.cert_path: Path | None = None
        self.key_path: Path | None = None
        self.generated = False

    @property
    def enabled(self) -> bool:
        return self._tls.enabled

    @property
    def handshake_timeout(self) -> float:
        return self._tls.handshake_timeout

    @property
    def context(self) -> ssl.SSLContext:
        if self._context is None:
            raise RuntimeError("TLS is not loaded")
        return self._context

    def load(self) -> None:
        """Load (generating if needed). Raises TlsConfigError."""
        if self._tls.min_version not in MIN_VERSIONS:  # before generating anything
            raise TlsConfigError(
                "tls.min_version", f"expected one of {', '.join(MIN_VERSIONS)}, got {self._tls.min_version!r}"
            )
        cert, key, generated = ensure_certificate(self._tls, self._data_dir, self._hostname)
        ctx = build_server_context(cert, key, self._tls.min_version)
        ctx.sni_callback = self._switch_to_current
        self._context, self.cert_path, self.key_path = ctx, cert, key
        self.generated = generated

    def _switch_to_current(self, sslobj: ssl.SSLObject | ssl.SSLSocket, _name: str | None, ctx: ssl.SSLContext) -> None:
        """Implicit-TLS servers are created with the context current at start; OpenSSL calls this
        for every ClientHello (server_name None without SNI), and switching the connection's
        context here makes it use the certificate loaded by the latest reload."""
        current = self._context
        if current is not None and ctx is not current:
            sslobj.context = current

    def reload(self) -> bool:
        try:
            self.load()
        except (TlsConfigError, OSError) as exc:
            log.error("TLS reload failed, keeping the current certificate: %s", exc)
            return False
        info = describe_certificate(self.cert_path) if self.cert_path else None
        log.info("TLS reloaded: %s", info.sha256 if info else "?")
        return True


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    path: Path
    subject: str
    sans: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str  # colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it


def describe_certificate(path: Path) -> CertificateInfo:
    """The first certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return CertificateInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        sans=sans,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
    )
