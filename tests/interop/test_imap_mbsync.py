"""mbsync (isync, from Debian) against `mailcove serve`: a two-way sync of a mailbox, and a second
sync that finds nothing to do.

Both directions are checked byte for byte: what mbsync writes into the local Maildir is what was
delivered, and what it uploads from the Maildir is what the server then stores (mbsync keeps the
Maildir in LF line ends and sends CRLF: the comparison says so where it applies).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from interop.imap_servers import PASSWORD, cert_of, message
from interop.imapwire import RawClient
from mailcove_testing import ServerProcess, require_tool


def mbsync_config(tmp: Path, srv: ServerProcess, who: str, mode: str) -> Path:
    maildir = tmp / "mail"
    maildir.mkdir(exist_ok=True)
    if mode == "plain":
        port, tls = srv.port("imap"), "SSLType None\n"
    elif mode == "starttls":
        port, tls = srv.port("imap"), f"SSLType STARTTLS\nCertificateFile {cert_of(srv)}\n"
    else:
        port, tls = srv.port("imaps"), f"SSLType IMAPS\nCertificateFile {cert_of(srv)}\n"
    rc = tmp / "mbsyncrc"
    rc.write_text(
        f"IMAPAccount far\nHost 127.0.0.1\nPort {port}\nUser {who}\nPass {PASSWORD}\n{tls}AuthMechs LOGIN\n\n"
        "IMAPStore far\nAccount far\n\n"
        f"MaildirStore near\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :far:\nNear :near:\nPatterns INBOX Archive\nCreate Both\nExpunge Both\n"
        "Sync All\nSyncState *\n"
    )
    return rc


def mbsync(rc: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("mbsync")
    r = subprocess.run([tool, "-c", str(rc), "-a", "-V"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def local_messages(tmp: Path, box: str = "INBOX") -> dict[str, bytes]:
    """Maildir file name (without the flags part) -> content."""
    root = tmp / "mail" / box
    return {p.name.split(":2,")[0]: p.read_bytes() for sub in ("cur", "new") for p in (root / sub).iterdir()}


def local_flags(tmp: Path, box: str = "INBOX") -> dict[str, str]:
    root = tmp / "mail" / box
    files = [p for sub in ("cur", "new") for p in (root / sub).iterdir()]
    return {p.name.split(":2,")[0]: p.name.partition(":2,")[2] for p in files}


def server_state(srv: ServerProcess, who: str) -> list[tuple[int, tuple[str, ...], bytes]]:
    c = RawClient(*srv.address("imap"))
    try:
        c.command(f'LOGIN "{who}" "{PASSWORD}"').ok()
        c.command("EXAMINE INBOX").ok()
        got = c.command("UID FETCH 1:* (UID FLAGS BODY.PEEK[])").ok().fetches()
        c.command("LOGOUT")
    finally:
        c.close()
    out = []
    for items in got.values():
        flags = tuple(sorted(str(f) for f in items["FLAGS"] if str(f) != "\\Recent"))
        out.append((items["UID"], flags, bytes(items["BODY[]"])))
    return sorted(out)


def lf(data: bytes) -> bytes:
    """LF line ends, without the X-TUID: field mbsync adds to the messages it copies (its own
    tracking header, documented in mbsync(1))."""
    return re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data.replace(b"\r\n", b"\n"))


def test_mbsync_two_way_then_nothing(imap_lab: ServerProcess, user: str, tmp_path: Path) -> None:
    srv = imap_lab
    delivered = [message(i) for i in range(1, 4)]
    for m in delivered:
        assert srv.deliver(m, [user]).startswith("OK")
    rc = mbsync_config(tmp_path, srv, user, "plain")

    # 1. server -> local
    mbsync(rc)
    local = local_messages(tmp_path)
    assert sorted(lf(m) for m in local.values()) == sorted(lf(m) for m in delivered)

    # 2. both ways at once: a new local message, a local \Seen, a local delete; a new server message
    #    and a server-side \Flagged.
    names = sorted(local)
    flags = local_flags(tmp_path)
    cur = tmp_path / "mail" / "INBOX" / "cur"
    new_dir = tmp_path / "mail" / "INBOX" / "new"
    seen_name, deleted_name = names[0], names[1]
    src = next(p for d in (cur, new_dir) for p in d.iterdir() if p.name.startswith(seen_name))
    src.rename(cur / f"{seen_name}:2,{''.join(sorted(flags[seen_name] + 'S'))}")
    gone = next(p for d in (cur, new_dir) for p in d.iterdir() if p.name.startswith(deleted_name))
    gone_body = gone.read_bytes()
    gone.unlink()
    uploaded = lf(message(50, "written locally"))
    (new_dir / "1700000000.local.test").write_bytes(uploaded)
    assert srv.deliver(message(60, "arrived on the server"), [user]).startswith("OK")
    c = RawClient(*srv.address("imap"))
    c.command(f'LOGIN "{user}" "{PASSWORD}"').ok()
    c.command("SELECT INBOX").ok()
    c.command("UID STORE 3 +FLAGS.SILENT (\\Flagged)").ok()
    c.command("LOGOUT")
    c.close()

    mbsync(rc)
    state = server_state(srv, user)
    bodies = {lf(b): f for _uid, f, b in state}
    assert lf(local[seen_name]) in bodies and "\\Seen" in bodies[lf(local[seen_name])]
    assert lf(gone_body) not in bodies, "the message deleted locally is still on the server"
    assert uploaded in bodies, "the local message was not uploaded"
    # mbsync sends CRLF; the server stores exactly that
    assert any(lf(b) == uploaded and b == b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for _u, _f, b in state)
    local_after = {lf(v): k for k, v in local_messages(tmp_path).items()}
    assert lf(message(60, "arrived on the server")) in local_after, "the server's new message did not arrive"
    flagged_local = local_after[lf(delivered[2])]
    assert "F" in local_flags(tmp_path)[flagged_local], "the server-side \\Flagged did not reach the Maildir"
    assert len(state) == len(local_messages(tmp_path)) == 4

    # 3. a second sync changes nothing, on either side
    before = (server_state(srv, user), sorted(local_flags(tmp_path).items()))
    r = mbsync(rc)
    after = (server_state(srv, user), sorted(local_flags(tmp_path).items()))
    assert before == after
    # mbsync -V prints its counters per channel: nothing added, flagged, deleted or expunged
    counters = re.findall(r"far: \+(\d+) \*(\d+) #(\d+) -(\d+)\s+near: \+(\d+) \*(\d+) #(\d+) -(\d+)", r.stdout)
    if counters:
        assert all(int(x) == 0 for row in counters for x in row), r.stdout


def test_mbsync_over_tls(imap_strict: ServerProcess, user: str, tmp_path: Path) -> None:
    """STARTTLS and implicit TLS, the certificate pinned by file (no verification skipped)."""
    srv = imap_strict
    for m in (message(1), message(2)):
        assert srv.deliver(m, [user]).startswith("OK")
    for mode in ("starttls", "imaps"):
        sub = tmp_path / mode
        sub.mkdir()
        mbsync(mbsync_config(sub, srv, user, mode))
        assert sorted(lf(m) for m in local_messages(sub).values()) == sorted(lf(m) for m in (message(1), message(2)))
