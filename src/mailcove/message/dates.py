"""Date header to UTC timestamp (SORT DATE, SEARCH SENTBEFORE/SENTON/SENTSINCE)."""

from __future__ import annotations

import calendar
import re
from email.utils import parsedate_tz

__all__ = ["parse_date", "parse_date_day"]

_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                        "nov", "dec"), 1)}
# Days before the first of each month in a common year (index = month).
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_EPOCH_ORDINAL = 719163  # datetime.date(1970, 1, 1).toordinal()
# The RFC 5322 form nearly every message uses; anything else goes to the stdlib's lenient parser.
_FAST = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d\d):(\d\d)(?::(\d\d))?\s+([+-])(\d\d)(\d\d)"
    r"(?:\s*\(.*\))?\s*$"
)


def _timegm(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> int:
    """calendar.timegm((year, month, day, hh, mm, ss, ...)) without building a datetime.date:
    the same proleptic Gregorian arithmetic, and the same ValueError for a year outside 1..9999
    (the other fields may overflow into the next unit, as timegm lets them)."""
    if not 1 <= year <= 9999:
        raise ValueError("year out of range")
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 + _DAYS_BEFORE_MONTH[month] + day - _EPOCH_ORDINAL
    if month > 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days += 1
    return ((days * 24 + hh) * 60 + mm) * 60 + ss


def _fast_date(value: str) -> float | None:
    """The common RFC 5322 form, or None (also for out-of-range values) to leave it to `parse_date`."""
    m = _FAST.match(value)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        return None
    try:
        t = _timegm(int(year), month, int(day), int(hh), int(mm), int(ss or 0))
    except ValueError:
        return None
    offset = int(oh) * 3600 + int(om) * 60
    return float(t + offset if sign == "-" else t - offset)


def _full_date(value: str) -> float | None:
    parsed = _full_date_offset(value)
    return None if parsed is None else parsed[0]


def _full_date_offset(value: str) -> tuple[float, int] | None:
    """(UTC timestamp, the header's zone offset in seconds east of UTC), or None."""
    m = _FAST.match(value)
    try:
        if m is not None:
            day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
            month = _MONTHS.get(mon.lower())
            if month is not None:
                offset = (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
                t = calendar.timegm((int(year), month, int(day), int(hh), int(mm), int(ss or 0), 0, 0, 0))
                return float(t - offset), offset
        parsed = parsedate_tz(value)
        if parsed is None:
            return None
        t = calendar.timegm((*parsed[:6], 0, 0, 0))
        return float(t - (parsed[9] or 0)), parsed[9] or 0
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def parse_date(value: str | None) -> float | None:
    """A UTC timestamp for a Date header value, or None when it cannot be understood."""
    if not value:
        return None
    t = _fast_date(value)
    return t if t is not None else _full_date(value)


_SECONDS_PER_DAY = 86400


def parse_date_day(value: str | None) -> int | None:
    """The calendar day a Date header value names, in the header's own time zone, as a proleptic
    Gregorian ordinal (`datetime.date.toordinal`); None when it cannot be understood.

    SEARCH SENTBEFORE/SENTON/SENTSINCE compare this day: RFC 9051 6.4.4 "disregarding time and
    timezone", so "Sun, 25 Mar 2007 00:00:00 +0200" is on 25 March although it is 24 March in UTC."""
    if not value:
        return None
    m = _FAST.match(value)
    if m is not None:
        # The common form: the named day is the date fields themselves (no arithmetic in UTC).
        day, mon, year, hh, mm, ss, _sign, _oh, _om = m.groups()
        month = _MONTHS.get(mon.lower())
        if month is not None:
            try:
                t = _timegm(int(year), month, int(day), int(hh), int(mm), int(ss or 0))
            except ValueError:
                return None
            return t // _SECONDS_PER_DAY + _EPOCH_ORDINAL
    parsed = _full_date_offset(value)
    if parsed is None:
        return None
    ts, offset = parsed
    return int((ts + offset) // _SECONDS_PER_DAY) + _EPOCH_ORDINAL
