"""Server-rendered SVG bar charts of a range, a day at a time: the shop's bar beside Prisjakt's.

``daily_chart`` lays the bars out in SVG user units; the template
``admin/django_pjpixel/daily_chart.html`` draws them, with a ``<title>`` per
bar (its day, series and value) for a tooltip and a screen reader. No
JavaScript, nothing fetched. ``range_charts`` turns ``totals.RangeTotals``
into a purchases chart and a revenue chart per currency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_pjpixel.record.totals import OURS, PRISJAKT, RangeTotals, Totals, range_totals

PLOT_HEIGHT = 120  # the tallest bar
TOP = 14  # room for the highest value's label
BOTTOM = 18  # room for the day labels
LEFT = 4
WIDTH = 480  # what a chart aims at: bars are wider when there are fewer days
BAR = (3, 16)  # the narrowest and the widest bar
GAP = 5  # between two days
SERIES_LABELS = {OURS: gettext_lazy("This shop"), PRISJAKT: gettext_lazy("Prisjakt")}

Number = int | Decimal


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    series: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: int
    label: str


@dataclass
class Chart:
    """One SVG: its size, bars, day labels, the axis maximum and a text summary."""

    title: str
    width: int
    height: int
    baseline: int
    maximum: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)


def daily_chart(
    title: str,
    days: Sequence[date],
    series: Sequence[tuple[str, Sequence[Number]]],
    show: Callable[[Number], str] = str,
) -> Chart:
    """Bars for each day, one per series (``(name, values by day)``), on one scale."""
    highest = max((value for _name, values in series for value in values), default=0)
    scale = PLOT_HEIGHT / float(highest) if highest else 0.0
    bar = bar_width(len(days), len(series))
    group = len(series) * bar + GAP
    chart = Chart(
        title=title,
        width=LEFT + len(days) * group,
        height=TOP + PLOT_HEIGHT + BOTTOM,
        baseline=TOP + PLOT_HEIGHT,
        maximum=show(highest),
        legend=[(name, str(SERIES_LABELS.get(name, name))) for name, _values in series],
    )
    for index, day in enumerate(days):
        left = LEFT + index * group
        for offset, (name, values) in enumerate(series):
            height = round(float(values[index]) * scale)
            chart.bars.append(
                Bar(
                    x=left + offset * bar,
                    y=chart.baseline - height,
                    width=bar - 1,
                    height=height,
                    series=name,
                    title=f"{day:%Y-%m-%d} {SERIES_LABELS.get(name, name)}: {show(values[index])}",
                )
            )
        if len(days) <= 31 or day.day in (1, 15):
            chart.ticks.append(Tick(left, f"{day:%d}"))
    return chart


def bar_width(days: int, series: int) -> int:
    """The width of one bar: the chart near ``WIDTH``, each bar within ``BAR``."""
    narrowest, widest = BAR
    return max(narrowest, min(widest, (WIDTH // max(days, 1) - GAP) // max(series, 1)))


@dataclass
class CurrencyCharts:
    """A currency's totals over the range, and its two charts."""

    currency: str
    ours: Totals
    prisjakt: Totals
    purchases: Chart
    revenue: Chart


def range_charts(totals: RangeTotals) -> list[CurrencyCharts]:
    """Purchases and revenue per day for each currency, the shop's beside Prisjakt's."""
    charts = []
    for currency in totals.currencies:
        sides = (OURS, PRISJAKT)

        def money(value: Number, code: str = currency.currency) -> str:
            return f"{number_format(value, decimal_pos=0, force_grouping=True)} {code}"

        charts.append(
            CurrencyCharts(
                currency=currency.currency,
                ours=currency.whole[OURS],
                prisjakt=currency.whole[PRISJAKT],
                purchases=daily_chart(
                    _("Purchases per day in %(currency)s") % {"currency": currency.currency},
                    totals.days,
                    [(side, [day.purchases for day in currency.daily[side]]) for side in sides],
                ),
                revenue=daily_chart(
                    _("Revenue per day in %(currency)s") % {"currency": currency.currency},
                    totals.days,
                    [(side, [day.revenue for day in currency.daily[side]]) for side in sides],
                    money,
                ),
            )
        )
    return charts


def range_context(first: date, last: date, pixel_id: str | None = None) -> dict[str, Any]:
    """What ``range_totals.html`` shows: ``range_totals`` and ``range_charts``, for the
    pixel ``pixel_id`` (None: the first market's)."""
    totals = range_totals(first, last, pixel_id)
    return {"range_totals": totals, "range_charts": range_charts(totals)}
