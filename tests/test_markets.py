"""Several markets (``PJPIXEL["PIXELS"]``): each purchase reaches its market's pixel, with
that market's credentials, under that market's rate limit; one emulator holds them all."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.dispatch import Signal
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_pjpixel import markets, tasks
from django_pjpixel.api.client import get_client
from django_pjpixel.attribution import Click, click_for_order, store_click
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger.purchases import attach_click, connect_order_signal, track_purchase
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent, OrderClick
from django_pjpixel.sending import backlog
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.signals import order_completed
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.responses_adapter import EmulatorMock
from tests.helpers import CLICK, MARKETS, PIXEL_ID, forked, make_event
from tests.helpers import markets as market_settings

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
Capture = Callable[..., Any]
SE, NO, DK = (MARKETS[key]["PIXEL_ID"] for key in ("se", "no", "dk"))
# What the router below was asked: the purchase's fields and the request.
ROUTED: list[tuple[dict[str, Any], HttpRequest | None]] = []


def route_by_order_prefix(purchase: Mapping[str, Any], request: HttpRequest | None) -> str:
    """A shop's own router: orders numbered NO-… are Norwegian, whatever their currency."""
    ROUTED.append((dict(purchase), request))
    return "no" if str(purchase["order_id"]).startswith("NO-") else "se"


def route_to_finland(purchase: Mapping[str, Any], request: HttpRequest | None) -> str:
    return "fi"


def route_badly(purchase: Mapping[str, Any], request: HttpRequest | None) -> str:
    raise RuntimeError("the router's bug")


def route_refusing(purchase: Mapping[str, Any], request: HttpRequest | None) -> str:
    raise InvalidInput("order_id", "belongs to no market of ours")


@pytest.fixture(autouse=True)
def no_pause() -> Iterator[None]:
    """A stop for the rate limit is remembered by the process: not from one test to the next."""
    backlog._pauses.clear()
    yield
    backlog._pauses.clear()


@pytest.fixture
def published(inline_queue: None) -> Iterator[None]:
    """Nothing may be published: the test's purchases must not reach delivery."""
    with mock.patch.object(tasks.deliver_event, "apply_async") as apply_async:
        yield
    apply_async.assert_not_called()


@pytest.fixture
def shop(pjpixel: dict[str, Any]) -> dict[str, Any]:
    """A shop selling in Sweden and Norway: a pixel and credentials for each."""
    pjpixel["PIXELS"] = market_settings("se", "no")
    return pjpixel


@pytest.fixture
def api(shop: dict[str, Any]) -> Iterator[PrisjaktEmulator]:
    """One emulator holding both pixels, each market's client allowed on its own pixel."""
    with EmulatorMock(emulator_from_settings()) as emulator:
        yield emulator


def seen(api: PrisjaktEmulator) -> list[tuple[str, str, str, int | None]]:
    """What reached Prisjakt: each request's method, path, client id and answer."""
    return [(r.method, r.path, r.headers.get("client-id", ""), r.status) for r in api.requests]


def pay(**fields: Any) -> ConversionEvent | None:
    values = {
        "order_id": "order-1",
        "amount": Decimal("1234.00"),
        "currency": "SEK",
        "number_of_items": 2,
        "signed_click_id": CLICK,
        **fields,
    }
    return track_purchase(**values)


def pixels_of_rows() -> dict[str, str]:
    return dict(ConversionEvent.objects.values_list("order_id", "pixel_id"))


def statuses() -> dict[str, str]:
    return dict(ConversionEvent.objects.values_list("order_id", "status"))


# -- routing -------------------------------------------------------------------------


def test_sek_orders_reach_the_se_pixel_and_nok_orders_the_no_pixel_each_with_its_credentials(
    use_tz: bool,
    api: PrisjaktEmulator,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        pay(order_id="order-se", currency="SEK")
        pay(order_id="order-no", currency="NOK")
    # A wrong secret would be a 401: each market's own secret went with its client id.
    assert seen(api) == [
        ("POST", f"/pixels/{SE}/events", "shop-se", 201),
        ("POST", f"/pixels/{NO}/events", "shop-no", 201),
    ]
    assert [e["external_event_id"] for e in api.events_for(SE)] == ["order-se"]
    assert [e["external_event_id"] for e in api.events_for(NO)] == ["order-no"]
    assert api.events_for(NO)[0]["data"] == {
        "amount": 1234,
        "currency": "NOK",
        "number_of_items": 2,
    }
    assert pixels_of_rows() == {"order-se": SE, "order-no": NO}
    assert statuses() == {"order-se": Status.SENT, "order-no": Status.SENT}


def test_three_markets_each_get_their_own_orders(
    pjpixel: dict[str, Any], inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    pjpixel["PIXELS"] = market_settings("se", "no", "dk")
    with (
        EmulatorMock(emulator_from_settings()) as api,
        django_capture_on_commit_callbacks(execute=True),
    ):
        for number, currency in enumerate(("DKK", "SEK", "NOK", "DKK")):
            pay(order_id=f"order-{number}", currency=currency)
    assert seen(api) == [
        ("POST", f"/pixels/{DK}/events", "shop-dk", 201),
        ("POST", f"/pixels/{SE}/events", "shop-se", 201),
        ("POST", f"/pixels/{NO}/events", "shop-no", 201),
        ("POST", f"/pixels/{DK}/events", "shop-dk", 201),
    ]
    assert pixels_of_rows() == {"order-0": DK, "order-1": SE, "order-2": NO, "order-3": DK}


def test_pixel_names_the_market_whatever_the_currency(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event = pay(currency="NOK", pixel="se")
    assert event is not None
    assert event.pixel_id == SE
    assert seen(api) == [("POST", f"/pixels/{SE}/events", "shop-se", 201)]
    assert api.events_for(SE)[0]["data"]["currency"] == "NOK"


@pytest.mark.parametrize(
    ("extra", "currency", "message"),
    [
        ({}, "EUR", "EUR goes to the market 'fi', which is not set (markets: se, no)"),
        ({}, "GBP", "GBP goes to the market 'uk', which is not set (markets: se, no)"),
        (
            {"PIXEL_CURRENCIES": {"SEK": "se"}},
            "NOK",
            "'NOK' has no market in PJPIXEL[\"PIXEL_CURRENCIES\"]",
        ),
    ],
)
def test_a_currency_without_a_market_is_a_failed_row_naming_the_currency(
    shop: dict[str, Any],
    extra: dict[str, Any],
    currency: str,
    message: str,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop.update(extra)
    with (
        EmulatorMock(emulator_from_settings()) as api,
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = pay(currency=currency)
    assert event is not None
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id, row.problem_title) == (
        Status.FAILED,
        markets.UNROUTED,
        INVALID_PURCHASE,
    )
    assert row.field_errors == {"currency": {"message": message, "value": repr(currency)}}
    assert api.requests == []
    assert "invalid purchase for order 'order-1'" in caplog.text


def test_a_pixel_that_is_no_market_is_a_failed_row_naming_pixel(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        pay(pixel="fi")
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id) == (Status.FAILED, markets.UNROUTED)
    assert row.field_errors == {"pixel": {"message": "'fi' is not a market (markets: se, no)"}}
    assert api.requests == []


def test_a_market_without_its_pixel_id_takes_no_purchase(
    shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch, published: None
) -> None:
    monkeypatch.delenv("PJPIXEL_NO_PIXEL_ID", raising=False)
    del shop["PIXELS"]["no"]["PIXEL_ID"]  # check E002 says so at deploy
    pay(currency="NOK")
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id) == (Status.FAILED, markets.UNROUTED)
    assert row.field_errors == {
        "pixel": {"message": 'PJPIXEL["PIXELS"]["no"]["PIXEL_ID"] is not set'}
    }


def test_a_bad_value_in_a_currency_without_a_market_is_one_failed_row_of_no_market(
    shop: dict[str, Any], published: None
) -> None:
    pay(currency="EUR", amount="lots")
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id, list(row.field_errors)) == (
        Status.FAILED,
        markets.UNROUTED,
        ["amount"],
    )


def test_the_same_order_id_in_two_markets_is_two_rows(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="10041", currency="SEK")
        pay(order_id="10041", currency="NOK")
        pay(order_id="10041", currency="NOK")  # reported again: still one row in Norway
    rows = ConversionEvent.objects.values_list("pixel_id", "order_id", "status")
    assert sorted(rows) == sorted([(SE, "10041", Status.SENT), (NO, "10041", Status.SENT)])
    assert seen(api) == [
        ("POST", f"/pixels/{SE}/events", "shop-se", 201),
        ("POST", f"/pixels/{NO}/events", "shop-no", 201),
    ]


def test_a_shops_own_router_chooses_the_market_from_the_purchase_and_request(
    shop: dict[str, Any], inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    shop["PIXEL_ROUTER"] = "tests.test_markets.route_by_order_prefix"
    request = RequestFactory().get("/paid/")
    ROUTED.clear()
    with (
        EmulatorMock(emulator_from_settings()) as api,
        django_capture_on_commit_callbacks(execute=True),
    ):
        pay(order_id="NO-1", currency="SEK", request=request)
        pay(order_id="SE-2", currency="SEK")
    assert seen(api) == [
        ("POST", f"/pixels/{NO}/events", "shop-no", 201),
        ("POST", f"/pixels/{SE}/events", "shop-se", 201),
    ]
    (fields, asked), (_, unasked) = ROUTED
    assert (fields["order_id"], fields["currency"], fields["number_of_items"]) == ("NO-1", "SEK", 2)
    assert fields["amount"] == Decimal("1234.00")
    assert (asked, unasked) == (request, None)


@pytest.mark.parametrize(
    ("router", "field", "message"),
    [
        ("tests.test_markets.route_to_finland", "pixel", "'fi' is not a market (markets: se, no)"),
        (
            "tests.test_markets.route_badly",
            "pixel",
            "the router 'tests.test_markets.route_badly' failed: RuntimeError",
        ),
        (
            "tests.no_such_module.route",
            "pixel",
            "PJPIXEL[\"PIXEL_ROUTER\"] 'tests.no_such_module.route' cannot be imported",
        ),
        ("tests.test_markets.route_refusing", "order_id", "belongs to no market of ours"),
    ],
)
def test_a_purchase_the_router_cannot_place_is_a_failed_row_and_nothing_raises(
    shop: dict[str, Any],
    router: str,
    field: str,
    message: str,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    shop["PIXEL_ROUTER"] = router
    with (
        EmulatorMock(emulator_from_settings()) as api,
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = pay()
    assert event is not None
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id) == (Status.FAILED, markets.UNROUTED)
    assert row.field_errors[field]["message"] == message
    assert api.requests == []


def test_a_bad_value_fails_on_its_markets_pixel_and_the_order_reported_again_is_sent_there(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        pay(currency="NOK", amount="lots")
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id, list(row.field_errors)) == (Status.FAILED, NO, ["amount"])
    with django_capture_on_commit_callbacks(execute=True):
        pay(currency="NOK")
    row = ConversionEvent.objects.get()  # the same row, now valid
    assert (row.status, row.pixel_id) == (Status.SENT, NO)
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)]


def test_order_completed_and_a_shops_own_signal_may_name_the_market(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    order_paid = Signal()
    connect_order_signal(
        order_paid,
        lambda sender, order, **kwargs: {
            "order_id": order["number"],
            "amount": order["total"],
            "currency": "SEK",
            "number_of_items": 1,
            "signed_click_id": CLICK,
            "pixel": order["market"],
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(
            sender=None,
            order_id="A-1",
            amount=10,
            currency="SEK",
            number_of_items=1,
            signed_click_id=CLICK,
            pixel="no",
        )
        order_paid.send(sender=None, order={"number": "B-2", "total": 20, "market": "no"})
    assert pixels_of_rows() == {"A-1": NO, "B-2": NO}
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)] * 2


def test_a_click_attached_later_completes_the_orders_row_in_its_market(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event = pay(order_id="n-1", currency="NOK", signed_click_id=None)
    assert event is not None
    assert (event.status, event.pixel_id) == (Status.SKIPPED, NO)
    request = RequestFactory().get("/checkout/")
    request.session = SessionStore()
    store_click(request, CLICK)
    with django_capture_on_commit_callbacks(execute=True):
        attach_click(request, "n-1")
    assert statuses() == {"n-1": Status.SENT}
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)]


def checkout(click: str = CLICK) -> HttpRequest:
    """A visitor's checkout request, their click in the session."""
    request = RequestFactory().get("/checkout/")
    request.session = SessionStore()
    store_click(request, click)
    return request


def rows_of(order_id: str) -> dict[str, tuple[str, str, str]]:
    """The order's rows by market: status, click id, skip reason."""
    rows = ConversionEvent.objects.filter(order_id=order_id)
    return {
        markets.key_of(row.pixel_id) or row.pixel_id: (row.status, row.click_id, row.skip_reason)
        for row in rows
    }


def skipped_in_both(order_id: str = "10041") -> None:
    """One order id in Sweden and in Norway, both paid before their click was known."""
    pay(order_id=order_id, currency="SEK", signed_click_id=None)
    pay(order_id=order_id, currency="NOK", signed_click_id=None)
    assert statuses() == {order_id: Status.SKIPPED}  # both rows


def test_a_click_attached_naming_a_market_completes_only_that_markets_row(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    skipped_in_both()
    with django_capture_on_commit_callbacks(execute=True):
        assert attach_click(checkout(), "10041", pixel="no") is not None
    assert rows_of("10041") == {
        "se": (Status.SKIPPED, "", "no click"),
        "no": (Status.SENT, CLICK, ""),
    }
    # Sent to the Norwegian pixel, with the Norwegian credentials, and nowhere else.
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)]
    assert [e["signed_click_id"] for e in api.events_for(NO)] == [CLICK]
    assert api.events_for(SE) == []
    # The Swedish order reported again (its webhook retried) does not take Norway's click.
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="10041", currency="SEK", signed_click_id=None)
    assert rows_of("10041")["se"] == (Status.SKIPPED, "", "no click")
    assert len(api.requests) == 1


def test_a_click_attached_naming_a_market_is_used_by_that_markets_purchase_only(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    attach_click(checkout(), "10041", pixel="no")  # at the Norwegian checkout
    with django_capture_on_commit_callbacks(execute=True):  # then both webhooks
        pay(order_id="10041", currency="SEK", signed_click_id=None)
        pay(order_id="10041", currency="NOK", signed_click_id=None)
    assert rows_of("10041") == {
        "se": (Status.SKIPPED, "", "no click"),
        "no": (Status.SENT, CLICK, ""),
    }
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)]


def test_each_markets_checkout_keeps_its_own_click_for_one_order_id(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    other = CLICK[:-1] + "6"
    attach_click(checkout(CLICK), "10041", pixel="se")
    attach_click(checkout(other), "10041", pixel="no")  # does not replace Sweden's
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="10041", currency="NOK", signed_click_id=None)
        pay(order_id="10041", currency="SEK", signed_click_id=None)
    assert rows_of("10041") == {
        "se": (Status.SENT, CLICK, ""),
        "no": (Status.SENT, other, ""),
    }
    assert [e["signed_click_id"] for e in api.events_for(SE)] == [CLICK]
    assert [e["signed_click_id"] for e in api.events_for(NO)] == [other]


def test_a_click_attached_without_a_market_to_an_order_in_two_completes_neither(
    api: PrisjaktEmulator,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    skipped_in_both()
    with django_capture_on_commit_callbacks(execute=True):
        assert attach_click(checkout(), "10041") is not None  # kept, but for no market
    assert rows_of("10041") == {
        "se": (Status.SKIPPED, "", "no click"),
        "no": (Status.SKIPPED, "", "no click"),
    }
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warning.getMessage() == (
        "pjpixel: order 10041 is recorded in markets se, no: a click attached without "
        "pixel= completes none of them; attach it with pixel= naming the visitor's market"
    )
    # Nor does either market's purchase reported again take it: one click, one market.
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="10041", currency="SEK", signed_click_id=None)
        pay(order_id="10041", currency="NOK", signed_click_id=None)
    assert rows_of("10041") == {
        "se": (Status.SKIPPED, "", "no click"),
        "no": (Status.SKIPPED, "", "no click"),
    }
    assert api.requests == []


def test_a_click_attached_without_a_market_is_used_by_one_market_only(
    api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> None:
    attach_click(checkout(), "10041")  # a checkout that names no market
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="10041", currency="SEK", signed_click_id=None)  # the one market: sent
        pay(order_id="10041", currency="NOK", signed_click_id=None)  # a second: never guessed
    assert rows_of("10041") == {
        "se": (Status.SENT, CLICK, ""),
        "no": (
            Status.SKIPPED,
            "",
            "click attached without pixel=, and the order is in several markets",
        ),
    }
    assert seen(api) == [("POST", f"/pixels/{SE}/events", "shop-se", 201)]


def test_click_for_order_gives_a_markets_own_click_before_one_attached_naming_none(
    shop: dict[str, Any],
) -> None:
    other = CLICK[:-1] + "6"
    attach_click(checkout(CLICK), "10041")
    attach_click(checkout(other), "10041", pixel="no")
    assert sorted(OrderClick.objects.values_list("pixel_id", "click_id")) == [
        ("", CLICK),
        (NO, other),
    ]
    assert click_for_order("10041", NO) == Click(other, mock.ANY)
    assert click_for_order("10041", SE) == Click(CLICK, mock.ANY)  # recorded in no market yet
    assert click_for_order("10041") == Click(CLICK, mock.ANY)  # no market given: the unnamed
    pay(order_id="10041", currency="NOK", signed_click_id=None)
    assert click_for_order("10041", SE) is None  # the order is Norway's too now


@pytest.mark.parametrize(
    ("pixel", "message"),
    [
        ("fi", "pixel: 'fi' is not a market (markets: se, no)"),
        ("", "pixel: '' is not a market (markets: se, no)"),
        (7, "pixel: 7 is not a market (markets: se, no)"),
    ],
)
def test_attach_click_naming_no_market_attaches_nothing_logs_and_goes_on(
    api: PrisjaktEmulator,
    inline_queue: None,
    settings: Any,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
    pixel: Any,
    message: str,
) -> None:
    skipped_in_both()
    for debug in (False, True):
        settings.DEBUG = debug
        with django_capture_on_commit_callbacks(execute=True):
            assert attach_click(checkout(), "10041", pixel=pixel) is None
    assert not OrderClick.objects.exists()
    assert statuses() == {"10041": Status.SKIPPED}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"pjpixel: no click attached to order '10041': {message}"] * 2
    assert api.requests == []


def test_attach_click_naming_a_market_without_pixels_attaches_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert attach_click(checkout(), "10041", pixel="se") is None
    assert not OrderClick.objects.exists()
    assert "pixel: 'se' is not a market (PJPIXEL[\"PIXELS\"] is not set)" in caplog.text


# -- credentials ---------------------------------------------------------------------


def test_a_markets_credentials_may_come_from_the_environment(
    pjpixel: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    pixels = market_settings("se", "no")
    for name in ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.setenv(f"PJPIXEL_NO_{name}", pixels["no"].pop(name))
    pjpixel["PIXELS"] = pixels  # "no": {}
    secret = MARKETS["no"]["CLIENT_SECRET"]
    emulator = PrisjaktEmulator(
        pixels=[NO], clients={"shop-no": {"secret": secret, "roles": ["shop_user"], "pixels": [NO]}}
    )
    with EmulatorMock(emulator) as api, django_capture_on_commit_callbacks(execute=True):
        pay(currency="NOK")
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-no", 201)]


def test_another_markets_credentials_are_refused_on_this_markets_pixel(
    api: PrisjaktEmulator,
    shop: dict[str, Any],
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # The Norwegian market given the Swedish credentials by mistake.
    shop["PIXELS"]["no"].update(
        CLIENT_ID=MARKETS["se"]["CLIENT_ID"], CLIENT_SECRET=MARKETS["se"]["CLIENT_SECRET"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        pay(currency="NOK")
    row = ConversionEvent.objects.get()
    assert (row.status, row.pixel_id, row.last_status_code) == (Status.FAILED, NO, 403)
    assert seen(api) == [("POST", f"/pixels/{NO}/events", "shop-se", 403)]
    assert api.events == []


def test_each_market_has_a_client_of_its_own_and_a_forked_child_makes_new_ones(
    shop: dict[str, Any],
) -> None:
    se, no = get_client(SE), get_client(NO)
    assert (se.pixel_id, se.client_id, no.pixel_id, no.client_id) == (SE, "shop-se", NO, "shop-no")
    assert get_client(SE) is se
    assert get_client() is se  # the first market's
    assert se.session is not no.session

    def child() -> None:
        assert get_client(SE) is not se
        assert get_client(NO) is not no
        assert get_client(NO).client_id == "shop-no"

    assert forked(child)(30) == ""


# -- the backlog ---------------------------------------------------------------------


def test_a_backlog_across_three_markets_goes_in_patches_of_one_pixel_each(
    pjpixel: dict[str, Any],
) -> None:
    pjpixel["PIXELS"] = market_settings("se", "no", "dk")
    for number in range(7):  # interleaved: a claim of all due rows would mix the pixels
        make_event(f"order-{number}", pixel_id=(SE, NO, DK)[number % 3])
    with EmulatorMock(emulator_from_settings()) as api:
        assert deliver_due() == {"sent": 7}
    assert seen(api) == [
        ("PATCH", f"/pixels/{SE}/events", "shop-se", 204),
        ("PATCH", f"/pixels/{NO}/events", "shop-no", 204),
        ("PATCH", f"/pixels/{DK}/events", "shop-dk", 204),
    ]
    sent = [sorted(e["external_event_id"] for e in r.json) for r in api.requests]
    assert sent == [
        ["order-0", "order-3", "order-6"],
        ["order-1", "order-4"],
        ["order-2", "order-5"],
    ]
    assert set(statuses().values()) == {Status.SENT}


def test_the_rate_limit_reserve_of_one_market_does_not_pause_the_other(
    shop: dict[str, Any],
) -> None:
    shop.update(BATCH_SIZE=10, RATE_LIMIT_RESERVE=2)
    for number in range(50):
        make_event(f"se-{number:02d}", pixel_id=SE)
    for number in range(20):
        make_event(f"no-{number:02d}", pixel_id=NO)
    with EmulatorMock(emulator_from_settings()) as api:
        api.rate_limit = 5  # requests per client id and hour
        assert deliver_due() == {"sent": 50}
        # Sweden stops with 2 of its 5 requests left; Norway's 5 are its own.
        assert (
            seen(api)
            == [("PATCH", f"/pixels/{SE}/events", "shop-se", 204)] * 3
            + [("PATCH", f"/pixels/{NO}/events", "shop-no", 204)] * 2
        )
        waiting = ConversionEvent.objects.filter(status=Status.PENDING)
        assert set(waiting.values_list("pixel_id", flat=True)) == {SE}
        assert waiting.count() == 20
        soon = timezone.now() + timedelta(minutes=59)
        assert waiting.filter(next_attempt_at__gt=soon).count() == 20
        # The next run leaves Sweden to its reset and sends Norway's new orders.
        make_event("se-new", pixel_id=SE)
        make_event("no-new", pixel_id=NO)
        assert deliver_due() == {"sent": 1}
        assert seen(api)[5:] == [("PATCH", f"/pixels/{NO}/events", "shop-no", 204)]
    assert statuses()["no-new"] == Status.SENT
    assert statuses()["se-new"] == Status.PENDING


def test_a_429_for_one_market_leaves_the_other_sending(shop: dict[str, Any]) -> None:
    shop["BATCH_SIZE"] = 5
    for number in range(12):
        make_event(f"se-{number:02d}", pixel_id=SE)
    for number in range(4):
        make_event(f"no-{number:02d}", pixel_id=NO)
    before = timezone.now()
    with EmulatorMock(emulator_from_settings()) as api:
        api.scripted_retry_after = 120
        api.script([429], method="PATCH", path=f"/pixels/{SE}/events$")
        assert deliver_due() == {"pending": 5, "sent": 4}
    assert seen(api) == [
        ("PATCH", f"/pixels/{SE}/events", "shop-se", 429),
        ("PATCH", f"/pixels/{NO}/events", "shop-no", 204),
    ]
    se_rows = ConversionEvent.objects.filter(pixel_id=SE)
    assert set(se_rows.values_list("status", flat=True)) == {Status.PENDING}
    assert se_rows.filter(next_attempt_at__gte=before + timedelta(seconds=120)).count() == 12
    assert set(ConversionEvent.objects.filter(pixel_id=NO).values_list("status", flat=True)) == {
        Status.SENT
    }


def test_rows_of_a_pixel_no_market_has_wait_as_a_configuration_error(
    api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    make_event("before-markets", pixel_id=PIXEL_ID)  # the shop's pixel before it named markets
    assert deliver_due() == {"pending": 1}
    assert api.requests == []
    row = ConversionEvent.objects.get()
    assert (row.status, row.attempts) == (Status.PENDING, 1)
    assert f'No market of PJPIXEL["PIXELS"] has the pixel id {PIXEL_ID!r}' in row.problem_title


# -- the admin -----------------------------------------------------------------------


def test_the_prisjakt_events_view_lists_the_first_markets_pixel(
    api: PrisjaktEmulator, admin_client: Client
) -> None:
    api.add_event(SE, external_event_id="order-se")
    api.add_event(NO, external_event_id="order-no")
    mine = make_event("order-se", pixel_id=SE)
    html = admin_client.get(reverse("admin:django_pjpixel_prisjakt_events")).content.decode()
    assert f"Pixel {SE}." in html
    assert "order-se" in html
    assert "order-no" not in html
    assert reverse("admin:django_pjpixel_conversionevent_change", args=(mine.pk,)) in html
    assert seen(api) == [("GET", f"/pixels/{SE}/events", "shop-se", 200)]


# -- a single pixel, as before ----------------------------------------------------------


def test_without_pixels_every_purchase_goes_to_the_single_pixel_as_before(
    pjpixel_api: PrisjaktEmulator,
    inline_queue: None,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    with django_capture_on_commit_callbacks(execute=True):
        pay(order_id="a", currency="SEK")
        pay(order_id="b", currency="EUR")
        pay(order_id="c", pixel="se")  # no markets to choose from
    assert seen(pjpixel_api) == [("POST", f"/pixels/{PIXEL_ID}/events", "test-client", 201)] * 2
    assert pixels_of_rows() == {"a": PIXEL_ID, "b": PIXEL_ID, "c": markets.UNROUTED}
    failed = ConversionEvent.objects.get(order_id="c")
    assert failed.field_errors == {
        "pixel": {"message": "'se' is not a market (PJPIXEL[\"PIXELS\"] is not set)"}
    }
    make_event("legacy", pixel_id="an-older-pixel")  # every row goes to the one pixel
    assert deliver_due() == {"sent": 1}
    assert seen(pjpixel_api)[-1] == ("PATCH", f"/pixels/{PIXEL_ID}/events", "test-client", 204)


def test_a_refund_is_restated_on_its_markets_pixel_with_its_credentials(
    api: PrisjaktEmulator,
) -> None:
    from django_pjpixel.ledger.restatements import restate_purchase

    pay(order_id="order-se", currency="SEK")
    pay(order_id="order-no", currency="NOK")
    assert deliver_due() == {"sent": 2}
    restate_purchase(order_id="order-no", amount=0, number_of_items=0, reason="cancelled")
    restate_purchase(order_id="order-se", amount=600, reason="half returned")
    assert deliver_due() == {"restatement sent": 2}
    assert seen(api)[2:] == [
        ("PATCH", f"/pixels/{SE}/events", "shop-se", 204),
        ("PATCH", f"/pixels/{NO}/events", "shop-no", 204),
    ]
    assert [e["data"]["amount"] for e in api.events_for(SE)] == [600]
    assert [e["data"]["amount"] for e in api.events_for(NO)] == [0]


# -- Prisjakt's record, per market -----------------------------------------------------


def test_the_sync_task_mirrors_each_markets_pixel_with_its_credentials(
    api: PrisjaktEmulator,
) -> None:
    from django_pjpixel.models import PrisjaktEvent

    pay(order_id="order-se", currency="SEK")
    pay(order_id="order-no", currency="NOK")
    deliver_due()
    result = tasks.sync_events.apply(args=(1,)).get()
    assert result["complete"] is True
    assert set(result["pixels"]) == {SE, NO}
    mirrored = dict(PrisjaktEvent.objects.values_list("external_event_id", "pixel_id"))
    assert mirrored == {"order-se": SE, "order-no": NO}
    listings = [(r.path, r.headers.get("client-id")) for r in api.requests if r.method == "GET"]
    assert sorted(listings) == [
        (f"/pixels/{SE}/events", "shop-se"),
        (f"/pixels/{NO}/events", "shop-no"),
    ]


def test_one_market_refused_does_not_stop_the_others_sync(api: PrisjaktEmulator) -> None:
    from django_pjpixel.models import PrisjaktSync

    api.script([401], method="GET")  # the first listing (SE's) is refused
    result = tasks.sync_events.apply(args=(1,)).get()
    assert result["complete"] is False
    assert result["pixels"][NO]["complete"] is True
    assert "401" in result["pixels"][SE]["error"]
    assert PrisjaktSync.objects.filter(pixel_id=NO, complete=True).exists()


def test_sync_and_reconcile_one_market_by_its_key(api: PrisjaktEmulator) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from django_pjpixel.models import PrisjaktEvent

    pay(order_id="order-no", currency="NOK")
    deliver_due()
    call_command("pjpixel_sync", "--days", "7", "--pixel", "no", stdout=io.StringIO())
    assert list(PrisjaktEvent.objects.values_list("pixel_id", flat=True)) == [NO]
    out = io.StringIO()
    call_command("pjpixel_reconcile", "--pixel", "no", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["counts"]["matched"] == 1
    with pytest.raises(CommandError) as excinfo:
        call_command("pjpixel_reconcile", "--pixel", "xx", stdout=io.StringIO())
    assert excinfo.value.returncode == 2
    with pytest.raises(CommandError, match="xx"):
        call_command("pjpixel_sync", "--pixel", "xx", stdout=io.StringIO())
