"""Shared drivers for the proto/imap tests (a plain module, not a conftest: see tests/mailcove_testing.py)."""

from __future__ import annotations

from collections.abc import Iterable

from mailcove.proto.imap import (
    NEED_DATA,
    AppendData,
    AppendEnd,
    AppendStart,
    Authenticate,
    AuthLine,
    BadCommand,
    Command,
    Idle,
    IdleDone,
    ImapReceiver,
    NeedContinuation,
    ProtocolViolation,
)

ALLOWED = (Command, BadCommand, NeedContinuation, AppendStart, AppendData, AppendEnd, IdleDone, AuthLine,
           ProtocolViolation)


def drive(chunks: Iterable[bytes], *, merge: bool = True, check_memory: bool = False, **kw: object) -> list[object]:
    """Feed `chunks`, collect events, and play the session's part for mode switches: IDLE ->
    start_idle, AUTHENTICATE without initial response -> start_auth."""
    r = ImapReceiver(**kw)  # type: ignore[arg-type]
    out: list[object] = []
    for chunk in chunks:
        r.receive_data(chunk)
        while True:
            e = r.next_event()
            if e is NEED_DATA:
                break
            assert isinstance(e, ALLOWED), e
            out.append(e)
            if isinstance(e, ProtocolViolation):
                assert r.next_event() == e
                return _merge(out) if merge else out
            if isinstance(e, Idle):
                r.start_idle()
            elif isinstance(e, Authenticate) and e.initial is None:
                r.start_auth()
        if check_memory:
            # what is kept between reads never exceeds one line (+ one read) or one command
            assert r.buffered <= r.max_line + len(chunk) + 2
            assert len(r._cmd) <= r.max_command
    return _merge(out) if merge else out


def _merge(events: list[object]) -> list[object]:
    """Join consecutive AppendData chunks so differently split inputs compare equal."""
    out: list[object] = []
    for e in events:
        if isinstance(e, AppendData) and out and isinstance(out[-1], AppendData):
            out[-1] = AppendData(out[-1].data + e.data)
        else:
            out.append(e)
    return out
