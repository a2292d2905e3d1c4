"""Naive and aware datetimes at the package's boundaries (``django_pjpixel.times``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.utils import timezone

from django_pjpixel import times

UTC_NOON = datetime(2025, 3, 13, 12, 0, tzinfo=dt_timezone.utc)
STOCKHOLM_1PM = datetime(2025, 3, 13, 13, 0)  # the same instant, naive in TIME_ZONE


def test_now_is_aware_utc_whatever_use_tz_says(use_tz: bool) -> None:
    now = times.now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(dt_timezone.utc)) < timedelta(seconds=5)


def test_aware_reads_a_naive_datetime_in_time_zone(use_tz: bool) -> None:
    assert times.aware(STOCKHOLM_1PM) == UTC_NOON
    assert times.aware(UTC_NOON) is UTC_NOON


def test_as_django_is_what_django_stores(use_tz: bool) -> None:
    stored = times.as_django(UTC_NOON)
    if use_tz:
        assert stored == UTC_NOON
        assert timezone.is_aware(stored)
    else:
        assert stored == STOCKHOLM_1PM
        assert timezone.is_naive(stored)
    assert times.aware(times.as_django(STOCKHOLM_1PM)) == UTC_NOON


def test_localdate_is_today_in_the_current_time_zone(use_tz: bool, settings: Any) -> None:
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: often another day than UTC's
    expected = datetime.now(dt_timezone(timedelta(hours=14))).date()
    assert times.localdate() == expected
    assert isinstance(times.localdate(), date)
