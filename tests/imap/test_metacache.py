"""The process's MetaCache (imap/metacache.py): a FETCH of metadata items asks the store only for
messages no session of the process fetched before, and a message expunged by another session is
never answered from the cache. In process (tests/inprocess.py), with the real SQLite store; the
store's `fetch_meta` is counted, not replaced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailcove.imap.metacache import MetaCache
from mailcove.store.api import MessageMeta


def _message(n: int) -> bytes:
    return (f"From: Sender {n} <s{n}@example.org>\r\nTo: a@hamap.local\r\nSubject: note {n}\r\n"
            f"Message-ID: <m{n}@example.org>\r\n\r\nbody {n}\r\n").encode()


class _Counted:
    """Records the UIDs each store.fetch_meta call asked for, then runs the real call."""

    def __init__(self, store: Any) -> None:
        self.calls: list[list[int]] = []
        self._real = store.fetch_meta
        store.fetch_meta = self

    async def __call__(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        self.calls.append(list(uids))
        return await self._real(mailbox_id, uids)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _envelope_subjects(untagged: list[Any]) -> list[str]:
    return [_text(r.data["ENVELOPE"][1]) for r in untagged if r.kind == "FETCH"]


async def test_second_fetch_of_envelopes_reads_nothing_from_the_store(tmp_path):
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        for n in range(1, 4):
            await lab.deliver("a@hamap.local", _message(n))
        counted = _Counted(lab.store)
        a = await lab.imap(login="a@hamap.local")
        await a.ok("SELECT INBOX")
        first = await a.ok("FETCH 1:3 (ENVELOPE RFC822.SIZE)")
        assert counted.calls == [[1, 2, 3]]
        # Another session of the process: the cache is the process's, not the session's.
        b = await lab.imap(login="a@hamap.local")
        await b.ok("EXAMINE INBOX")
        again = await b.ok("FETCH 1:3 (ENVELOPE RFC822.SIZE)")
        assert counted.calls == [[1, 2, 3]]
        assert _envelope_subjects(first) == _envelope_subjects(again) != []


async def test_message_expunged_by_another_session_is_not_answered_from_the_cache(tmp_path):
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        for n in range(1, 4):
            await lab.deliver("a@hamap.local", _message(n))
        a = await lab.imap(login="a@hamap.local")
        await a.ok("SELECT INBOX")
        await a.ok("FETCH 1:3 (ENVELOPE)")  # all three now in the cache
        b = await lab.imap(login="a@hamap.local")
        await b.ok("SELECT INBOX")
        await b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        await b.ok("EXPUNGE")
        # a has not been told yet (no EXPUNGE during FETCH): message 2 keeps its number, and the
        # FETCH ends OK [EXPUNGEISSUED] with no data for it, as without the cache.
        untagged, done = await a.cmd("UID FETCH 1:3 (ENVELOPE)")
        assert done.status == "OK" and done.code == "EXPUNGEISSUED", done
        assert _envelope_subjects(untagged) == ["note 1", "note 3"]


async def test_least_recently_used_goes_first(tmp_path):
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        for n in range(1, 5):
            await lab.deliver("a@hamap.local", _message(n))
        box = await lab.store.get_mailbox("a@hamap.local", "INBOX")
        counted = _Counted(lab.store)
        cache = MetaCache(lab.store, max_entries=3)
        await cache.get(box.id, box.uidvalidity, [1, 2, 3])
        await cache.get(box.id, box.uidvalidity, [1])  # 1 used again: 2 is now the oldest
        await cache.get(box.id, box.uidvalidity, [4])  # evicts 2
        assert len(cache) == 3
        await cache.get(box.id, box.uidvalidity, [1, 3, 4, 2])
        assert counted.calls == [[1, 2, 3], [4], [2]]
        # Another UIDVALIDITY (the mailbox deleted and created again) never meets these entries.
        await cache.get(box.id, box.uidvalidity + 1, [1])
        assert counted.calls[-1] == [1]


async def test_formatted_items_are_made_once_per_message_and_form(tmp_path):
    from inprocess import serve_in_process
    from mailcove.imap import fmt

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        for n in range(1, 3):
            await lab.deliver("a@hamap.local", _message(n))
        box = await lab.store.get_mailbox("a@hamap.local", "INBOX")
        cache = MetaCache(lab.store)
        made: list[tuple[str, bool]] = []

        def envelope(info: Any, utf8: bool) -> bytes:
            made.append((info.envelope.subject, utf8))
            return fmt.envelope(info.envelope, utf8)

        metas = await cache.get(box.id, box.uidvalidity, [1, 2])
        first = cache.formatted(box.id, box.uidvalidity, metas[1], "ENVELOPE", False, envelope)
        assert first == fmt.envelope(metas[1].info.envelope) and b'"note 1"' in first
        again = await cache.get(box.id, box.uidvalidity, [1])
        assert cache.formatted(box.id, box.uidvalidity, again[1], "ENVELOPE", False, envelope) is first
        cache.formatted(box.id, box.uidvalidity, metas[1], "ENVELOPE", True, envelope)  # UTF8=ACCEPT: its own
        cache.formatted(box.id, box.uidvalidity, metas[2], "ENVELOPE", False, envelope)
        assert made == [("note 1", False), ("note 1", True), ("note 2", False)]
        # Expunged: forgotten with its entry; a message read again is formatted again.
        cache.forget(box.id, box.uidvalidity, [1])
        cache.formatted(box.id, box.uidvalidity, metas[1], "ENVELOPE", False, envelope)
        assert len(made) == 4
        # Another UIDVALIDITY never meets these entries.
        cache.formatted(box.id, box.uidvalidity + 1, metas[2], "ENVELOPE", False, envelope)
        assert len(made) == 5


async def test_fetch_answers_formatted_items_from_the_cache_as_it_formats_them(tmp_path):
    from mailcove.imap import fmt

    """ENVELOPE, BODYSTRUCTURE and BODY from the cache, for a second session and for UTF8=ACCEPT,
    say what the first formatting said; the UTF8=ACCEPT form of an 8-bit name is its own (a
    quoted string, not a literal)."""
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        await lab.deliver("a@hamap.local", "Subject: =?UTF-8?B?7ZWc6rWt7Ja0?=\r\nFrom: 김 <k@example.org>\r\n"
                          "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n".encode())
        answers = []
        for login in range(3):
            c = await lab.imap(login="a@hamap.local")
            if login == 2:
                await c.ok("ENABLE UTF8=ACCEPT")
            await c.ok("EXAMINE INBOX")
            (fetched,) = [r for r in await c.ok("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)") if r.kind == "FETCH"]
            answers.append(repr(fetched.data))
        assert answers[0] == answers[1] == answers[2]
        box = await lab.store.get_mailbox("a@hamap.local", "INBOX")
        metas = (await lab.server("imap")).registry.metas
        (meta,) = (await metas.get(box.id, box.uidvalidity, [1])).values()
        plain = metas.formatted(box.id, box.uidvalidity, meta, "ENVELOPE", False, lambda i, u: b"unused")
        utf8 = metas.formatted(box.id, box.uidvalidity, meta, "ENVELOPE", True, lambda i, u: b"unused")
        assert plain == fmt.envelope(meta.info.envelope, False) and b"{3}\r\n" in plain
        assert utf8 == fmt.envelope(meta.info.envelope, True) and '"김"'.encode() in utf8


class _CountedReads:
    """Counts the store's message-body reads (read_message, read_messages), then runs them."""

    def __init__(self, store: Any) -> None:
        self.calls = 0
        for name in ("read_message", "read_messages"):
            real = getattr(store, name)

            async def counted(*args: Any, _real: Any = real, **kw: Any) -> Any:
                self.calls += 1
                return await _real(*args, **kw)

            setattr(store, name, counted)


async def test_header_items_are_answered_from_the_kept_header(tmp_path):
    from inprocess import serve_in_process

    async with serve_in_process(tmp_path, "[auth]\nallow_plaintext = true\n") as lab:
        for n in range(1, 4):
            await lab.deliver("a@hamap.local", _message(n))
        a = await lab.imap(login="a@hamap.local")
        await a.ok("EXAMINE INBOX")
        header_items = ("BODY.PEEK[HEADER.FIELDS (Subject)]", "BODY.PEEK[HEADER.FIELDS.NOT (Subject)]",
                        "BODY.PEEK[HEADER]", "RFC822.HEADER", "BODY.PEEK[HEADER]<5.10>")
        first = {item: [r.data for r in await a.ok(f"FETCH 1:3 ({item})")] for item in header_items}
        counted = _CountedReads(lab.store)
        b = await lab.imap(login="a@hamap.local")  # another session of the process
        await b.ok("EXAMINE INBOX")
        again = {item: [r.data for r in await b.ok(f"FETCH 1:3 ({item})")] for item in header_items}
        assert counted.calls == 0
        assert again == first
        assert [d["BODY[HEADER.FIELDS (Subject)]"] for d in first[header_items[0]]] == [
            b"Subject: note %d\r\n\r\n" % n for n in range(1, 4)]
        # An item that needs the body still reads it, and says the same as before.
        text = [r.data for r in await b.ok("FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT])")]
        assert counted.calls > 0
        assert [d["BODY[TEXT]"] for d in text] == [b"body %d\r\n" % n for n in range(1, 4)]
