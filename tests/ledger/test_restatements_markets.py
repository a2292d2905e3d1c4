"""Refunds with several markets (``PJPIXEL["PIXELS"]``): the order's event in the market the
refund names, or the only one that has it, restated on that market's pixel with its
credentials; an order id in two markets is never restated in a guessed one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.dispatch import Signal

from django_pjpixel import markets
from django_pjpixel.ledger.purchases import track_purchase
from django_pjpixel.ledger.restatements import (
    NEVER_REPORTED,
    connect_restatement_signal,
    restate_purchase,
)
from django_pjpixel.models import INVALID_RESTATEMENT, ConversionEvent, Restatement
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.responses_adapter import EmulatorMock
from tests.helpers import CLICK, MARKETS, PIXEL_ID, make_event
from tests.helpers import markets as market_settings

pytestmark = pytest.mark.django_db

Status = Restatement.Status
Capture = Callable[..., Any]
SE, NO = MARKETS["se"]["PIXEL_ID"], MARKETS["no"]["PIXEL_ID"]
IN_TWO_MARKETS = (
    "order 10041 was reported in markets se, no: pass pixel= to say which one is restated"
)


@pytest.fixture
def api(pjpixel: dict[str, Any]) -> Iterator[PrisjaktEmulator]:
    """A shop in Sweden and Norway; the emulator holds both pixels, each market's client
    allowed on its own."""
    pjpixel["PIXELS"] = market_settings("se", "no")
    with EmulatorMock(emulator_from_settings()) as emulator:
        yield emulator


@pytest.fixture
def pay(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> Callable[..., None]:
    """Pay order 10041 in the market of ``currency``: it reaches Prisjakt (``POST``) at commit."""

    def paid(currency: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            track_purchase(
                order_id="10041",
                amount=Decimal("1234.00"),
                currency=currency,
                number_of_items=2,
                signed_click_id=CLICK,
            )

    return paid


@pytest.fixture
def in_both(pay: Callable[..., None]) -> dict[str, ConversionEvent]:
    """Order 10041 paid in Sweden and, the same id, in Norway; Prisjakt has both."""
    pay("SEK")
    pay("NOK")
    return {e.pixel_id: e for e in ConversionEvent.objects.filter(status="sent")}


def patches(api: PrisjaktEmulator) -> list[tuple[str, str]]:
    """The ``PATCH``es (restatements) that reached Prisjakt: each one's path and client id."""
    return [(r.path, r.headers.get("client-id", "")) for r in api.requests if r.method == "PATCH"]


def amounts(api: PrisjaktEmulator, pixel_id: str) -> list[int]:
    return [event["data"]["amount"] for event in api.events_for(pixel_id)]


def test_pixel_restates_that_markets_event_only_on_its_pixel_with_its_credentials(
    api: PrisjaktEmulator, in_both: dict[str, ConversionEvent]
) -> None:
    row = restate_purchase(order_id="10041", amount=0, number_of_items=0, pixel="no")
    assert row is not None
    assert (row.status, row.event, row.pixel_id) == (Status.PENDING, in_both[NO], NO)
    assert deliver_due() == {"restatement sent": 1}
    assert patches(api) == [(f"/pixels/{NO}/events", "shop-no")]
    assert (amounts(api, NO), amounts(api, SE)) == ([0], [1234])
    assert not ConversionEvent.objects.get(pk=in_both[SE].pk).is_restated


def test_an_order_in_two_markets_is_not_guessed_without_pixel(
    api: PrisjaktEmulator,
    in_both: dict[str, ConversionEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with transaction.atomic():  # the shop's refund
        row = restate_purchase(order_id="10041", amount=0, number_of_items=0)
        Group.objects.create(name="the refund's transaction is still usable")
    assert row is not None
    stored = Restatement.objects.get()
    assert (stored.status, stored.problem_title) == (Status.FAILED, INVALID_RESTATEMENT)
    assert stored.field_errors == {"pixel": {"message": IN_TWO_MARKETS}}
    assert (stored.event, stored.pixel_id) == (None, markets.UNROUTED)
    assert caplog.records[-1].levelno == logging.ERROR
    assert IN_TWO_MARKETS in caplog.records[-1].getMessage()
    assert deliver_due() == {}
    assert patches(api) == []
    assert not any(event.is_restated for event in ConversionEvent.objects.all())


def test_an_order_in_one_market_is_restated_there_without_pixel(
    api: PrisjaktEmulator, pay: Callable[..., None]
) -> None:
    pay("EUR")  # no market: a failed row of no market's, which Prisjakt never had
    pay("NOK")
    assert ConversionEvent.objects.filter(pixel_id=markets.UNROUTED).exists()
    row = restate_purchase(order_id="10041", amount=0, number_of_items=0)
    assert row is not None
    assert (row.status, row.pixel_id) == (Status.PENDING, NO)
    assert deliver_due() == {"restatement sent": 1}
    assert patches(api) == [(f"/pixels/{NO}/events", "shop-no")]
    assert amounts(api, NO) == [0]


def test_an_order_the_named_market_does_not_have_is_unsendable_there(
    api: PrisjaktEmulator,
) -> None:
    make_event("10041", pixel_id=SE, status=ConversionEvent.Status.SENT)
    row = restate_purchase(order_id="10041", amount=0, pixel="no")
    assert row is not None
    assert (row.status, row.skip_reason) == (Status.UNSENDABLE, NEVER_REPORTED)
    assert (row.event, row.pixel_id) == (None, NO)
    assert deliver_due() == {}
    assert patches(api) == []


@pytest.mark.parametrize(
    ("pixel", "message"),
    [
        ("fi", "'fi' is not a market (markets: se, no)"),
        ("", "'' is not a market (markets: se, no)"),
    ],
)
def test_a_key_that_is_no_market_is_a_failed_row_naming_pixel(
    api: PrisjaktEmulator,
    in_both: dict[str, ConversionEvent],
    caplog: pytest.LogCaptureFixture,
    pixel: str,
    message: str,
) -> None:
    row = restate_purchase(order_id="10041", amount=0, pixel=pixel)
    assert row is not None
    assert (row.status, row.field_errors) == (Status.FAILED, {"pixel": {"message": message}})
    assert (row.event, row.pixel_id) == (None, markets.UNROUTED)
    assert caplog.records[-1].levelno == logging.ERROR
    assert deliver_due() == {}
    assert patches(api) == []


@pytest.mark.parametrize("pixel", ["no", None])
def test_a_bad_value_is_a_failed_row_of_the_markets_event(
    api: PrisjaktEmulator, pixel: str | None
) -> None:
    event = make_event("10041", pixel_id=NO, status=ConversionEvent.Status.SENT)
    row = restate_purchase(order_id="10041", amount=-1, pixel=pixel)
    assert row is not None
    assert (row.status, list(row.field_errors)) == (Status.FAILED, ["amount"])
    assert (row.event, row.pixel_id) == (event, NO)


def test_pixel_without_markets_is_a_failed_row_naming_pixel_as_for_a_purchase(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    make_event("10041", status=ConversionEvent.Status.SENT)
    row = restate_purchase(order_id="10041", amount=0, pixel="se")
    assert row is not None
    assert row.status == Status.FAILED
    assert row.field_errors == {
        "pixel": {"message": "'se' is not a market (PJPIXEL[\"PIXELS\"] is not set)"}
    }
    assert (row.event, row.pixel_id) == (None, markets.UNROUTED)
    row = restate_purchase(order_id="10041", amount=-1)  # the single pixel's, as before
    assert row is not None
    assert (row.event, row.pixel_id) == (ConversionEvent.objects.get(), PIXEL_ID)
    assert deliver_due() == {}
    assert pjpixel_api.requests == []


def test_a_shops_refund_signal_may_name_the_market(
    api: PrisjaktEmulator, in_both: dict[str, ConversionEvent]
) -> None:
    order_refunded = Signal()
    connect_restatement_signal(order_refunded, lambda sender, refund, **kwargs: refund)
    order_refunded.send(sender=None, refund={"order_id": 10041, "amount": 600, "pixel": "se"})
    order_refunded.send(sender=None, refund={"order_id": 10041, "amount": -1, "pixel": "no"})
    order_refunded.send(sender=None, refund={"order_id": 10041, "pixel": "dk"})
    rows = Restatement.objects.order_by("pk")
    assert [(r.status, r.pixel_id, r.event_id, list(r.field_errors)) for r in rows] == [
        (Status.PENDING, SE, in_both[SE].pk, []),
        (Status.FAILED, NO, in_both[NO].pk, ["amount"]),
        (Status.FAILED, markets.UNROUTED, None, ["amount"]),  # required, named first
    ]
    assert deliver_due() == {"restatement sent": 1}
    assert patches(api) == [(f"/pixels/{SE}/events", "shop-se")]
    assert (amounts(api, SE), amounts(api, NO)) == ([600], [1234])
