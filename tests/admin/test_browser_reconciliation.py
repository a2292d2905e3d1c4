"""Reconciliation, the range charts and the health band in headless Chromium.

As ``test_browser.py``: Debian's Chromium driven by Playwright against the live
server, the API emulator over loopback HTTP; the database is prepared (orders
sent, Prisjakt's record made to differ, a sync over HTTP) before Playwright
starts, since its event loop forbids ORM calls in this thread. Screenshots:
``artifacts/screenshots/reconciliation.png``, ``prisjakt-events-range.png``
and ``delivery-health.png``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.record import sync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer
from tests.browser import SCREENSHOTS, admin_page, chromium
from tests.test_browser import CLICK, PIXEL, emulated_api  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = ConversionEvent.Status


def prepare(emulator: PrisjaktEmulator) -> ConversionEvent:
    """Four and a half days of orders, most matched, a few that differ; a sync; the row
    to follow. All within the page's default range, the last seven whole days."""
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    now = timezone.now()
    for index in range(24):
        when = now - timedelta(hours=4.5 * index + 3)
        amount = Decimal(200 + 37 * index)
        currency = "NOK" if index % 5 == 4 else "SEK"
        ConversionEvent.objects.create(
            pixel_id=PIXEL,
            order_id=f"order-{index}",
            event_time=when,
            amount=amount,
            currency=currency,
            number_of_items=1 + index % 3,
            click_id=CLICK,
            status=Status.SENT,
            sent_at=when + timedelta(minutes=1),
            created_at=when,
        )
        if index != 5:  # order-5 never reached Prisjakt's record
            emulator.add_event(
                event_time=when,
                external_event_id=f"order-{index}",
                amount=int(amount),
                currency=currency,
                number_of_items=1 + index % 3,
                signed_click_id=CLICK,
            )
    emulator.change_event("order-2", amount=150)
    emulator.add_foreign_event(event_time=now - timedelta(hours=30), amount=999)
    sync.sync_recent(7)
    # A retry that has been due for an hour: the outbox's band says so.
    ConversionEvent.objects.filter(order_id="order-0").update(
        status=Status.PENDING, next_attempt_at=now - timedelta(hours=1)
    )
    return ConversionEvent.objects.get(order_id="order-2")


def test_reconciliation_and_the_range_charts_in_a_browser(
    live_server: Any,
    emulated_api: tuple[PrisjaktEmulator, EmulatorServer],  # noqa: F811
) -> None:
    emulator, _server = emulated_api
    differs = prepare(emulator)
    expect = pytest.importorskip("playwright.sync_api").expect

    with chromium() as browser:
        page = admin_page(browser, live_server.url, accept_downloads=True)

        # From the outbox: the health band, and the way to the reconciliation page.
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/")
        band = page.locator(".pjpixel-health-band")
        expect(band).to_contain_text("Delivery to Prisjakt needs attention")
        expect(band).to_contain_text("An event has waited 1")
        expect(page.locator(".pjpixel-last-sync")).not_to_have_text("never")
        page.screenshot(path=str(SCREENSHOTS / "delivery-health.png"), full_page=True)
        page.click("text=Reconciliation")

        expect(page.locator("#content h1")).to_have_text("Reconciliation")
        counts = page.locator(".pjpixel-categories .pjpixel-count")
        expect(page.locator(".pjpixel-category-matched .pjpixel-count")).to_have_text("21")
        expect(page.locator(".pjpixel-category-amount_differs .pjpixel-count")).to_have_text("1")
        expect(page.locator(".pjpixel-category-missing_at_prisjakt .pjpixel-count")).to_have_text(
            "1"
        )
        expect(page.locator(".pjpixel-category-unknown_to_shop .pjpixel-count")).to_have_text("1")
        expect(page.locator(".pjpixel-category-pending .pjpixel-count")).to_have_text("1")
        expect(counts).to_have_count(5)
        expect(page.locator("tr.pjpixel-difference")).to_have_count(3)
        page.screenshot(path=str(SCREENSHOTS / "reconciliation.png"), full_page=True)

        with page.expect_download() as download_info:
            page.click("a.pjpixel-csv")
        download = download_info.value
        assert download.suggested_filename.startswith("pjpixel-reconciliation-")
        exported = Path(download.path()).read_text(encoding="utf-8")
        assert exported.splitlines()[0].startswith("category,order_id,")
        assert len(exported.splitlines()) == 4

        page.click("tr.pjpixel-amount_differs a")
        expect(page.locator("#content-main")).to_contain_text("order-2")
        assert page.url.endswith(f"/conversionevent/{differs.pk}/change/")

        # The events page: the whole range from the mirror, ours beside Prisjakt's.
        first = (timezone.localdate() - timedelta(days=6)).isoformat()
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/prisjakt-events/")
        expect(page.locator(".pjpixel-range-totals h2")).to_have_text("The whole range")
        expect(page.locator(".pjpixel-totals-SEK .ours-purchases")).to_have_text("19")
        # Prisjakt: the SEK orders but the missing one, and the foreign event.
        expect(page.locator(".pjpixel-totals-SEK .prisjakt-purchases")).to_have_text("20")
        expect(page.locator(".pjpixel-totals-NOK .ours-purchases")).to_have_text("4")
        expect(page.locator("svg.pjpixel-daily-chart")).to_have_count(4)
        expect(page.locator("svg.pjpixel-daily-chart rect.bar.prisjakt")).to_have_count(4 * 7)
        tooltip = page.locator("svg.pjpixel-daily-chart rect.bar.ours title").first
        expect(tooltip).to_contain_text(f"{first} This shop:")
        page.screenshot(path=str(SCREENSHOTS / "prisjakt-events-range.png"), full_page=True)
        page.close()
