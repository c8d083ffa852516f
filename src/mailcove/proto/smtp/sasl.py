"""SASL server mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), sans-IO.

Protocol-neutral on purpose (base64 lines in, challenges or credentials out) so IMAP
AUTHENTICATE and POP3 AUTH can use the same machines; DESIGN.md places this at proto/sasl.py,
where it can move unchanged. SCRAM-SHA-256 needs per-user SCRAM keys, which argon2 hashes cannot
provide; it waits for the directory to store them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")  # what server_mechanism makes, as EHLO advertises them
MAX_RESPONSE = 12288  # RFC 4954 section 4


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes  # raw; the protocol base64-encodes it


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    authzid: str = ""


@dataclass(frozen=True, slots=True)
class SaslFailure:
    reason: str  # "cancelled" | "malformed" | "authzid"


Step = Challenge | Credentials | SaslFailure


def _b64(line: str) -> bytes | None:
    if line == "=":
        return b""
    try:
        return base64.b64decode(line.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


class ServerMechanism:
    """Feed it the initial response (or None) with start(), then each client line with step()."""

    def start(self, initial: str | None) -> Step:
        raise NotImplementedError

    def step(self, line: str) -> Step:
        raise NotImplementedError


class Plain(ServerMechanism):
    def start(self, initial: str | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return self.step(initial)

    def step(self, line: str) -> Step:
        if line == "*":
            return SaslFailure("cancelled")
        raw = _b64(line)
        if raw is None or len(raw) > MAX_RESPONSE:
            return SaslFailure("malformed")
        parts = raw.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            return SaslFailure("malformed")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            return SaslFailure("malformed")
        if authzid and authzid != user:
            # Acting as another user (proxy authorization) is not supported.
            return SaslFailure("authzid")
        return Credentials(user, password, authzid)


class Login(ServerMechanism):
    def __init__(self) -> None:
        self._user: str | None = None

    def start(self, initial: str | None) -> Step:
        if initial is None:
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, line: str) -> Step:
        if line == "*":
            return SaslFailure("cancelled")
        raw = _b64(line)
        if raw is None or len(raw) > MAX_RESPONSE:
            return SaslFailure("malformed")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return SaslFailure("malformed")
        if self._user is None:
            if not text:
                return SaslFailure("malformed")
            self._user = text
            return Challenge(b"Password:")
        return Credentials(self._user, text)


def server_mechanism(name: str) -> ServerMechanism | None:
    if name == "PLAIN":
        return Plain()
    if name == "LOGIN":
        return Login()
    return None
