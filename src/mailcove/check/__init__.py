"""`mailcove check`: diagnose an installation, one module per check, each giving Findings with
a fix for every problem (docs/check.md).

    records.py    the DNS records a domain needs (what `mailcove dns` prints), as data
    model.py      Finding (status ok / warn / fail, what, detail, fix) and the report
    listeners.py  every listener of the running server answers with its greeting
    tls.py        the certificate: valid, names the hostname, days to expiry
    dns.py        the published records against records.py, through dnspython
    relay.py      an open-relay probe against our own SMTP listener
    runner.py     runs them all
"""
