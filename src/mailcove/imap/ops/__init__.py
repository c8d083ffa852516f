"""One module per IMAP command (a few twins share one: SELECT/EXAMINE, COPY/MOVE, LIST/LSUB,
SUBSCRIBE/UNSUBSCRIBE, the QUOTA commands). Each has `async def run(session, command)` returning
the tagged OK text (or a (code, text) pair) and raising session.Reply for NO / BAD."""
