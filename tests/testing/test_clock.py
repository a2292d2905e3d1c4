"""The emulator's time (``testing/clock.py``): ISO-8601 times as the API takes
them, and the clock tests move by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from django_pjpixel.testing.clock import ManualClock, format_time, parse_iso_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-13T10:45:46.987Z", datetime(2025, 3, 13, 10, 45, 46, 987000, timezone.utc)),
        ("2025-03-13T12:45:46-0200", datetime(2025, 3, 13, 14, 45, 46, tzinfo=timezone.utc)),
        ("2025-02-30T00:00:00Z", None),
        ("2025-03-13T10:45:46+25:00", None),
        ("0001-01-01T00:00:00.000Z", datetime(1, 1, 1, tzinfo=timezone.utc)),
        ("9999-12-31T23:30:00-05:00", None),  # past the year 9999 in UTC
        ("0001-01-01T00:30:00+01:00", None),  # before the year 1 in UTC
        (None, None),
    ],
)
def test_parse_iso_time(text: object, expected: datetime | None) -> None:
    assert parse_iso_time(text) == expected


def test_manual_clock() -> None:
    clock = ManualClock()
    start = clock()
    assert clock.advance(timedelta(seconds=5)) == start + timedelta(seconds=5)
    assert clock.advance(minutes=1) == start + timedelta(seconds=65)


def test_format_time_writes_four_digit_years() -> None:
    # Issue 11: the year 1 was written 1-01-01T00:00:00.000Z.
    assert format_time(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00.000Z"
    assert format_time(datetime(999, 5, 6, 7, 8, 9, tzinfo=timezone.utc)) == (
        "0999-05-06T07:08:09.000Z"
    )
