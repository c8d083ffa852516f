"""Local submission for `mailcove sendmail`: through the server's submit socket, or, for a user
who can open the data dir (root, the server's user) and when no socket is configured, straight
into the store with the same resolution and commit as SMTP.

The submit socket's wire protocol is documented in mailcove.smtp.server.SubmitServer."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailcove.core.errors import MailError

if TYPE_CHECKING:
    from mailcove.config.settings import Settings

MAX_REPLY = 64 * 1024


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    ok: bool
    via: str  # "socket" or "store"
    code: int = 250
    enhanced: str = "2.0.0"
    text: str = ""


class SubmitUnavailable(Exception):
    """No server listens on the submit socket."""


def submit_via_socket(path: Path, message: bytes, sender: str | None, recipients: Sequence[str],
                      timeout: float = 300.0) -> SubmitOutcome:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SubmitUnavailable(f"{path}: {exc.strerror or exc}") from None
        word = "-" if sender is None else (sender or "<>")  # `-f '<>'`: the null sender
        head = f"SUBMIT {len(message)} {word} {' '.join(recipients)}\r\n"
        try:
            s.sendall(head.encode("utf-8") + message)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the server read it all (a sending limit, say): its reply says why
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while not reply.endswith(b"\n") and len(reply) < MAX_REPLY:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
    finally:
        s.close()
    return _parse(reply.decode("utf-8", "replace").strip(), "socket")


def _parse(line: str, via: str) -> SubmitOutcome:
    if line.startswith("OK"):
        return SubmitOutcome(True, via, text=line[2:].strip())
    parts = line.split(" ", 3)
    try:
        return SubmitOutcome(False, via, int(parts[1]), parts[2], parts[3] if len(parts) > 3 else "")
    except (IndexError, ValueError):
        return SubmitOutcome(False, via, 451, "4.3.0", line or "no reply from the server")


def submit_direct(settings: Settings, message: bytes, sender: str | None, recipients: Sequence[str]) -> SubmitOutcome:
    """Resolve and store without a server (needs access to the data dir)."""
    return asyncio.run(_direct(settings, message, sender, recipients))


async def _direct(settings: Settings, message: bytes, sender: str | None, recipients: Sequence[str]) -> SubmitOutcome:
    import email.utils

    from mailcove.delivery import DeliveryPlan, Trace, qualify, resolve
    from mailcove.directory import open_directory
    from mailcove.directory.api import Invalid
    from mailcove.store.factory import open_store

    user = getpass.getuser()
    host = settings.hostname
    if sender is None:
        sender = f"{user}@{host}"
    store = open_store(settings, watch_changes=False)
    await store.start()
    try:
        # The store goes to the directory too: system users' accounts are made on first delivery.
        directory = open_directory(settings, store=store)
        await directory.start()
        try:
            plan = DeliveryPlan()
            for r in recipients:
                target = await qualify(directory, r, host)
                res = await resolve(directory, target)
                if isinstance(res, Invalid):
                    return SubmitOutcome(False, "store", 550, "5.1.1", f"<{r}>: {res.reason}")
                plan.add(res)
        finally:
            await directory.close()
        received = (f"Received: by {host} (mailcove) with local (user {user});\r\n"
                    f"\t{email.utils.formatdate(time.time(), localtime=True)}\r\n")
        result = await plan.submit(store, message, Trace(received.encode("utf-8", "replace")), sender=sender,
                                   auth_user=f"local:{user}", client="local")
    except MailError as exc:
        return SubmitOutcome(False, "store", exc.code, exc.enhanced, exc.text)
    finally:
        await store.close()
    ids = [f"{r.user}:{r.uid}" for r in result.local]
    if result.queue_id is not None:
        ids.append(f"queue:{result.queue_id}")
    return SubmitOutcome(True, "store", text=" ".join(ids))
