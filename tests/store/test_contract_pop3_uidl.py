"""The UIDL an old POP3 server gave an imported message is stored with it (ImportMessage.pop3_uidl),
read back by POP3 (MailStore.pop3_uidls) and carried through `mailcove db copy`'s export/restore."""

from __future__ import annotations

import dataclasses

from mailcove.store.api import ImportMessage, MailStore

A, C = "a@hamap.local", "c@hamap.local"


async def test_import_keeps_the_old_pop3_uidl(store: MailStore) -> None:
    items = [
        ImportMessage(b"Subject: one\r\n\r\none\r\n", 3, pop3_uidl="000000036719e3f0"),
        ImportMessage(b"Subject: two\r\n\r\ntwo\r\n", 4),
        ImportMessage(b"Subject: three\r\n\r\nthree\r\n", 7, pop3_uidl="UID7-1700000000"),
    ]
    res = await store.import_messages(A, "INBOX", items, uidvalidity=1729750000)
    assert res.added == [3, 4, 7]
    assert await store.pop3_uidls(res.mailbox_id) == {3: "000000036719e3f0", 7: "UID7-1700000000"}
    assert await store.pop3_uidls(res.mailbox_id, 4) == {7: "UID7-1700000000"}
    # Mail that did not come from an old server has none.
    await store.append(A, "INBOX", b"Subject: new\r\n\r\nnew\r\n")
    assert set(await store.pop3_uidls(res.mailbox_id)) == {3, 7}


async def test_export_and_restore_carry_the_pop3_uidl(store: MailStore) -> None:
    res = await store.import_messages(
        A, "INBOX", [ImportMessage(b"Subject: x\r\n\r\nx\r\n", 5, pop3_uidl="000000056719e3f0")],
        uidvalidity=1729750000, uidnext=9,
    )
    state = await store.export_account(A)
    stored = await store.export_messages(res.mailbox_id, 0, 100)
    assert [m.pop3_uidl for m in stored] == ["000000056719e3f0"]
    # Restored as another account of the same store, as `mailcove db copy` restores into another.
    await store.restore_account(dataclasses.replace(state, user=C))
    await store.restore_messages(C, "INBOX", stored)
    box = await store.get_mailbox(C, "INBOX")
    assert await store.pop3_uidls(box.id) == {5: "000000056719e3f0"}
