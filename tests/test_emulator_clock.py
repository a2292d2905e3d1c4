"""The emulator's time (``testing/clock.py``): ISO-8601 times as the API takes
them, and the clock tests move by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from django_pjpixel.testing.clock import ManualClock, parse_iso_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-13T10:45:46.987Z", datetime(2025, 3, 13, 10, 45, 46, 987000, timezone.utc)),
        ("2025-03-13T12:45:46-0200", datetime(2025, 3, 13, 14, 45, 46, tzinfo=timezone.utc)),
        ("2025-02-30T00:00:00Z", None),
        ("2025-03-13T10:45:46+25:00", None),
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
