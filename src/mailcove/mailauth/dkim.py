"""DKIM verification (RFC 6376) with dkimpy, its key lookups done through our Resolver.

dkimpy asks DNS synchronously through a `dnsfunc`; the keys are fetched first, asynchronously
and with the check's deadline, and dkimpy then runs in a worker thread over those answers, so
the event loop never waits on DNS or RSA."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import dkim

from mailcove.dns import NotFound, Resolver, TempError

MAX_SIGNATURES = 5  # more are not checked (each costs a lookup and a hash of the body)


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str  # pass | fail | neutral | temperror | permerror
    domain: str
    selector: str
    reason: str = ""


def _header_block(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.I)


def signatures(message: bytes) -> list[tuple[str, str]]:
    """(d=, s=) of each DKIM-Signature field, in order."""
    out = []
    head = _header_block(message)
    for m in re.finditer(rb"(?im)^dkim-signature[ \t]*:((?:[^\r\n]*\r?\n[ \t])*[^\r\n]*)", head):
        tags = {k.lower(): re.sub(rb"\s+", b"", v) for k, v in _TAG.findall(m.group(1))}
        out.append((tags.get(b"d", b"").decode("ascii", "replace").lower(),
                    tags.get(b"s", b"").decode("ascii", "replace")))
    return out


async def verify(resolver: Resolver, message: bytes) -> list[DkimResult]:
    sigs = signatures(message)[:MAX_SIGNATURES]
    if not sigs:
        return []
    keys: dict[str, bytes | None] = {}
    errors: dict[str, str] = {}
    for d, s in sigs:
        name = f"{s}._domainkey.{d}"
        if name in keys or name in errors or not d or not s:
            continue
        try:
            txts = await resolver.txt(name)
            keys[name] = txts[0] if txts else None
        except NotFound:
            keys[name] = None
        except TempError as exc:
            errors[name] = str(exc)

    def dnsfunc(qname: bytes, timeout: int = 5) -> bytes:
        value = keys.get(qname.decode("ascii", "replace").rstrip("."))
        return value or b""

    def run() -> list[DkimResult]:
        out = []
        for i, (d, s) in enumerate(sigs):
            name = f"{s}._domainkey.{d}"
            if name in errors:
                out.append(DkimResult("temperror", d, s, errors[name]))
                continue
            if not d or not s:
                out.append(DkimResult("permerror", d, s, "d= or s= missing"))
                continue
            if keys.get(name) is None:
                out.append(DkimResult("permerror", d, s, "no key published"))
                continue
            try:
                ok = dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)
            except dkim.ValidationError as exc:
                out.append(DkimResult("fail", d, s, str(exc)))
                continue
            except (dkim.KeyFormatError, dkim.MessageFormatError, dkim.ParameterError) as exc:
                out.append(DkimResult("permerror", d, s, str(exc)))
                continue
            except Exception as exc:  # dkimpy raises plain errors on some malformed input
                out.append(DkimResult("permerror", d, s, f"{type(exc).__name__}: {exc}"))
                continue
            out.append(DkimResult("pass" if ok else "fail", d, s, "" if ok else "signature did not verify"))
        return out

    return await asyncio.to_thread(run)
