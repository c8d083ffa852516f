"""SMTP: session policy (session.py), shared limits (limits.py) and the asyncio handler plus the
local submit socket (server.py). The protocol itself is the sans-IO core in mailcove.proto.smtp."""
