"""Issue 13 findings 2 and 5: every protocol caps connections in total and per client IP (1,500
IMAP connections from one address were all accepted, and a few addresses could take every SMTP
slot). Each protocol's listeners share one counter; a refused client gets its protocol's own
"try again later" and the slot comes back when a connection closes."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

import pytest

from mailcove_testing import ServerProcess

TOTAL, PER_IP = 4, 2

REFUSALS = {
    "smtp": b"421 4.7.0 ",
    "imap": b"* BYE Too many connections",
    "pop3": b"-ERR [SYS/TEMP] Too many connections",
    "http": b"HTTP/1.1 503 ",
}
SECTION = {"smtp": "smtp", "imap": "imap", "pop3": "pop3", "http": "web"}
HTTP_REQUEST = b"GET /.well-known/autoconfig/mail/config-v1.1.xml HTTP/1.1\r\nHost: mx1.hamap.local\r\n\r\n"


def _open(addr: tuple[str, int], source: str, *, tls: bool = False) -> socket.socket:
    s = socket.create_connection(addr, timeout=10, source_address=(source, 0))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def _first_reply(s: socket.socket, proto: str) -> bytes:
    if proto == "http":
        s.sendall(HTTP_REQUEST)
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _accepted(s: socket.socket, proto: str) -> bool:
    reply = _first_reply(s, proto)
    assert reply, "closed without a word"
    return not reply.startswith(REFUSALS[proto])


def _refused_then_closed(s: socket.socket, proto: str) -> bool:
    reply = _first_reply(s, proto)
    if not reply.startswith(REFUSALS[proto]):
        return False
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    return True


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop3", "http"])
def test_caps_per_ip_and_in_total(serve_factory: Callable[..., ServerProcess], proto: str) -> None:
    srv = serve_factory(f"[{SECTION[proto]}]\nmax_connections = {TOTAL}\nmax_connections_per_ip = {PER_IP}\n")
    addr = srv.address(proto)
    held = []
    for _ in range(PER_IP):
        s = _open(addr, "127.0.0.1")
        assert _accepted(s, proto)
        held.append(s)
    assert _refused_then_closed(_open(addr, "127.0.0.1"), proto), "a third connection from one IP was accepted"
    for _ in range(TOTAL - PER_IP):
        s = _open(addr, "127.0.0.2")
        assert _accepted(s, proto), "another address is held back by the first one's cap"
        held.append(s)
    assert _refused_then_closed(_open(addr, "127.0.0.3"), proto), "a connection over the total was accepted"
    held.pop(0).close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the close asynchronously
        s = _open(addr, "127.0.0.1")
        reply = _first_reply(s, proto)
        if not reply.startswith(REFUSALS[proto]):
            break
        s.close()
        assert time.monotonic() < deadline, "a closed connection's slot never came back"
        time.sleep(0.1)
    for s in held:
        s.close()


@pytest.mark.parametrize(("proto", "plain", "implicit"), [("imap", "imap", "imaps"), ("pop3", "pop3", "pop3s"),
                                                         ("smtp", "submission", "submissions")])
def test_a_protocols_listeners_share_one_count(serve_factory: Callable[..., ServerProcess], proto: str, plain: str,
                                               implicit: str) -> None:
    """Going over to the implicit-TLS port does not buy a client more connections."""
    srv = serve_factory(f"[{SECTION[proto]}]\nmax_connections = {TOTAL}\nmax_connections_per_ip = {PER_IP}\n")
    held = [_open(srv.address(plain), "127.0.0.1") for _ in range(PER_IP)]
    for s in held:
        assert _accepted(s, proto)
    s = _open(srv.address(implicit), "127.0.0.1", tls=True)
    assert _refused_then_closed(s, proto)
    other = _open(srv.address(implicit), "127.0.0.2", tls=True)
    assert _accepted(other, proto)
    for s in [*held, other]:
        s.close()


def test_an_ipv6_client_is_its_64() -> None:
    """The per-IP caps counted an IPv6 client per address, so one host, which owns a whole /64,
    got the cap 2**64 times by changing its source address. Clients are now counted per /64, as
    the login throttle counts them, and an IPv4-mapped address (a dual-stack listener) as its
    IPv4 address. (A unit test: loopback has no second IPv6 address to connect from.)"""
    from mailcove.net.limits import ConnectionCounter

    caps = ConnectionCounter(total=100, per_ip=2)
    assert caps.try_add("2001:db8::1") and caps.try_add("2001:db8::2")
    assert not caps.try_add("2001:db8::ffff:3"), "a third address of the same /64 was let in"
    assert caps.try_add("2001:db8:0:1::1")  # another /64 is another client
    assert caps.try_add("127.0.0.2") and caps.try_add("::ffff:127.0.0.2")
    assert not caps.try_add("127.0.0.2")
    caps.remove("2001:db8::1")
    assert caps.try_add("2001:db8::7")
    assert caps.per_ip == {"2001:db8::/64": 2, "2001:db8:0:1::/64": 1, "127.0.0.2": 2}
