"""ISO 8601 times read as nanoseconds since 1970 UTC, the instant pandas'
`to_datetime(..., utc=True, format="ISO8601")` gives, about 10x faster per value: what a
few values cost (a request's time, the observation times the online store keeps) matters
on the serving path, where pandas' fixed costs would be most of it.

Only the formats below are read: beyond them pandas and Python disagree (an ISO week date
like 2013-W13-7 is a date to Python, not to pandas), and so do their ranges.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

TIME_FORMATS = (
    "YYYY-MM-DD",
    "YYYY-MM-DDTHH:MM",
    "YYYY-MM-DDTHH:MM:SS",
    "YYYY-MM-DDTHH:MM:SS.fffffffff (1 to 9 digits)",
)
TIME_OFFSETS = "then optionally Z, +HH:MM or +HHMM (UTC when absent); a space may stand for T"
TIME_RANGE = (1678, 2261)
"""Years whose times every pandas resolution holds (nanoseconds span 1677-09 to 2262-04)."""
NAT = -(2**63)
"""NumPy's int64 for not-a-time."""

_TIME = re.compile(
    r"(\d{4})-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?",
    re.ASCII,  # \d: 0-9 only, as pandas reads digits
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_ns(text: str) -> int | None:
    """Nanoseconds since 1970 UTC of `text` in one of `TIME_FORMATS` with a year in
    `TIME_RANGE` (UTC unless it carries an offset); None for anything else."""
    match = _TIME.fullmatch(text)
    if match is None or not TIME_RANGE[0] <= int(match[1]) <= TIME_RANGE[1]:
        return None
    try:  # within these formats Python reads what pandas reads
        when = datetime.fromisoformat(text)
    except ValueError:  # a day or an hour out of range
        return None
    since = (when if when.tzinfo else when.replace(tzinfo=UTC)) - _EPOCH
    microseconds = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    beyond = int((match[2] or "")[6:].ljust(3, "0"))  # digits 7-9, which Python drops
    return microseconds * 1000 + beyond
