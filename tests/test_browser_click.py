"""The browser script's click in headless Chromium: a cached landing page, then the checkout.

The landing page is a static file the live server hands out before any
middleware runs, as a CDN or a page cache would: ``PjclidMiddleware`` never
sees the ``?pjclid=``. Its ``{% pjpixel_script %}`` loads the emulator's
stand-in for Prisjakt's script (``PJPIXEL["SCRIPT_URL"]``), which keeps the
click in the browser. The checkout page's ``{% pjpixel_click_input %}`` is
filled by the shipped ``pjpixel.js``, ``attach_click`` keeps the posted click
with the order, and the payment webhook sends it to the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.test import RequestFactory, override_settings
from django.urls import path

from django_pjpixel.ledger.purchases import attach_click
from django_pjpixel.models import ConversionEvent, OrderClick
from django_pjpixel.signals import order_completed
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.server import EmulatorServer
from tests.browser import SCREENSHOTS, chromium

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
ORDER = "ORD-CDN-1"

PAGE = """{% load pjpixel %}<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>{% pjpixel_script %}</head>
<body><h1>{{ title }}</h1>{{ body }}</body></html>"""
FORM = """<form method="post">{% csrf_token %}{% pjpixel_click_input %}
<button type="submit">Place the order</button></form>"""


def render_page(request: HttpRequest, title: str, body: str = "") -> str:
    source = PAGE.replace("{{ body }}", body)
    return engines["django"].from_string(source).render({"title": title}, request)


def checkout(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        click = attach_click(request, ORDER)
        return HttpResponse(f'<p id="attached">{click.click_id if click else "no click"}</p>')
    return HttpResponse(render_page(request, "Checkout", FORM))


def refuse(request: HttpRequest) -> bool:
    return False


urlpatterns = [path("checkout/", checkout)]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls(__name__),
]


@pytest.fixture(params=["session", "cookie"], ids=["session store", "cookie store"])
def emulated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[PrisjaktEmulator, Path]]:
    """The emulator on a loopback port, the settings pointing at it, a folder the CDN serves."""
    emulator = emulator_from_settings()
    with EmulatorServer(emulator) as server:
        pjpixel = {
            **settings.PJPIXEL,
            "API_URL": server.url,
            "SCRIPT_URL": server.script_url,
            "CLICK_STORE": request.param,
        }
        with override_settings(PJPIXEL=pjpixel, STATICFILES_DIRS=[tmp_path]):
            yield emulator, tmp_path


def test_a_cached_landing_page_then_the_checkout_form_sends_the_click(
    live_server: Any, emulated: tuple[PrisjaktEmulator, Path], inline_queue: None
) -> None:
    emulator, cdn = emulated
    store = settings.PJPIXEL["CLICK_STORE"]
    (cdn / "landing").mkdir()
    landing = render_page(RequestFactory().get("/"), "A product", "<p>In stock.</p>")
    (cdn / "landing" / "product.html").write_text(landing, encoding="utf-8")
    expect = pytest.importorskip("playwright.sync_api").expect

    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/static/landing/product.html?pjclid={CLICK}")
        expect(page.locator("h1")).to_have_text("A product")
        page.wait_for_function("() => window.localStorage.getItem('pjpixel_conversion')")
        kept = page.evaluate("() => window.pjpixel.getConversion()")
        assert (kept["clickId"], kept["pixelId"]) == (CLICK, PIXEL)
        page.screenshot(path=str(SCREENSHOTS / f"cdn-landing-{store}.png"))

        page.goto(f"{live_server.url}/checkout/")
        expect(page.locator("input[name=pjpixel_click_id]")).to_have_value(CLICK)
        page.click("button[type=submit]")
        expect(page.locator("#attached")).to_have_text(CLICK)
        cookies = {cookie["name"] for cookie in page.context.cookies()}

        # Consent withdrawn: the next page forgets the click kept in the browser.
        with override_settings(PJPIXEL={**settings.PJPIXEL, "CONSENT": refuse}):
            page.goto(f"{live_server.url}/checkout/")
            page.wait_for_function("() => !window.localStorage.getItem('pjpixel_conversion')")
            expect(page.locator("input[name=pjpixel_click_id]")).to_have_value("")
        page.close()

    # The server never captured the click: no session, no click cookie. The form brought it.
    assert cookies == {"csrftoken"}
    assert Session.objects.count() == 0
    assert OrderClick.objects.get(order_id=ORDER).click_id == CLICK

    with transaction.atomic():  # the payment provider's webhook, without the visitor
        order_completed.send(
            sender=ConversionEvent,
            order_id=ORDER,
            amount=Decimal("1490.00"),
            currency="SEK",
            number_of_items=1,
        )
    [posted] = [r.json for r in emulator.requests if r.method == "POST"]
    assert (posted["external_event_id"], posted["signed_click_id"]) == (ORDER, CLICK)
    assert ConversionEvent.objects.get().status == ConversionEvent.Status.SENT
