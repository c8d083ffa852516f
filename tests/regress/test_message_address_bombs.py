"""A header field naming a huge number of addresses (a To: of 10 MB of `u1@x, u2@x, ...`, which
any sender can put in a message). The address parser stops at MAX_ADDRESSES (10,000), as
Dovecot's does, but only its full path did: the fast paths for everyday lists (unquoted, and
quoted display names) built every address, so ENVELOPE and the search index of such a message
held hundreds of thousands of them. Every path now stops at the same 10,000, with the same
answer as the full parser."""

from __future__ import annotations

import pytest

from mailcove.message.addresses import MAX_ADDRESSES, _full_list, parse_address_list

LISTS = {
    "unquoted": lambda n: ", ".join(f"u{i}@x.test" for i in range(n)),
    "display names": lambda n: ", ".join(f"User {i} <u{i}@x.test>" for i in range(n)),
    "quoted names": lambda n: ", ".join(f'"U, {i}" <u{i}@x.test>' for i in range(n)),
    "trailing comma": lambda n: ", ".join(f"u{i}@x.test" for i in range(n)) + ",",
}


@pytest.mark.parametrize("kind", LISTS)
@pytest.mark.parametrize("n", [MAX_ADDRESSES, MAX_ADDRESSES + 1, 3 * MAX_ADDRESSES])
def test_every_path_stops_at_max_addresses(kind: str, n: int) -> None:
    value = LISTS[kind](n)
    got = parse_address_list(value)
    assert len(got) == min(n, MAX_ADDRESSES)
    assert got == _full_list(value)
    assert got[-1].mailbox == f"u{min(n, MAX_ADDRESSES) - 1}"
