"""The one parser of times people type: on the command line, in web filters, in the API.

- `yyyy-mm-dd` is a local day in the configured zone: its first instant, or
  with `end_of_day` (a `--to`, a web `to=`) its last one, so "to 2024-12-31"
  includes the 31st.
- Anything else is ISO 8601; a time without an offset is local time.
- Years outside 1970–2200 are refused (a mistyped year, not a wish).

Returns aware UTC datetimes; raises ValueError with a short reason, which each
interface turns into its own message (a click error, a 400 page, a 422).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

EARLIEST_YEAR, LATEST_YEAR = 1970, 2200
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_time(text: str, zone: tzinfo, *, end_of_day: bool = False) -> datetime:
    """A typed date or time as aware UTC (see the module docstring); ValueError otherwise."""
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            day = date.fromisoformat(value)
            if end_of_day:
                when = datetime.combine(day + timedelta(days=1), time(), zone)
                when -= timedelta(microseconds=1)
            else:
                when = datetime.combine(day, time(), zone)
        else:
            when = datetime.fromisoformat(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=zone)
        when = when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not a date (yyyy-mm-dd) or an ISO 8601 time") from None
    if not EARLIEST_YEAR <= when.year <= LATEST_YEAR:
        raise ValueError(f"year {when.year} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
    return when
