"""``charts``: server-rendered SVG, the shop's bars beside Prisjakt's; on the events page."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.admin.charts import BAR, GAP, LEFT, PLOT_HEIGHT, TOP, bar_width, daily_chart
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.record.test_totals import week  # noqa: F401  (the fixture)

DAYS = [date(2025, 3, 1) + timedelta(days=n) for n in range(3)]


def test_bars_share_one_scale() -> None:
    chart = daily_chart("Purchases", DAYS, [("ours", [2, 0, 4]), ("prisjakt", [1, 0, 4])])
    bar = bar_width(3, 2)
    assert bar == BAR[1]  # three days: the widest bars
    assert chart.width == LEFT + 3 * (2 * bar + GAP)
    assert chart.maximum == "4"
    heights = [bar.height for bar in chart.bars]
    assert heights == [PLOT_HEIGHT // 2, PLOT_HEIGHT // 4, 0, 0, PLOT_HEIGHT, PLOT_HEIGHT]
    tallest = chart.bars[4]
    assert tallest.y == TOP
    assert tallest.series == "ours"
    assert chart.bars[5].x == tallest.x + bar
    assert chart.bars[1].title == "2025-03-01 Prisjakt: 1"
    assert [tick.label for tick in chart.ticks] == ["01", "02", "03"]
    assert chart.legend == [("ours", "This shop"), ("prisjakt", "Prisjakt")]


def test_an_empty_chart_and_a_long_one() -> None:
    chart = daily_chart("Nothing", DAYS, [("ours", [0, 0, 0])], lambda v: f"{v} SEK")
    assert {bar.height for bar in chart.bars} == {0}
    assert chart.maximum == "0 SEK"
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(60)]
    long = daily_chart("Revenue", days, [("ours", [Decimal("1.5")] * 60)])
    assert [tick.label for tick in long.ticks] == ["01", "15", "01", "15", "01"]  # to 1 March
    assert bar_width(60, 2) == BAR[0]  # sixty days: the narrowest
    assert bar_width(30, 2) == (480 // 30 - GAP) // 2  # a month: in between


@pytest.mark.django_db
def test_the_events_page_shows_the_whole_range_from_the_mirror(
    admin_client: Client,
    pjpixel_api: PrisjaktEmulator,
    week: date,  # noqa: F811
) -> None:
    pjpixel_api.script([503], method="GET")  # the API's page fails; the mirror is local
    page = admin_client.get(reverse("admin:django_pjpixel_prisjakt_events")).content.decode()
    assert "The whole range" in page
    assert "last synced" in page
    sek = re.search(r'<tr class="pjpixel-totals-SEK">(.*?)</tr>', page, re.S)
    assert sek is not None
    cells = re.findall(r'<td class="number ([\w-]+)">([^<]*)</td>', sek.group(1))
    assert cells == [
        ("ours-purchases", "3"),
        ("prisjakt-purchases", "3"),
        ("ours-revenue", "390.50"),
        ("prisjakt-revenue", "391.00"),
    ]
    assert (
        page.count('<svg class="pjpixel-daily-chart"') == 4
    )  # purchases and revenue, 2 currencies
    assert page.count('<rect class="bar ours"') == 4 * 7
    assert "Revenue per day in NOK" in page
    assert f"{week:%Y-%m-%d} This shop: 2</title>" in page
    assert "Prisjakt answered HTTP 503" in page


@pytest.mark.django_db
def test_before_any_sync_the_page_says_so(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    today = timezone.localdate().isoformat()
    page = admin_client.get(
        reverse("admin:django_pjpixel_prisjakt_events"), {"from": today, "to": today}
    ).content.decode()
    assert "have not been synced yet" in page
    assert "No purchases in this range" in page
