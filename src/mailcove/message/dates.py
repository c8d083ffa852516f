"""Date header to UTC timestamp (SORT DATE, SEARCH SENTBEFORE/SENTON/SENTSINCE)."""

from __future__ import annotations

import calendar
import re
from email.utils import parsedate_tz

__all__ = ["parse_date"]

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                        "nov", "dec"), 1)}
# The RFC 5322 form nearly every message uses; anything else goes to the stdlib's lenient parser.
_FAST = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d\d):(\d\d)(?::(\d\d))?\s+([+-])(\d\d)(\d\d)"
    r"(?:\s*\(.*\))?\s*$"
)


def parse_date(value: str | None) -> float | None:
    """A UTC timestamp for a Date header value, or None when it cannot be understood."""
    if not value:
        return None
    m = _FAST.match(value)
    try:
        if m is not None:
            day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
            month = _MONTHS.get(mon.lower())
            if month is not None:
                offset = (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
                t = calendar.timegm((int(year), month, int(day), int(hh), int(mm), int(ss or 0), 0, 0, 0))
                return float(t - offset)
        parsed = parsedate_tz(value)
        if parsed is None:
            return None
        t = calendar.timegm((*parsed[:6], 0, 0, 0))
        return float(t - (parsed[9] or 0))
    except (ValueError, OverflowError, TypeError, IndexError):
        return None
