"""DKIM keys and signing (RFC 6376 with dkimpy; RFC 8463 Ed25519 beside RSA-2048).

Keys live in <key_dir>/<domain>/: "<selector>.rsa.pem" (PKCS#1 PEM) and
"<selector>-ed25519.ed25519" (the base64 32-byte seed, dkimpy's format)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailcove.config.settings import Settings

# Signed when present; From is required (RFC 6376 5.4). Listed twice where a second instance
# added later must break the signature (the "oversigning" of RFC 6376 8.15).
SIGNED_HEADERS = [b"from", b"from", b"to", b"cc", b"subject", b"subject", b"date", b"message-id", b"reply-to",
                  b"in-reply-to", b"references", b"mime-version", b"content-type", b"content-transfer-encoding",
                  b"list-unsubscribe", b"list-unsubscribe-post"]
TXT_CHUNK = 255


@dataclass(frozen=True, slots=True)
class DkimKey:
    selector: str
    algorithm: str  # "rsa-sha256" | "ed25519-sha256"
    private: bytes  # as dkimpy wants it


def key_dir(settings: Settings) -> Path:
    return settings.dkim.key_dir or settings.data_dir / "dkim"


def key_paths(settings: Settings, domain: str) -> tuple[Path, Path]:
    d = key_dir(settings) / domain.lower()
    sel = settings.dkim.selector
    return d / f"{sel}.rsa.pem", d / f"{sel}-ed25519.ed25519"


def load_keys(settings: Settings, domain: str) -> list[DkimKey]:
    rsa_path, ed_path = key_paths(settings, domain)
    sel = settings.dkim.selector
    keys = []
    if rsa_path.exists():
        keys.append(DkimKey(sel, "rsa-sha256", rsa_path.read_bytes()))
    if ed_path.exists():
        keys.append(DkimKey(f"{sel}-ed25519", "ed25519-sha256", ed_path.read_bytes().strip()))
    return keys


def sign(message: bytes, domain: str, keys: list[DkimKey]) -> bytes:
    """The DKIM-Signature header fields to put in front of `message`, the RSA one on top (the one
    every verifier knows; RFC 8463 verifiers also check the Ed25519 one)."""
    out = b""
    for k in reversed(keys):
        out = dkim.sign(
            message, k.selector.encode(), domain.encode(), k.private,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=k.algorithm.encode(),
            include_headers=SIGNED_HEADERS, linesep=b"\r\n",
        ) + out
    return out


def txt_strings(value: str) -> list[str]:
    """A TXT value cut into character-strings of at most 255 bytes (RFC 1035 3.3.14)."""
    return [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]


def zone_line(selector: str, domain: str, value: str) -> str:
    strings = " ".join(f'"{s}"' for s in txt_strings(value))
    if len(txt_strings(value)) > 1:
        strings = f"( {strings} )"
    return f"{selector}._domainkey.{domain}. IN TXT {strings}"


def public_records(settings: Settings, domain: str) -> list[tuple[str, str]]:
    """(selector, TXT value) for each key the domain has."""
    out = []
    for k in load_keys(settings, domain):
        if k.algorithm == "rsa-sha256":
            key = serialization.load_pem_private_key(k.private, None)
            der = key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
            out.append((k.selector, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"))
        else:
            seed = base64.b64decode(k.private)
            pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out.append((k.selector, f"v=DKIM1; k=ed25519; p={base64.b64encode(pub).decode()}"))
    return out


def generate(settings: Settings, domain: str, *, force: bool = False) -> list[Path]:
    """Make an RSA-2048 and an Ed25519 key for `domain` (mode 0600). Existing keys are kept
    unless `force`: replacing a published key breaks mail in flight."""
    rsa_path, ed_path = key_paths(settings, domain)
    rsa_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    made = []
    if force or not rsa_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        _write_private(rsa_path, pem)
        made.append(rsa_path)
    if force or not ed_path.exists():
        ek = ed25519.Ed25519PrivateKey.generate()
        seed = ek.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        _write_private(ed_path, base64.b64encode(seed) + b"\n")
        made.append(ed_path)
    return made


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
