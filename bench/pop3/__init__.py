"""bench/pop3: mailcove's POP3 against Dovecot's; run `python -m bench.pop3`."""
