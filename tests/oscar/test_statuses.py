"""What is reported when: the amount, shops paid later (bank transfer), cancellations."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from oscar.core.loading import get_class
from oscar.core.prices import Price
from oscar.test import factories

from django_pjpixel.contrib.oscar import receivers
from django_pjpixel.contrib.oscar.receivers import order_cancelled
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending.backlog import deliver_due
from tests.helpers import CLICK
from tests.oscar.shop import buy, land

FixedPrice = get_class("shipping.methods", "FixedPrice")


pytestmark = pytest.mark.django_db

BANK_TRANSFER = {"OSCAR_PAID_STATUSES": ["Paid"], "OSCAR_CANCELLED_STATUSES": ["Cancelled"]}


def set_status(staff_client: Client, order: Any, status: str) -> None:
    """What staff do on the order's page of Oscar's dashboard: change its status."""
    response = staff_client.post(
        reverse("dashboard:order-detail", kwargs={"number": order.number}),
        {"order_action": "change_order_status", "new_status": status},
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == status


@pytest.mark.parametrize(
    ("setting", "amount"),
    [
        ("total_incl_tax", 175),
        ("total_excl_tax", 140),
        ("basket_total_incl_tax", 125),
        ("basket_total_excl_tax", 100),
    ],
)
def test_the_amount_is_the_total_the_setting_names(
    pjpixel: dict[str, Any], pjpixel_api: Any, delivered: Any, setting: str, amount: int
) -> None:
    pjpixel["OSCAR_AMOUNT"] = setting
    with delivered():  # 100 NOK + 25 % VAT, shipping 40 NOK + 25 % VAT
        order = factories.create_order(
            total=Price("NOK", excl_tax=Decimal("140.00"), incl_tax=Decimal("175.00")),
            shipping_method=FixedPrice(Decimal("40.00"), Decimal("50.00")),
        )
    row = ConversionEvent.objects.get(order_id=str(order.number))
    assert row.amount == Decimal(amount)


def test_the_default_amount_is_what_the_customer_paid(pjpixel_api: Any, delivered: Any) -> None:
    with delivered():
        order = factories.create_order(
            total=Price("NOK", excl_tax=Decimal("140.00"), incl_tax=Decimal("175.00")),
            shipping_method=FixedPrice(Decimal("40.00"), Decimal("50.00")),
        )
    assert ConversionEvent.objects.get(order_id=str(order.number)).amount == Decimal("175.00")


def test_a_bank_transfer_is_reported_when_staff_mark_it_paid(
    client: Client,
    admin_client: Client,
    products: Any,
    pjpixel: dict[str, Any],
    pjpixel_api: Any,
    delivered: Any,
) -> None:
    pjpixel.update(BANK_TRANSFER)
    headphones, cable = products
    land(client, headphones)
    with delivered():
        order = buy(client, [(headphones, 2), (cable, 1)])
    assert order.status == "Pending"
    assert ConversionEvent.objects.count() == 0
    assert pjpixel_api.requests == []

    with delivered():  # days later, the money is in: staff change the status
        set_status(admin_client, order, "Paid")
    (event,) = pjpixel_api.events
    assert event["external_event_id"] == order.number
    assert event["click_id"] == CLICK.split("_")[0]
    assert event["data"] == {"amount": 398, "currency": "NOK", "number_of_items": 3}

    with delivered():  # shipped: still one event
        set_status(admin_client, order, "Shipped")
    assert len(pjpixel_api.requests) == 1
    assert ConversionEvent.objects.get().event_time == order.date_placed


def test_an_order_placed_in_a_paid_status_is_reported_at_once(
    pjpixel: dict[str, Any], pjpixel_api: Any, delivered: Any
) -> None:
    pjpixel.update(BANK_TRANSFER)
    with delivered():  # a card payment, in the same shop: placed as paid
        order = factories.create_order(status="Paid")
    assert ConversionEvent.objects.get().order_id == str(order.number)


def test_a_cancelled_order_is_restated_as_nothing(
    client: Client,
    admin_client: Client,
    products: Any,
    pjpixel: dict[str, Any],
    pjpixel_api: Any,
    delivered: Any,
) -> None:
    pjpixel.update(BANK_TRANSFER)
    headphones, _cable = products
    land(client, headphones)
    with delivered():
        order = buy(client, [(headphones, 2)])
        set_status(admin_client, order, "Paid")
    set_status(admin_client, order, "Cancelled")

    restatement = Restatement.objects.get()
    assert (restatement.order_id, restatement.status, restatement.reason) == (
        str(order.number),
        "pending",
        "Oscar order status 'Cancelled'",
    )
    assert (restatement.old_api_amount, restatement.api_amount) == (299, 0)  # 2 x 149.50
    assert deliver_due() == {"restatement sent": 1}
    (event,) = pjpixel_api.events
    assert event["external_event_id"] == order.number
    assert event["data"] == {"amount": 0, "currency": "NOK", "number_of_items": 0}
    assert [request.method for request in pjpixel_api.requests] == ["POST", "PATCH"]
    assert ConversionEvent.objects.get().current_api_amount == 0


def test_a_cancelled_order_that_prisjakt_never_had_is_not_restated(
    admin_client: Client, pjpixel: dict[str, Any], pjpixel_api: Any
) -> None:
    pjpixel["OSCAR_CANCELLED_STATUSES"] = ["Cancelled"]
    order = factories.create_order()  # placed without a click: skipped
    set_status(admin_client, order, "Cancelled")
    assert ConversionEvent.objects.get().status == "skipped"
    assert Restatement.objects.count() == 0
    assert deliver_due() == {}
    assert pjpixel_api.requests == []


def test_a_failing_restatement_is_logged_and_the_status_still_changes(
    admin_client: Client,
    pjpixel: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(receivers, "restate_purchase", broken)
    pjpixel["OSCAR_CANCELLED_STATUSES"] = ["Cancelled"]
    order = factories.create_order()
    ConversionEvent.objects.filter(order_id=str(order.number)).update(status="sent")
    with caplog.at_level(logging.ERROR, "django_pjpixel"):
        set_status(admin_client, order, "Cancelled")
    assert f"could not restate cancelled Oscar order {order.number}" in caplog.text


def test_order_cancelled_is_the_hook_a_shop_can_call(pjpixel: dict[str, Any]) -> None:
    order = factories.create_order()
    ConversionEvent.objects.filter(order_id=str(order.number)).update(status="sent")
    restatement = order_cancelled(order)
    assert restatement is not None
    assert (restatement.order_id, restatement.api_amount, restatement.number_of_items) == (
        str(order.number),
        0,
        0,
    )
    assert (restatement.status, restatement.reason) == ("pending", "Oscar order status 'Pending'")
