"""HTTP: client autoconfiguration (Thunderbird autoconfig, Outlook autodiscover, an Apple
.mobileconfig) and the MTA-STS policy, served by the `http` listener.

    clientconfig.py  which servers/ports/TLS modes a client should use, from the live settings and
                     the listeners the running server actually bound
    documents.py     the three client documents (XML, XML, plist) built from that
    mtasts.py        the MTA-STS policy text and its id (shared with `mailcove dns` and `check`)
    http.py          the HTTP/1.1 connection loop over h11 (limits, keep-alive, HEAD, errors)
    server.py        WebServer(WebDeps(...)): routing, the app's entry point
"""
