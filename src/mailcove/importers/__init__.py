"""Moving an existing installation to mailcove: its configuration (Sendmail, Dovecot) and its mail.

Parsers are sans-IO (text, or an injected `Files`, in; a Plan of changes and the lines that could
not be mapped out), so they are tested without a server. `apply` and `tomlconfig` compare a plan
with the directory and the config file and change only what differs. This package sits beside
admin/ in the layers: it may use directory, config, store and core, never app or the protocols."""
