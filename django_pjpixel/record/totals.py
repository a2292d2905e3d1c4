"""Purchases and revenue per day and currency over a range: the shop's beside Prisjakt's.

``range_totals(first, last)`` sums, for whole days in the current time zone,
the purchases the shop delivered (``sent`` or ``duplicate``: what Prisjakt
should count) and the purchases in the mirror of Prisjakt's listing (filled
by ``sync``), each grouped by day and currency in the database: three
queries whatever the range holds (ours, Prisjakt's, the last sync). Amounts
are in currency units: the mirror's are as Prisjakt lists them, so with
``AMOUNT_UNITS = "minor"`` they are divided by 100; they are whole units, as
sent, where the shop's are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from django_pjpixel import markets
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.models import CURRENT_CURRENCY, ConversionEvent, PrisjaktEvent, PrisjaktSync
from django_pjpixel.record.sync import last_sync

Status = ConversionEvent.Status
OURS, PRISJAKT = "ours", "prisjakt"
DELIVERED = (str(Status.SENT), str(Status.DUPLICATE))


@dataclass
class Totals:
    """Purchases (a count) and revenue (currency units) of one side, day or range."""

    purchases: int = 0
    revenue: Decimal = Decimal(0)

    def add(self, purchases: int, revenue: Decimal) -> None:
        self.purchases += purchases
        self.revenue += revenue


@dataclass
class CurrencyTotals:
    """One currency over the range, per side (``OURS``, ``PRISJAKT``): the whole range
    (``whole``) and each day, in the order of ``days`` (``daily``)."""

    currency: str
    days: list[date]
    whole: dict[str, Totals] = field(default_factory=dict)
    daily: dict[str, list[Totals]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for side in (OURS, PRISJAKT):
            self.whole[side] = Totals()
            self.daily[side] = [Totals() for _ in self.days]


@dataclass
class RangeTotals:
    """The range's days, one ``CurrencyTotals`` per currency seen, and the last sync."""

    first: date
    last: date
    days: list[date]
    currencies: list[CurrencyTotals]
    last_sync: PrisjaktSync | None


def range_totals(first: date, last: date, pixel_id: str | None = None) -> RangeTotals:
    """Totals per currency of whole days ``first`` to ``last`` (current time zone)."""
    pixel = pixel_id or markets.market_of().pixel_id
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(first, time.min), zone)
    end = timezone.make_aware(datetime.combine(last, time.max), zone)
    days = [first + timedelta(days=index) for index in range((last - first).days + 1)]
    ours = ConversionEvent.objects.filter(
        pixel_id=pixel,
        event_name="purchase",
        status__in=DELIVERED,
        event_time__gte=start,
        event_time__lte=end,
    )
    theirs = PrisjaktEvent.objects.filter(
        pixel_id=pixel, event_name="purchase", event_time__gte=start, event_time__lte=end
    )
    minor = pjpixel_settings.AMOUNT_UNITS == "minor"
    # Ours as the shop has it now: a refund or cancellation Prisjakt accepted counts.
    sides = (
        (OURS, ours, Coalesce("restated_amount", "amount"), CURRENT_CURRENCY, Decimal(1)),
        (PRISJAKT, theirs, F("amount"), F("currency"), Decimal(100 if minor else 1)),
    )
    by_currency: dict[str, CurrencyTotals] = {}
    position = {day: number for number, day in enumerate(days)}
    for side, queryset, amount, currency_now, divisor in sides:
        for row in _per_day(queryset, amount, currency_now):
            day = _as_date(row["day"])
            number = None if day is None else position.get(day)
            if number is None:
                continue
            currency = row["money"] or "?"
            totals = by_currency.setdefault(currency, CurrencyTotals(currency, days))
            revenue = Decimal(str(row["amount"] or 0)) / divisor
            totals.daily[side][number].add(row["n"], revenue)
            totals.whole[side].add(row["n"], revenue)
    return RangeTotals(first, last, days, sorted(by_currency.values(), key=_key), last_sync(pixel))


def _per_day(queryset: QuerySet[Any], amount: Any, currency: Any) -> Iterable[dict[str, Any]]:
    """Purchases and summed amount per local day and currency: one grouped query."""
    day = TruncDate("event_time", tzinfo=timezone.get_current_timezone())
    rows: Iterable[dict[str, Any]] = (
        queryset.annotate(day=day, money=currency)
        .values("day", "money")
        .annotate(n=Count("pk"), amount=Sum(amount))
        .order_by()
    )
    return rows


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value) if isinstance(value, str) else None


def _key(totals: CurrencyTotals) -> tuple[int, str]:
    """The currency with the most of the shop's purchases first."""
    return (-totals.whole[OURS].purchases, totals.currency)
