"""The dnspython Resolver against a real dnsmasq on loopback: MX, A, TXT split in strings,
NXDOMAIN vs no data, a dead server as a temporary failure."""

from __future__ import annotations

import pytest
from outbound_testing import Dnsmasq, free_udp_tcp_port

from mailcove.dns import NotFound, TempError, make_resolver, parse_nameserver


@pytest.fixture
def dnsmasq(tmp_path):  # type: ignore[no-untyped-def]
    d = Dnsmasq(tmp_path)
    d.mx("a.test", "mx.a.test", 10)
    d.mx("a.test", "mx2.a.test", 20)
    d.host("mx.a.test", "127.0.0.1")
    d.host("mx2.a.test", "127.0.0.2")
    d.txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all")
    d.txt("long.a.test", "x" * 200, "y" * 200)
    d.start()
    yield d
    d.stop()


def test_parse_nameserver() -> None:
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)


async def test_lookups(dnsmasq: Dnsmasq) -> None:
    r = make_resolver([dnsmasq.server])
    assert sorted(await r.mx("a.test")) == [(10, "mx.a.test"), (20, "mx2.a.test")]
    assert await r.a("mx2.a.test") == ["127.0.0.2"]
    assert await r.txt("a.test") == [b"v=spf1 ip4:127.0.0.0/8 -all"]
    assert await r.txt("long.a.test") == [b"x" * 200 + b"y" * 200]
    assert await r.mx("mx.a.test") == []  # exists, no MX
    with pytest.raises(NotFound):
        await r.mx("nope.a.test")


async def test_dead_server_is_temporary() -> None:
    r = make_resolver([f"127.0.0.1:{free_udp_tcp_port()}"], timeout=0.5)
    with pytest.raises(TempError):
        await r.mx("a.test")
