"""ID (RFC 2971): remember what the client says (for the log) and name ourselves."""

from __future__ import annotations

from mailcove import __version__
from mailcove.imap.session import Session
from mailcove.proto.imap.commands import Id


async def run(s: Session, cmd: Id) -> str:
    if cmd.params is not None:
        s.client_id = {k[:64]: (v[:256] if v is not None else None) for k, v in cmd.params[:30]}
        s.log.info("client id %s", " ".join(f"{k}={v!r}" for k, v in s.client_id.items()))
    s.write(s.enc.id({"name": "mailcove", "version": __version__}))
    return "ID completed"
