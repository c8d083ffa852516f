"""The IMAP server: session state machine, selected-mailbox cache, one module per command.

The bytes <-> command core is proto.imap (sans-IO); this package is policy and I/O:
`server.ImapServer` (built from `ImapDeps`) for the `imap` and `imaps` listeners, `session.Session` per connection,
`selected` (shared per-mailbox caches and per-session views), `ops/<command>.py`, `search`,
`sort`, `thread`, and `fmt` (the FETCH serialisers). docs/design/imap.md has the design.
"""
