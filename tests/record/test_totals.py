"""``totals``: purchases and revenue per day and currency, the shop's beside Prisjakt's."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.record import sync
from django_pjpixel.record.totals import OURS, PRISJAKT, _as_date, range_totals
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status


def at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.fixture
def week(pjpixel_api: PrisjaktEmulator) -> date:
    """Purchases on three days of the last week, in SEK and NOK; today is the last day."""
    today = timezone.localdate()
    first = today - timedelta(days=6)
    for day, hour, amount, currency, listed in [
        (first, 0, "100.00", "SEK", True),  # just after local midnight: still the first day
        (first, 23, "250.50", "SEK", True),  # sent as 251 (half-up)
        (first + timedelta(days=2), 12, "80.00", "NOK", False),  # not at Prisjakt
        (today, 0, "40.00", "SEK", True),  # 00:00: past even just after midnight
    ]:
        make_event(
            f"{day}-{hour}",
            event_time=at(day, hour),
            amount=Decimal(amount),
            currency=currency,
            status=Status.SENT,
        )
        if listed:
            pjpixel_api.add_event(
                event_time=at(day, hour),
                external_event_id=f"{day}-{hour}",
                amount=round(Decimal(amount) + Decimal("0.001")),
                currency=currency,
            )
    make_event("never-sent", event_time=at(first, 12), status=Status.SKIPPED)
    make_event("too-old", event_time=at(first - timedelta(days=1), 23), status=Status.SENT)
    sync.sync_recent(8)
    return first


def test_per_currency_and_day(week: date) -> None:
    today = week + timedelta(days=6)
    with CaptureQueriesContext(connection) as queries:
        totals = range_totals(week, today)
    assert len(queries.captured_queries) == 3
    assert totals.days == [week + timedelta(days=n) for n in range(7)]
    assert totals.last_sync is not None
    sek, nok = totals.currencies
    assert (sek.currency, nok.currency) == ("SEK", "NOK")
    assert (sek.whole[OURS].purchases, sek.whole[OURS].revenue) == (3, Decimal("390.50"))
    assert (sek.whole[PRISJAKT].purchases, sek.whole[PRISJAKT].revenue) == (3, Decimal(391))
    assert [d.purchases for d in sek.daily[OURS]] == [2, 0, 0, 0, 0, 0, 1]
    assert [d.revenue for d in sek.daily[PRISJAKT]] == [351, 0, 0, 0, 0, 0, 40]
    assert [d.purchases for d in nok.daily[OURS]] == [0, 0, 1, 0, 0, 0, 0]
    assert nok.whole[PRISJAKT].purchases == 0


def test_a_range_without_purchases(week: date) -> None:
    long_ago = week - timedelta(days=100)
    totals = range_totals(long_ago, long_ago)
    assert totals.currencies == []
    assert totals.days == [long_ago]


def test_minor_units_are_shown_in_currency_units(week: date, pjpixel: dict[str, Any]) -> None:
    pjpixel["AMOUNT_UNITS"] = "minor"
    sek = range_totals(week, week + timedelta(days=6)).currencies[0]
    assert sek.whole[PRISJAKT].revenue == Decimal("3.91")


def test_days_as_each_database_gives_them() -> None:
    assert _as_date(date(2025, 3, 1)) == date(2025, 3, 1)
    assert _as_date(datetime(2025, 3, 1, 12)) == date(2025, 3, 1)
    assert _as_date("2025-03-01") == date(2025, 3, 1)
    assert _as_date(None) is None


def test_a_refund_accepted_by_prisjakt_counts_in_the_shops_revenue(week: date) -> None:
    ConversionEvent.objects.filter(order_id=f"{week}-23").update(
        restated_amount=Decimal("50.50"),
        restated_api_amount=51,
        restated_number_of_items=1,
        restated_at=timezone.now(),
    )
    sek = range_totals(week, week + timedelta(days=6)).currencies[0]
    assert sek.whole[OURS].revenue == Decimal("190.50")  # 100 + 50.50 + 40
    assert sek.whole[OURS].purchases == 3  # a partial refund is still a purchase


def test_a_restatement_in_another_currency_counts_in_that_currency(week: date) -> None:
    ConversionEvent.objects.filter(order_id=f"{week}-23").update(
        restated_amount=Decimal("2000.00"),
        restated_api_amount=2000,
        restated_currency="NOK",
        restated_at=timezone.now(),
    )
    totals = {item.currency: item.whole[OURS] for item in range_totals(week, week).currencies}
    assert (totals["SEK"].purchases, totals["SEK"].revenue) == (1, Decimal("100.00"))
    assert (totals["NOK"].purchases, totals["NOK"].revenue) == (1, Decimal("2000.00"))
