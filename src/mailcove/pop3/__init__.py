"""POP3: the session (policy over the sans-IO core in mailcove.proto.pop3) and its listeners."""
