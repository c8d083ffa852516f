"""The real Thunderbird (Debian's `thunderbird`, 153 ESR) against mailcove on loopback, under Xvfb,
driven through Marionette with Thunderbird's own JS APIs in chrome context, as the user would
act: fetch the INBOX, send a message (SMTP submission, copy to Sent by APPEND), move a message to
another folder, delete and expunge one, mark one read and flagged. Every step is checked on the
SERVER, read back by a second client (imaplib), not on Thunderbird's screen.

The profile (prefs.js) and the processes are made by tests/interop/thunderbird.py; the password
goes through Thunderbird's login manager. Thunderbird 153 sends its Sent copy as
``APPEND "Sent" (\\Seen) UTF8 (~{n+}...)`` (RFC 6855), which mailcove refused before issue 12:
the test checks in Thunderbird's own IMAP log that this is the form it used.

Missing thunderbird or Xvfb: skipped locally, FAILS under CI=true (require_tool).
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import pytest

from interop.imap_servers import PLAIN_CONFIG, start_mailcove
from interop.thunderbird import Account, RealThunderbird
from mailcove_testing import ServerProcess, require_tool

# `make test-interop` (the real Thunderbird under Xvfb); the real client's start-up counts against the first test
pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

USER = "tb@hamap.local"
FRIEND = "friend@hamap.local"
PASSWORD = "Real-Thunderbird-1"
T = TypeVar("T")

# --- JS run in Thunderbird's chrome context (arguments[...] are the Python arguments) -----------

ADD_LOGINS = """
const [host, user, password] = arguments;
const LoginInfo = Components.Constructor("@mozilla.org/login-manager/loginInfo;1", Ci.nsILoginInfo, "init");
return (async () => {
  for (const scheme of ["imap", "smtp"]) {
    const origin = `${scheme}://${host}`;
    await Services.logins.addLoginAsync(new LoginInfo(origin, null, origin, user, password, "", ""));
  }
  return (await Services.logins.searchLoginsAsync({origin: `imap://${host}`})).length;
})();
"""

COMMON = """
const server = MailServices.accounts.defaultAccount.incomingServer;
const root = server.rootFolder;
const inbox = root.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
function urlListener(resolve, reject, what) {
  return {
    QueryInterface: ChromeUtils.generateQI(["nsIUrlListener"]),
    OnStartRunningUrl() {},
    OnStopRunningUrl(url, rc) {
      Components.isSuccessCode(rc) ? resolve(true) : reject(new Error(`${what} failed: 0x${rc.toString(16)}`));
    },
  };
}
function update(folder) {
  return new Promise((resolve, reject) => folder.QueryInterface(Ci.nsIMsgImapMailFolder)
    .updateFolderWithListener(null, urlListener(resolve, reject, "update " + folder.name)));
}
function headers(folder) {
  return [...folder.msgDatabase.enumerateMessages()];
}
function find(folder, messageId) {
  const hdr = headers(folder).find(h => h.messageId == messageId);
  if (!hdr) throw new Error(`${messageId} not in ${folder.name}: ${headers(folder).map(h => h.messageId)}`);
  return hdr;
}
"""

UPDATE_INBOX = COMMON + """
// what selecting the INBOX (or Get Messages) does; the headers reach the database just after
return update(inbox);
"""

INBOX_ROWS = COMMON + """
const rows = headers(inbox).map(h => [h.messageId, h.mime2DecodedSubject, h.isRead, h.isFlagged]);
return arguments[0].every(mid => rows.some(r => r[0] == mid)) ? rows : null;
"""

DISCOVER = COMMON + """
server.performExpand(null);
const name = arguments[0];
try { return root.getChildNamed(name).name == name; } catch (e) { return false; }
"""

SEND = COMMON + """
const [to, subject, body] = arguments;
const identity = MailServices.accounts.defaultAccount.defaultIdentity;
const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
fields.from = `${identity.fullName} <${identity.email}>`;
fields.to = to;
fields.subject = subject;
const send = Cc["@mozilla.org/messengercompose/send;1"].createInstance(Ci.nsIMsgSend);
return new Promise((resolve, reject) => {
  const fail = what => status => reject(new Error(`${what}: 0x${(status >>> 0).toString(16)}`));
  const listener = {
    QueryInterface: ChromeUtils.generateQI(["nsIMsgSendListener", "nsIMsgCopyServiceListener"]),
    onStartSending() {}, onProgress() {}, onStatus() {}, onGetDraftFolderURI() {},
    onSendNotPerformed: fail("send not performed"),
    onTransportSecurityError: fail("transport security error"),
    onStopSending(id, status) { if (!Components.isSuccessCode(status)) fail("sending")(status); },
    onStartCopy() {}, setMessageKey() {}, getMessageId() { return null; },
    onStopCopy(status) { Components.isSuccessCode(status) ? resolve(true) : fail("copy to Sent")(status); },
  };
  send.createAndSendMessage(null, identity, MailServices.accounts.defaultAccount.key, fields, false, false,
    Ci.nsIMsgSend.nsMsgDeliverNow, null, "text/plain", body, null, null, listener, null, "", Ci.nsIMsgCompType.New);
});
"""

HAS = COMMON + """
// the folder database is Thunderbird's cache: it may be closed and rebuilt (resynced) at any time,
// so a step that needs a message's header first waits for it to be there
const has = () => headers(inbox).some(h => h.messageId == arguments[0]);
return (async () => {
  if (!has()) await update(inbox);
  return has();
})();
"""

MOVE = COMMON + """
const [messageId, folderName] = arguments;
const dest = root.getChildNamed(folderName);
const hdr = find(inbox, messageId);
return new Promise((resolve, reject) => {
  MailServices.copy.copyMessages(inbox, [hdr], dest, true, {
    QueryInterface: ChromeUtils.generateQI(["nsIMsgCopyServiceListener"]),
    onStartCopy() {}, onProgress() {}, setMessageKey() {}, getMessageId() { return null; },
    onStopCopy(status) {
      Components.isSuccessCode(status) ? resolve(true) : reject(new Error("move: 0x" + (status >>> 0).toString(16)));
    },
  }, null, false);
});
"""

DELETE = COMMON + """
// the Delete key, with the account set to "mark it as deleted" (delete_model 0)
inbox.deleteMessages([find(inbox, arguments[0])], null, false, false, null, false);
return true;
"""

COMPACT = COMMON + """
// File > Compact on an IMAP folder: EXPUNGE
return new Promise((resolve, reject) => inbox.compact(urlListener(resolve, reject, "compact"), null));
"""

MARK = COMMON + """
const hdr = find(inbox, arguments[0]);
inbox.markMessagesRead([hdr], true);
inbox.markMessagesFlagged([hdr], true);
return [hdr.isRead, hdr.isFlagged];
"""


# --- the server side ------------------------------------------------------------------------------

def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(0.2)


class Reader:
    """imaplib as the second client: reads what the server holds, one fresh session per look."""

    def __init__(self, host: str, port: int, user: str) -> None:
        self.host, self.port, self.user = host, port, user

    def box(self, mailbox: str) -> dict[str, tuple[str, bytes]]:
        """Message-ID -> (flags, message) of every message in `mailbox`."""
        with imaplib.IMAP4(self.host, self.port, timeout=10) as c:
            c.login(self.user, PASSWORD)
            typ, _ = c.select(f'"{mailbox}"', readonly=True)
            assert typ == "OK", mailbox
            typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[])")
            out: dict[str, tuple[str, bytes]] = {}
            if typ != "OK":
                return out
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                mid = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", item[1])
                if mid:
                    out[mid.group(1).decode().strip("<>")] = ((flags.group(1).decode() if flags else ""), item[1])
            return out

    def flags(self, mailbox: str, message_id: str) -> str | None:
        got = self.box(mailbox).get(message_id)
        return got[0] if got else None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_mailcove(
        tmp_path / "mailcove", {USER: PASSWORD, FRIEND: PASSWORD}, config=PLAIN_CONFIG,
        listeners={"submission": "127.0.0.1:0", "imaps": None},
    )
    try:
        yield srv
    finally:
        srv.stop()


def deliver(srv: ServerProcess, n: int) -> str:
    """FRIEND sends USER a message through mailcove's submission listener; its Message-ID."""
    msg = EmailMessage()
    msg["From"] = f"Friend <{FRIEND}>"
    msg["To"] = USER
    msg["Subject"] = f"before Thunderbird {n}"
    mid = f"pre-{n}.{time.monotonic_ns()}@hamap.local"
    msg["Message-ID"] = f"<{mid}>"
    msg.set_content(f"Message {n}, delivered before Thunderbird starts.\n")
    host, port = srv.address("submission")
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.login(FRIEND, PASSWORD)
        s.send_message(msg)
    return mid


def test_real_thunderbird_fetch_send_move_delete_flags(lab: ServerProcess, tmp_path: Path) -> None:
    thunderbird = require_tool("thunderbird")
    xvfb = require_tool("Xvfb")
    host, imap_port = lab.address("imap")
    _, sub_port = lab.address("submission")
    reader = Reader(host, imap_port, USER)

    # beforehand: three messages in the INBOX, and a folder to move one into
    mids = [deliver(lab, n) for n in (1, 2, 3)]
    keep, move, delete = mids
    wait_for("the three deliveries", lambda: set(mids) <= set(reader.box("INBOX")))
    with imaplib.IMAP4(host, imap_port, timeout=10) as c:
        c.login(USER, PASSWORD)
        assert c.create("Projects")[0] == "OK"
        assert c.subscribe("Projects")[0] == "OK"  # Thunderbird lists subscribed folders only

    account = Account(USER, imap_port, sub_port, host=host)
    with RealThunderbird(tmp_path / "tb", account, thunderbird=thunderbird, xvfb=xvfb) as tb:
        try:
            assert tb.js(ADD_LOGINS, host, USER, PASSWORD) == 1

            # (a) the INBOX is fetched: the delivered messages are in Thunderbird's folder database
            assert tb.js(UPDATE_INBOX, timeout=40) is True
            rows = tb.wait_js(INBOX_ROWS, mids, timeout=30)
            got = {r[0]: r for r in rows}
            assert set(mids) <= set(got), rows
            assert got[keep][1] == "before Thunderbird 1" and not got[keep][2] and not got[keep][3]
            tb.wait_js(DISCOVER, "Projects", timeout=30)
            tb.wait_js(DISCOVER, "Sent", timeout=30)

            # (b) send through SMTP submission; the copy lands in Sent (APPEND UTF8) and FRIEND gets it
            subject = f"Grüße aus Thunderbird {time.monotonic_ns()}"
            sent = tb.js(SEND, f"Friend <{FRIEND}>", subject, "Hallo,\nsent by the real Thunderbird.\n", timeout=60)

            def sent_copy() -> bytes | None:
                return next((m for _, m in reader.box("Sent").values() if b"sent by the real Thunderbird" in m), None)

            copy = wait_for("the copy in Sent", sent_copy, timeout=20)
            assert sent is True, f"Thunderbird's send listener reported {sent!r}"
            assert b"\\Seen" in next(f.encode() for f, m in reader.box("Sent").values() if m == copy)
            friend = Reader(host, imap_port, FRIEND)
            wait_for("the message in the recipient's INBOX", lambda: any(
                b"sent by the real Thunderbird" in m for _, m in friend.box("INBOX").values()))
            log = tb.imap_log_text()
            assert re.search(r'(?i)APPEND "?Sent"? \(\\Seen\)( "[^"]*")? UTF8 \(~\{\d+\+?\}', log), \
                "Thunderbird did not use the RFC 6855 form for its Sent copy"

            # (c) move a message to another folder
            tb.wait_js(HAS, move, timeout=30)
            assert tb.js(MOVE, move, "Projects", timeout=40) is True
            wait_for("the moved message in Projects", lambda: move in reader.box("Projects"))
            wait_for("the moved message gone from INBOX", lambda: move not in reader.box("INBOX"))

            # (d) delete (marked \\Deleted on the server), then expunge (gone)
            tb.wait_js(HAS, delete, timeout=30)
            assert tb.js(DELETE, delete) is True
            wait_for("\\Deleted on the server", lambda: "\\Deleted" in (reader.flags("INBOX", delete) or ""))
            assert tb.js(COMPACT, timeout=40) is True
            wait_for("the deleted message expunged", lambda: delete not in reader.box("INBOX"))

            # (e) read and flagged, set in Thunderbird, seen by the second client
            tb.wait_js(HAS, keep, timeout=30)
            assert tb.js(MARK, keep) == [True, True]
            wait_for("\\Seen and \\Flagged on the server", lambda: {"\\Seen", "\\Flagged"} <= set(
                (reader.flags("INBOX", keep) or "").split()))
            inbox = reader.box("INBOX")
            assert set(inbox) == {keep}, inbox.keys()  # nothing else changed on the way
        except BaseException:
            print(tb.logs())
            print(lab.logs()[-4000:])
            raise
