"""Oscar's own checkout, through the test client, reports each order once, with its click."""

from __future__ import annotations

import logging
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from oscar.apps.checkout.signals import pre_payment
from oscar.apps.order.signals import order_placed
from oscar.apps.payment.exceptions import RedirectRequired
from oscar.core.loading import get_class, get_model
from oscar.test import factories

from django_pjpixel.contrib.oscar.receivers import attach_checkout_click
from django_pjpixel.models import ConversionEvent, OrderClick
from tests.helpers import CLICK, PIXEL_ID
from tests.oscar.shop import buy, fill_basket, land, order_number_in_checkout, submit_details

Basket = get_model("basket", "Basket")
PaymentDetailsView = get_class("checkout.views", "PaymentDetailsView")
Selector = get_class("partner.strategy", "Selector")
CLICK_UUID = CLICK.split("_")[0]

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG=False", "DEBUG=True"])
def test_a_guest_checkout_reaches_prisjakt_with_its_click(
    client: Client, products: Any, pjpixel_api: Any, delivered: Any, settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    headphones, cable = products
    land(client, headphones)
    with delivered():
        order = buy(client, [(headphones, 2), (cable, 1)])

    assert order.lines.count() == 2
    (event,) = pjpixel_api.events
    assert event["external_event_id"] == order.number
    assert event["click_id"] == CLICK_UUID
    assert event["data"] == {"amount": 398, "currency": "NOK", "number_of_items": 3}
    (request,) = pjpixel_api.requests
    assert request.method == "POST"
    assert request.path == f"/pixels/{PIXEL_ID}/events"
    assert request.json["signed_click_id"] == CLICK
    row = ConversionEvent.objects.get()
    assert (row.order_id, row.status, row.amount) == (order.number, "sent", Decimal("398.00"))
    assert row.event_time == order.date_placed


def test_a_signed_in_customer_is_reported_the_same(
    client: Client, products: Any, pjpixel_api: Any, delivered: Any
) -> None:
    headphones, cable = products
    customer = get_user_model().objects.create_user("ola", "ola@example.no", "secret")
    client.force_login(customer)
    land(client, cable)
    with delivered():
        order = buy(client, [(headphones, 1), (cable, 2)], email=None)

    assert order.user == customer
    (event,) = pjpixel_api.events
    assert event["external_event_id"] == order.number
    assert event["click_id"] == CLICK_UUID
    assert event["data"] == {"amount": 348, "currency": "NOK", "number_of_items": 3}


def test_a_visitor_without_a_click_is_recorded_and_nothing_is_sent(
    client: Client, products: Any, pjpixel_api: Any, delivered: Any
) -> None:
    headphones, _cable = products
    with delivered():
        order = buy(client, [(headphones, 1)])

    row = ConversionEvent.objects.get()
    assert (row.order_id, row.status, row.skip_reason) == (order.number, "skipped", "no click")
    assert pjpixel_api.requests == []


def test_the_same_order_signalled_twice_is_one_row_and_one_request(
    client: Client, products: Any, pjpixel_api: Any, delivered: Any
) -> None:
    headphones, cable = products
    land(client, headphones)
    with delivered():
        order = buy(client, [(headphones, 2), (cable, 1)])
    with delivered():
        order_placed.send(sender=None, order=order, user=None)

    assert ConversionEvent.objects.count() == 1
    assert len(pjpixel_api.requests) == 1
    assert len(pjpixel_api.events) == 1


def test_a_redirect_payment_placed_later_by_a_webhook_keeps_the_click(
    client: Client,
    products: Any,
    pjpixel_api: Any,
    delivered: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def redirect_to_provider(self: Any, order_number: str, total: Any, **kwargs: Any) -> None:
        raise RedirectRequired("https://psp.example/pay")

    monkeypatch.setattr(PaymentDetailsView, "handle_payment", redirect_to_provider)
    headphones, cable = products
    land(client, headphones)
    fill_basket(client, [(headphones, 1), (cable, 1)])
    submit_details(client)
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302
    assert response["Location"] == "https://psp.example/pay"
    number = order_number_in_checkout(client)
    assert OrderClick.objects.get().order_id == number
    assert ConversionEvent.objects.count() == 0  # nothing is paid yet

    # The provider's webhook: no visitor, no session; the shop places the frozen basket.
    basket = Basket.objects.get(pk=client.session["checkout_data"]["submission"]["basket_id"])
    basket.strategy = Selector().strategy()
    with delivered():
        order = factories.create_order(number=number, basket=basket)

    (event,) = pjpixel_api.events
    assert event["external_event_id"] == order.number == number
    assert event["click_id"] == CLICK_UUID
    assert event["data"]["number_of_items"] == 2


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG=False", "DEBUG=True"])
def test_an_order_prisjakt_cannot_take_does_not_break_the_checkout(
    client: Client,
    products: Any,
    pjpixel_api: Any,
    delivered: Any,
    settings: Any,
    debug: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.DEBUG = debug
    headphones, _cable = products
    headphones.stockrecords.update(price_currency="USD")  # Prisjakt takes no US dollars
    land(client, headphones)
    with caplog.at_level(logging.ERROR, "django_pjpixel"), delivered():
        order = buy(client, [(headphones, 1)])

    assert order.currency == "USD"  # placed, and the customer saw the thank-you page
    assert pjpixel_api.requests == []
    # In either DEBUG mode: kept in the ledger for staff with the field named,
    # and logged at ERROR for the developer; never raised into the checkout.
    row = ConversionEvent.objects.get()
    assert (row.order_id, row.status) == (order.number, "failed")
    assert "currency" in row.field_errors
    assert f"invalid purchase for order '{order.number}'" in caplog.text
    assert "currency: 'USD' is not one of" in caplog.text


def test_an_error_attaching_the_click_is_logged_and_the_checkout_goes_on(
    client: Client,
    products: Any,
    pjpixel_api: Any,
    delivered: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is gone")

    monkeypatch.setattr("django_pjpixel.contrib.oscar.receivers.attach_click", broken)
    headphones, _cable = products
    land(client, headphones)
    with caplog.at_level(logging.ERROR, "django_pjpixel"), delivered():
        order = buy(client, [(headphones, 1)])

    assert f"could not attach the visitor's click to Oscar order {order.number}" in caplog.text
    assert "database is gone" in caplog.text
    row = ConversionEvent.objects.get()  # the order is placed, and recorded unattributed
    assert (row.order_id, row.status) == (order.number, "skipped")
    assert pjpixel_api.requests == []


def test_a_checkout_view_of_the_shops_that_chose_no_number_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = SimpleNamespace(checkout_session=SimpleNamespace(get_order_number=lambda: None))
    with caplog.at_level(logging.WARNING, "django_pjpixel"):
        [(_receiver, error)] = [
            result
            for result in pre_payment.send_robust(sender=None, view=view)
            if result[0] is attach_checkout_click
        ]
    assert error is None
    assert "pre_payment came without an order number" in caplog.text
    assert OrderClick.objects.count() == 0


@pytest.mark.parametrize("junk", ["undefined", "null", "PANTHEON_STRIPPED", "not-a-click"])
def test_a_junk_landing_after_a_real_one_leaves_the_order_its_real_click(
    client: Client, products: Any, pjpixel_api: Any, delivered: Any, junk: str
) -> None:
    headphones, cable = products
    land(client, headphones)
    land(client, cable, click=junk)  # a later landing through a link a proxy rewrote
    with delivered():
        order = buy(client, [(headphones, 1)])

    (request,) = pjpixel_api.requests
    assert request.json["signed_click_id"] == CLICK
    row = ConversionEvent.objects.get()
    assert (row.order_id, row.status, row.click_id) == (order.number, "sent", CLICK)
