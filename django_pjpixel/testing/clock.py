"""The time the emulated API lives in, and ISO-8601 times as it reads and writes them.

Events carry an ``event_time`` in ISO-8601, UTC [seed]; listings take ``from``
and ``to`` as ISO-8601 times [seed]. The emulator's clock is ``utc_now`` by
default; tests give it a ``ManualClock`` to move the 30-day duplicate window,
token lifetimes and rate-limit windows by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})"
)


def utc_now() -> datetime:
    """The real time, as an aware UTC datetime (the emulator's default clock)."""
    return datetime.now(timezone.utc)


def parse_iso_time(value: object) -> datetime | None:
    """An aware datetime from an ISO-8601 time with a zone (``Z`` or an offset)."""
    if not isinstance(value, str):
        return None
    match = _ISO_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if zone == "Z":
            tz = timezone.utc
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        when = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=tz,
        )
        when.astimezone(timezone.utc)  # 9999-12-31T23:30:00-05:00 is past the year 9999
    except (ValueError, OverflowError):
        return None
    return when


def format_time(value: datetime) -> str:
    """``value`` as the API writes a time: UTC, milliseconds, ``Z`` [seed], and a
    four-digit year (``strftime("%Y")`` writes the year 1 as ``1`` on glibc)."""
    utc = value.astimezone(timezone.utc)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class ManualClock:
    """A clock for tests: stands still until ``advance`` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 13, 10, 45, 46, 987000, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now
