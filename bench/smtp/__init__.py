"""bench/smtp: mailcove's SMTP server against Postfix and aiosmtpd (see __main__.py)."""
