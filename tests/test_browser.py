"""The admin in headless Chromium: a person's walk through the outbox and the events view.

Debian's ``/usr/bin/chromium`` driven by Playwright's sync API against
pytest-django's live server, with the API emulator served over real loopback
HTTP. The database is set up before Playwright starts and checked after it
stops: Playwright's sync API runs an event loop in this thread, where Django
refuses ORM calls (``SynchronousOnlyOperation``); the live server's own thread
is not affected, so ``DJANGO_ALLOW_ASYNC_UNSAFE`` is not needed.

Screenshots go to ``artifacts/screenshots/`` (kept by CI as artifacts).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.server import EmulatorServer
from tests.browser import SCREENSHOTS, admin_page, chromium

pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


@pytest.fixture
def emulated_api() -> Iterator[tuple[PrisjaktEmulator, EmulatorServer]]:
    """The emulator on a loopback port, and the settings pointing at it."""
    emulator = emulator_from_settings()
    with EmulatorServer(emulator, timeout_sleep=5.0) as server:
        settings = {
            "PIXEL_ID": PIXEL,
            "CLIENT_ID": "test-client",
            "CLIENT_SECRET": SECRET,
            "API_URL": server.url,
        }
        with override_settings(PJPIXEL=settings):
            yield emulator, server


def seed_local() -> ConversionEvent:
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    now = timezone.now()
    for index in range(3):
        ConversionEvent.objects.create(
            pixel_id=PIXEL,
            order_id=f"order-{index}",
            event_time=now - timedelta(minutes=index),
            amount=Decimal(100 + index),
            currency="SEK",
            number_of_items=1,
            click_id=CLICK,
            status=ConversionEvent.Status.SENT,
            attempts=1,
            last_status_code=201,
            sent_at=now,
        )
    return ConversionEvent.objects.create(
        pixel_id=PIXEL,
        order_id="order-failed",
        event_time=now,
        amount=Decimal(990),
        currency="SEK",
        number_of_items=3,
        click_id=CLICK,
        status=ConversionEvent.Status.FAILED,
        attempts=1,
        last_status_code=400,
        problem_title="Request validation failed",
        problem_detail="Request contains invalid fields: data.currency.",
        field_errors={"data.currency": {"message": "must be one of: SEK", "value": "XYZ"}},
        request_id="d61579e9-eb4a-4fef-87e9-75438bbcfcf4",
    )


def seed_remote(emulator: PrisjaktEmulator) -> None:
    emulator.page_size = 3
    now = timezone.now()
    for index in range(8):
        emulator.add_event(
            event_time=now - timedelta(hours=index * 9),
            external_event_id=f"order-{index}",
            amount=100 + index,
            signed_click_id=CLICK,
        )


def test_a_person_walks_through_the_admin(
    live_server: Any,
    emulated_api: tuple[PrisjaktEmulator, EmulatorServer],
    inline_queue: None,
) -> None:
    emulator, server = emulated_api
    failed = seed_local()
    seed_remote(emulator)
    expect = pytest.importorskip("playwright.sync_api").expect

    with chromium() as browser:
        page = admin_page(browser, live_server.url)

        # The outbox: badges and counts per status.
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/")
        expect(page.locator(".pjpixel-status-failed")).to_have_text("Failed1")
        expect(page.locator(".pjpixel-status-sent")).to_have_text("Sent3")
        badge = page.locator("#result_list .pjpixel-badge.pjpixel-failed")
        expect(badge).to_have_text("Failed")
        expect(page.locator("#result_list")).to_contain_text("400 Request validation failed")
        page.screenshot(path=str(SCREENSHOTS / "conversion-events.png"), full_page=True)

        # The events view, from the app index and from the changelist; 8 events, 3 to a page.
        page.goto(f"{live_server.url}/admin/django_pjpixel/")
        expect(page.locator("#pjpixel-tools a").first).to_have_text("Prisjakt events")
        page.screenshot(path=str(SCREENSHOTS / "app-index.png"))
        page.go_back()
        page.click("text=Prisjakt events")
        expect(page.locator("#content h1")).to_have_text("Prisjakt events")
        expect(page.locator(".pjpixel-page-current").first).to_have_text("Page 1 of 3")
        expect(page.locator("tr.pjpixel-event")).to_have_count(3)
        expect(page.locator("tr.pjpixel-event a").first).to_have_text("order-0")
        expect(page.locator(".pjpixel-chart rect.bar")).to_have_count(7)
        page.screenshot(path=str(SCREENSHOTS / "prisjakt-events.png"), full_page=True)

        page.locator("a.pjpixel-page-last").first.click()
        expect(page.locator(".pjpixel-page-current").first).to_have_text("Page 3 of 3")
        expect(page.locator("tr.pjpixel-event")).to_have_count(2)
        expect(page.locator("span.pjpixel-page-next").first).to_be_visible()
        page.locator("a.pjpixel-page-prev").first.click()
        expect(page.locator(".pjpixel-page-current").first).to_have_text("Page 2 of 3")
        page.locator("a.pjpixel-page-first").first.click()
        expect(page.locator(".pjpixel-page-current").first).to_have_text("Page 1 of 3")
        assert server.origin not in page.content()

        # The failed event's detail: what Prisjakt said, and the id to quote.
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/")
        page.click("text=order-failed")
        content = page.locator("#content-main")
        expect(content).to_contain_text("Request validation failed")
        expect(content).to_contain_text("Request contains invalid fields: data.currency.")
        expect(page.locator("table.pjpixel-field-errors")).to_contain_text("must be one of: SEK")
        expect(content).to_contain_text("d61579e9-eb4a-4fef-87e9-75438bbcfcf4")
        page.screenshot(path=str(SCREENSHOTS / "conversion-event-failed.png"), full_page=True)

        # Retry it from the list.
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/?status__exact=failed")
        page.check(f"input[name=_selected_action][value='{failed.pk}']")
        page.select_option("select[name=action]", "retry")
        page.click("button[name=index]")
        expect(page.locator(".messagelist")).to_contain_text("1 event was handed to delivery.")
        page.goto(f"{live_server.url}/admin/django_pjpixel/conversionevent/")
        expect(page.locator(".pjpixel-status-failed")).to_have_text("Failed0")
        expect(page.locator(".pjpixel-status-sent")).to_have_text("Sent4")
        page.screenshot(path=str(SCREENSHOTS / "conversion-events-after-retry.png"), full_page=True)
        assert SECRET not in page.content()
        page.close()

    failed.refresh_from_db()
    assert failed.status == ConversionEvent.Status.SENT
    assert any(e["external_event_id"] == "order-failed" for e in emulator.events)
