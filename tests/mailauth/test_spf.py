"""SPF check_host() over the fake resolver (the logic; tests/e2e covers it over dnsmasq)."""

from __future__ import annotations

import pytest

from mailcove.dns import TempError
from mailcove.dns.fake import FakeResolver
from mailcove.mailauth.spf import check_host


def res(**txt: str) -> FakeResolver:
    r = FakeResolver()
    for name, value in txt.items():
        r.add(name.replace("_", "."), "TXT", value)
    return r


@pytest.mark.parametrize(
    ("record", "ip", "result"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.9", "pass"),
        ("v=spf1 ip4:192.0.2.0/24 -all", "198.51.100.1", "fail"),
        ("v=spf1 ip4:192.0.2.0/24 ~all", "198.51.100.1", "softfail"),
        ("v=spf1 ip4:192.0.2.0/24 ?all", "198.51.100.1", "neutral"),
        ("v=spf1 ip4:192.0.2.0/24", "198.51.100.1", "neutral"),
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::1", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "192.0.2.9", "fail"),
        ("v=spf1 a -all", "192.0.2.1", "pass"),
        ("v=spf1 mx -all", "192.0.2.2", "pass"),
        ("v=spf1 mx/24 -all", "192.0.2.200", "pass"),
        ("v=spf1 a:other.example -all", "203.0.113.5", "pass"),
        ("v=spf1 include:inc.example -all", "203.0.113.77", "pass"),
        ("v=spf1 include:inc.example -all", "203.0.113.78", "fail"),
        ("v=spf1 redirect=inc.example", "203.0.113.77", "pass"),
        ("v=spf1 exists:%{i}.allow.example -all", "192.0.2.50", "pass"),
        ("v=spf1 include:nospf.example -all", "192.0.2.1", "permerror"),
        ("v=spf1 foo:bar -all", "192.0.2.1", "permerror"),
        ("v=spf1 " + " ".join(f"a:h{i}.example" for i in range(11)) + " -all", "198.51.100.1", "permerror"),
    ],
)
async def test_mechanisms(record: str, ip: str, result: str) -> None:
    r = FakeResolver({
        ("example.org", "TXT"): [record, "some other text"],
        ("example.org", "A"): ["192.0.2.1"],
        ("example.org", "MX"): [(10, "mx.example.org")],
        ("mx.example.org", "A"): ["192.0.2.2"],
        ("other.example", "A"): ["203.0.113.5"],
        ("inc.example", "TXT"): ["v=spf1 ip4:203.0.113.77 -all"],
        ("nospf.example", "TXT"): ["not spf"],
        ("192.0.2.50.allow.example", "A"): ["127.0.0.2"],
        **{(f"h{i}.example", "A"): ["10.0.0.1"] for i in range(11)},
    })
    assert (await check_host(r, ip, "someone@example.org", "helo.example")).result == result


async def test_no_record_null_sender_and_errors() -> None:
    r = FakeResolver({("example.org", "TXT"): ["hello"], ("helo.example", "TXT"): ["v=spf1 ip4:192.0.2.1 -all"],
                      ("two.example", "TXT"): ["v=spf1 -all", "v=spf1 +all"],
                      ("slow.example", "TXT"): TempError("timeout")})
    assert (await check_host(r, "192.0.2.1", "a@example.org", "x")).result == "none"
    assert (await check_host(r, "192.0.2.1", "a@nx.example", "x")).result == "none"
    # the null reverse-path: the HELO identity is checked (RFC 7208 2.4)
    v = await check_host(r, "192.0.2.1", "", "helo.example")
    assert (v.result, v.domain) == ("pass", "helo.example")
    assert (await check_host(r, "192.0.2.1", "a@two.example", "x")).result == "permerror"
    assert (await check_host(r, "192.0.2.1", "a@slow.example", "x")).result == "temperror"
