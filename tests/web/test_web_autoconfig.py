"""The http listener of a real `mailcove serve`: Thunderbird autoconfig fetched with curl and
http.client, parsed, checked against the running listeners, then used to configure real clients
(imaplib, smtplib, poplib) that log in and move a message; Outlook autodiscover; the Apple
profile; MTA-STS; answers follow directory changes and restarts."""

from __future__ import annotations

import imaplib
import plistlib
import poplib
import re
import smtplib
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Any

from web_testing import PASSWORD, cli, hamap_server, request

from mailcove_testing import require_tool

AD_REQ = ("<?xml version='1.0' encoding='utf-8'?>"
          '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
          "<Request><EMailAddress>{email}</EMailAddress><AcceptableResponseSchema>"
          "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
          "</AcceptableResponseSchema></Request></Autodiscover>")
NS = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the self-signed certificate of a test server
    return ctx


def servers(xml: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(xml)
    out = []
    for el in root.iter():
        if el.tag in ("incomingServer", "outgoingServer"):
            out.append({"type": el.get("type", ""), **{c.tag: (c.text or "") for c in el}})
    return out


def test_thunderbird_autoconfig_is_the_running_config_and_configures_real_clients(serve_factory: Any) -> None:
    curl = require_tool("curl")
    srv = hamap_server(serve_factory)
    host, port = srv.address("http")
    url = f"http://{host}:{port}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a%40hamap.local"
    out = subprocess.run([curl, "-sS", "-f", "-D", "-", url], capture_output=True, timeout=30, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"200 OK" in head.split(b"\r\n")[0] and b"application/xml" in head
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    assert root.find("emailProvider/domain").text == "hamap.local"  # type: ignore[union-attr]
    got = {(s["type"], s["socketType"]): s for s in servers(body)}
    assert set(got) == {("imap", "SSL"), ("imap", "STARTTLS"), ("pop3", "SSL"), ("pop3", "STARTTLS"),
                        ("smtp", "SSL"), ("smtp", "STARTTLS")}
    expect_ports = {("imap", "SSL"): "imaps", ("imap", "STARTTLS"): "imap", ("pop3", "SSL"): "pop3s",
                    ("pop3", "STARTTLS"): "pop3", ("smtp", "SSL"): "submissions", ("smtp", "STARTTLS"): "submission"}
    for key, listener in expect_ports.items():
        s = got[key]
        assert int(s["port"]) == srv.port(listener), (key, s)
        assert s["hostname"] == "mx1.hamap.local" and s["username"] == "a@hamap.local"
        assert s["authentication"] == "password-cleartext"
    # The order is the preference: implicit TLS first (RFC 8314).
    assert [s["socketType"] for s in servers(body) if s["type"] == "imap"] == ["SSL", "STARTTLS"]

    # A client set up from it alone (mx1.hamap.local is this machine: connect to the listener's address).
    def where(s: dict[str, str]) -> tuple[str, int]:
        return host, int(s["port"])

    smtp_ssl = got[("smtp", "SSL")]
    with smtplib.SMTP_SSL(*where(smtp_ssl), context=tls_context(), timeout=30) as c:
        c.login(smtp_ssl["username"], PASSWORD)
        c.sendmail("a@hamap.local", ["a@hamap.local"], b"Subject: via autoconfig SSL\r\n\r\nhello\r\n")
    submission = got[("smtp", "STARTTLS")]
    with smtplib.SMTP(*where(submission), timeout=30) as c:
        c.starttls(context=tls_context())
        c.login(submission["username"], PASSWORD)
        c.sendmail("a@hamap.local", ["a@hamap.local"], b"Subject: via autoconfig STARTTLS\r\n\r\nhello\r\n")
    imaps = got[("imap", "SSL")]
    deadline = time.monotonic() + 20
    with imaplib.IMAP4_SSL(*where(imaps), ssl_context=tls_context(), timeout=30) as m:
        m.login(imaps["username"], PASSWORD)
        while True:
            m.select("INBOX")
            _typ, data = m.search(None, "ALL")
            if len(data[0].split()) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(data[0].split()) == 2
        _typ, subjects = m.fetch(b"1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"via autoconfig SSL" in b"".join(p[1] for p in subjects if isinstance(p, tuple))
    imap = got[("imap", "STARTTLS")]
    m2 = imaplib.IMAP4(*where(imap), timeout=30)
    m2.starttls(ssl_context=tls_context())
    m2.login(imap["username"], PASSWORD)
    m2.logout()
    pop = got[("pop3", "SSL")]
    p = poplib.POP3_SSL(*where(pop), context=tls_context(), timeout=30)
    p.user(pop["username"])
    p.pass_(PASSWORD)
    assert p.stat()[0] == 2
    p.quit()

    # Thunderbird for Android asks without the address: placeholders, domain from the Host header.
    status, _h, body = request(srv, "GET", "/mail/config-v1.1.xml", headers={"Host": "autoconfig.hamap.local"})
    assert status == 200
    assert {s["username"] for s in servers(body)} == {"%EMAILADDRESS%"}
    assert ET.fromstring(body).find("emailProvider/domain").text == "hamap.local"  # type: ignore[union-attr]


def test_autodiscover_and_apple_profile(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory)
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        status, headers, body = request(srv, "POST", path, AD_REQ.format(email="a@hamap.local").encode(),
                                        {"Content-Type": "text/xml"})
        assert status == 200, body
        assert headers["content-type"].startswith("application/xml")
        root = ET.fromstring(body)
        protos = root.findall("r:Response/r:Account/r:Protocol", NS)
        rows = {(p.findtext("r:Type", namespaces=NS), p.findtext("r:Encryption", namespaces=NS)):
                (int(p.findtext("r:Port", namespaces=NS) or 0), p.findtext("r:Server", namespaces=NS),
                 p.findtext("r:LoginName", namespaces=NS)) for p in protos}
        assert rows[("IMAP", "SSL")] == (srv.port("imaps"), "mx1.hamap.local", "a@hamap.local")
        assert rows[("IMAP", "TLS")][0] == srv.port("imap")
        assert rows[("POP3", "SSL")][0] == srv.port("pop3s")
        assert rows[("SMTP", "SSL")][0] == srv.port("submissions")
        assert rows[("SMTP", "TLS")][0] == srv.port("submission")
    # Outlook asks over HTTPS: the https listener serves the same with the server's certificate
    import http.client

    conn = http.client.HTTPSConnection(*srv.address("https"), timeout=10, context=tls_context())
    try:
        conn.request("POST", "/autodiscover/autodiscover.xml", body=AD_REQ.format(email="a@hamap.local").encode(),
                     headers={"Content-Type": "text/xml", "Host": "autodiscover.hamap.local"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert b"<Server>mx1.hamap.local</Server>" in resp.read()
        assert conn.sock is not None and conn.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
    finally:
        conn.close()
    # wrong method, unknown domain, bad XML, an entity bomb: clear errors, nothing expanded
    status, headers, body = request(srv, "GET", "/autodiscover/autodiscover.xml")
    assert status == 405 and headers["allow"] == "POST" and b"use POST" in body
    other = AD_REQ.format(email="x@other.test").encode()
    status, _h, body = request(srv, "POST", "/autodiscover/autodiscover.xml", other)
    assert status == 404 and b"other.test is not a mail domain" in body
    status, _h, body = request(srv, "POST", "/autodiscover/autodiscover.xml", b"<Autodiscover><Request>")
    assert status == 400 and b"not a valid autodiscover request" in body
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Autodiscover><Request><EMailAddress>&c;@hamap.local'
            b"</EMailAddress></Request></Autodiscover>")
    status, _h, body = request(srv, "POST", "/autodiscover/autodiscover.xml", bomb)
    assert status == 400, body

    status, headers, body = request(srv, "GET", "/apple/mobileconfig?emailaddress=a@hamap.local")
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP" and account["EmailAddress"] == "a@hamap.local"
    assert account["IncomingMailServerPortNumber"] == srv.port("imaps") and account["IncomingMailServerUseSSL"]
    assert account["OutgoingMailServerPortNumber"] == srv.port("submissions")
    assert account["IncomingMailServerUsername"] == "a@hamap.local"
    # installing again replaces the account: stable UUIDs
    assert plistlib.loads(request(srv, "GET", "/apple/mobileconfig?emailaddress=a@hamap.local")[2]) == profile
    assert request(srv, "GET", "/apple/mobileconfig")[0] == 400
    assert request(srv, "GET", "/apple/mobileconfig?emailaddress=a@other.test")[0] == 404


def test_answers_follow_the_directory_and_a_restart(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory)
    path = "/mail/config-v1.1.xml?emailaddress=b@other.test"
    status, _h, body = request(srv, "GET", path)
    assert status == 404 and b"not a mail domain of this server" in body
    # unknown Host and no address: 404 that says what to do
    status, _h, body = request(srv, "GET", "/mail/config-v1.1.xml", headers={"Host": "autoconfig.other.test"})
    assert status == 404 and b"emailaddress" in body
    cli(srv, "domain", "add", "other.test")
    deadline = time.monotonic() + 10
    while (status := request(srv, "GET", path)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 200
    # a restart binds other ports (port 0): the documents follow the running server
    old = srv.port("imaps")
    srv.restart()
    body = request(srv, "GET", path)[2]
    ports = {(s["type"], s["socketType"]): int(s["port"]) for s in servers(body)}
    assert ports[("imap", "SSL")] == srv.port("imaps") != old


def test_listeners_off_and_lab_mode_are_reflected(serve_factory: Any) -> None:
    # The seed's lab: no TLS, plaintext passwords, SMTP on 25 only (no submission listeners).
    srv = hamap_server(serve_factory, "[tls]\nenabled = false\n[auth]\nallow_plaintext = true\n",
                       listeners={"submission": None, "pop3": None})
    body = request(srv, "GET", "/mail/config-v1.1.xml?emailaddress=a@hamap.local")[2]
    rows = {(s["type"], s["socketType"], int(s["port"])) for s in servers(body)}
    assert rows == {("imap", "plain", srv.port("imap")), ("smtp", "plain", srv.port("smtp"))}
    # and a client set up from it logs in (the lab's plaintext IMAP)
    m = imaplib.IMAP4(srv.address("imap")[0], srv.port("imap"), timeout=30)
    m.login("a@hamap.local", PASSWORD)
    m.logout()
    # TLS on but plaintext refused: a plain listener would be useless, only TLS ones are offered
    srv2 = hamap_server(serve_factory, listeners={"imaps": None})
    body = request(srv2, "GET", "/mail/config-v1.1.xml?emailaddress=a@hamap.local")[2]
    imap_rows = [s for s in servers(body) if s["type"] == "imap"]
    assert [(s["socketType"], int(s["port"])) for s in imap_rows] == [("STARTTLS", srv2.port("imap"))]


def test_mta_sts_policy_matches_the_dns_record(serve_factory: Any) -> None:
    srv = hamap_server(serve_factory, '[web]\nmta_sts_mode = "enforce"\n')
    status, headers, body = request(srv, "GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.hamap.local"})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body.decode().splitlines() == ["version: STSv1", "mode: enforce", "mx: mx1.hamap.local", "max_age: 604800"]
    assert request(srv, "GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.other.test"})[0] == 404
    zone = cli(srv, "dns", "hamap.local", "--address", "192.0.2.7").stdout
    m = re.search(r'_mta-sts\.hamap\.local\. IN TXT "v=STSv1; id=(\w+)"', zone)
    assert m is not None, zone
    import hashlib

    assert m.group(1) == hashlib.sha256(body).hexdigest()[:20]
    for line in ("autoconfig.hamap.local. IN CNAME mx1.hamap.local.",
                 "autodiscover.hamap.local. IN CNAME mx1.hamap.local.",
                 f"_autodiscover._tcp.hamap.local. IN SRV 0 1 {srv.port('https')} mx1.hamap.local.",
                 "mta-sts.hamap.local. IN CNAME mx1.hamap.local.",
                 '_smtp._tls.hamap.local. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@hamap.local"'):
        assert line in zone
