"""mailcove: SMTP, IMAP and POP3 in one package, replacing Sendmail + Dovecot."""

__version__ = "0.1.0"
