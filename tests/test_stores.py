"""The click stores: the session and the signed cookie, each from landing to a sent purchase.

The flows go through the test client and the whole middleware stack, into a
shop's views (``urlpatterns`` below), and end at the API emulator: what
reached Prisjakt, which rows exist, which cookies were set.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import logout
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path

from django_pjpixel import stores
from django_pjpixel.attribution import forget_click, get_click, store_click
from django_pjpixel.exceptions import PjpixelConfigurationError
from django_pjpixel.ledger.purchases import attach_click, track_purchase
from django_pjpixel.middleware import PjclidMiddleware
from django_pjpixel.models import ConversionEvent, OrderClick
from django_pjpixel.signals import order_completed
from django_pjpixel.testing.emulator import PrisjaktEmulator

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
NEWER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
COOKIE = "pjpixel_click"
WINDOW = 30 * 24 * 3600
Capture = Callable[..., Any]


# -- the shop -------------------------------------------------------------------


def product(request: HttpRequest) -> HttpResponse:
    return HttpResponse("a product page")


def checkout(request: HttpRequest) -> JsonResponse:
    """The order is created; the payment is confirmed later, by a webhook."""
    click = attach_click(request, request.POST["order"])
    return JsonResponse({"attached": click.click_id if click else None})


def pay(request: HttpRequest) -> HttpResponse:
    """The visitor's own request confirms the payment (a thank-you page)."""
    with transaction.atomic():
        track_purchase(
            order_id=request.POST["order"],
            amount=Decimal("499.00"),
            currency="SEK",
            number_of_items=1,
            request=request,
        )
    return HttpResponse("thank you")


def log_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponse("logged out")


def withdraw_consent(request: HttpRequest) -> HttpResponse:
    forget_click(request)
    return HttpResponse("forgotten")


urlpatterns = [
    path("product/", product),
    path("checkout/", checkout),
    path("pay/", pay),
    path("logout/", log_out),
    path("consent/withdraw/", withdraw_consent),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]


@pytest.fixture(params=["session", "cookie"], ids=["session store", "cookie store"])
def store(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.PJPIXEL = {**settings.PJPIXEL, "CLICK_STORE": request.param}
    return str(request.param)


@pytest.fixture
def cookie_store(settings: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "CLICK_STORE": "cookie"}


@pytest.fixture
def prisjakt(
    pjpixel_api: PrisjaktEmulator, inline_queue: None, django_capture_on_commit_callbacks: Capture
) -> Prisjakt:
    """The emulator; each order paid through ``/pay/`` is delivered to it at commit."""
    return Prisjakt(pjpixel_api, django_capture_on_commit_callbacks)


class Prisjakt:
    def __init__(self, api: PrisjaktEmulator, capture: Capture) -> None:
        self.api = api
        self.capture = capture

    def pay(self, client: Client, order_id: str) -> list[tuple[str, str | None]]:
        """The visitor pays ``order_id``: (order id, click id) of each purchase Prisjakt has."""
        with self.capture(execute=True):
            assert client.post("/pay/", {"order": order_id}).status_code == 200
        return self.sent()

    def sent(self) -> list[tuple[str, str | None]]:
        return [
            (r.json["external_event_id"], r.json.get("signed_click_id"))
            for r in self.api.requests
            if r.method == "POST"
        ]


def land(client: Client, click_id: str = CLICK, page: str = "/product/") -> HttpResponse:
    response: HttpResponse = client.get(f"{page}?pjclid={click_id}&utm_source=prisjakt")
    return response


def kept(client: Client) -> Any:
    """What the cookie store's cookie holds, or None."""
    cookie = client.cookies.get(COOKIE)
    if cookie is None or not cookie.value:
        return None
    return signing.loads(cookie.value, salt=stores.COOKIE_SALT)


# -- land, pay, sent: both stores, with USE_TZ true and false ----------------------------


def test_land_then_pay_is_sent_with_the_click(use_tz: bool, store: str, prisjakt: Prisjakt) -> None:
    client = Client()
    assert land(client).status_code == 200
    assert client.get("/product/").status_code == 200  # browsing on, without pjclid
    assert prisjakt.pay(client, "ORD-1") == [("ORD-1", CLICK)]
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id) == (ConversionEvent.Status.SENT, CLICK)
    assert Session.objects.count() == (1 if store == "session" else 0)


def test_checkout_then_a_webhook_is_sent_with_the_click(
    use_tz: bool, store: str, prisjakt: Prisjakt
) -> None:
    client = Client()
    land(client)
    assert client.post("/checkout/", {"order": "ORD-2"}).json() == {"attached": CLICK}
    with prisjakt.capture(execute=True), transaction.atomic():
        order_completed.send(
            sender=User, order_id="ORD-2", amount=Decimal(990), currency="SEK", number_of_items=2
        )
    assert prisjakt.sent() == [("ORD-2", CLICK)]
    assert OrderClick.objects.get().click_id == CLICK


def test_a_logout_between_landing_and_paying_keeps_the_click(
    use_tz: bool, store: str, prisjakt: Prisjakt
) -> None:
    client = Client()
    land(client)
    client.force_login(User.objects.create_user("visitor"))
    assert client.post("/logout/").status_code == 200
    assert "_auth_user_id" not in client.session  # logged out: a new, anonymous session
    assert prisjakt.pay(client, "ORD-3") == [("ORD-3", CLICK)]


def test_a_landing_on_a_page_that_answers_404_keeps_the_click(
    store: str, prisjakt: Prisjakt
) -> None:
    client = Client()
    assert land(client, page="/product/sold-out/").status_code == 404
    assert prisjakt.pay(client, "ORD-4") == [("ORD-4", CLICK)]


@pytest.mark.parametrize(
    ("second", "expected"),
    [("", CLICK), ("x" * 129, CLICK), ("bad;value", CLICK), ("%0D%0A", CLICK), (NEWER, NEWER)],
    ids=["empty", "too long", "semicolon", "CRLF", "a newer click"],
)
def test_an_invalid_click_never_replaces_the_kept_one_a_newer_does(
    store: str, second: str, expected: str, prisjakt: Prisjakt
) -> None:
    client = Client()
    land(client)
    land(client, click_id=second)
    assert prisjakt.pay(client, "ORD-5") == [("ORD-5", expected)]


def test_withdrawn_consent_drops_the_click_and_the_orders_rows(
    store: str, prisjakt: Prisjakt
) -> None:
    client = Client()
    land(client)
    client.post("/checkout/", {"order": "ORD-7"})
    response = client.post("/consent/withdraw/")
    assert response.status_code == 200
    assert not OrderClick.objects.exists()
    assert prisjakt.pay(client, "ORD-8") == []
    assert ConversionEvent.objects.get().skip_reason == "no click"
    if store == "cookie":
        assert response.cookies[COOKIE]["max-age"] == 0
        assert kept(client) is None


# -- the cookie store ---------------------------------------------------------------------


@pytest.mark.usefixtures("cookie_store")
def test_a_flood_of_made_up_clicks_writes_nothing_to_the_database(
    django_assert_num_queries: Any,
) -> None:
    client = Client()
    with django_assert_num_queries(0):
        for index in range(300):
            page = "/product/" if index % 2 else f"/no-such-page-{index}/"
            response = land(client, click_id=f"{uuid.uuid4()}_{index:016x}")
            assert response.status_code in (200, 404), page
    assert kept(client)["id"].endswith(f"_{299:016x}")
    assert Session.objects.count() == 0
    assert ConversionEvent.objects.count() == OrderClick.objects.count() == 0


@pytest.mark.usefixtures("cookie_store")
def test_the_cookie_is_signed_httponly_lax_and_lasts_the_window(settings: Any) -> None:
    before = datetime.now(dt_timezone.utc)
    response = land(Client())
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["secure"] == ""  # like the session cookie: SESSION_COOKIE_SECURE is False
    assert cookie["path"] == "/"
    assert WINDOW - 5 <= cookie["max-age"] <= WINDOW
    data = signing.loads(cookie.value, salt=stores.COOKIE_SALT)
    assert data["id"] == CLICK
    assert before <= datetime.fromisoformat(data["at"]) <= datetime.now(dt_timezone.utc)
    assert "private" in response["Cache-Control"]  # no shared cache keeps one visitor's cookie

    settings.SESSION_COOKIE_SECURE = True
    settings.SESSION_COOKIE_DOMAIN = ".shop.example"
    settings.PJPIXEL = {**settings.PJPIXEL, "COOKIE_NAME": "pj", "ATTRIBUTION_WINDOW": 3600}
    cookie = land(Client()).cookies["pj"]
    assert cookie["secure"] is True
    assert cookie["domain"] == ".shop.example"
    assert 3595 <= cookie["max-age"] <= 3600


@pytest.mark.usefixtures("cookie_store")
def test_the_same_click_again_sets_no_cookie() -> None:
    client = Client()
    first = land(client).cookies[COOKIE].value
    again = land(client)
    assert COOKIE not in again.cookies
    assert client.cookies[COOKIE].value == first


def forged_requests() -> dict[str, str]:
    good = signing.dumps({"id": CLICK, "at": "2025-03-01T12:00:00+00:00"}, salt=stores.COOKIE_SALT)
    value, signature = good.rsplit(":", 1)
    return {
        "unsigned JSON": json.dumps({"id": CLICK, "at": "2025-03-01T12:00:00+00:00"}),
        "bad signature": f"{value}:{signature[::-1]}",
        "another salt": signing.dumps({"id": CLICK, "at": "2025-03-01T12:00:00"}, salt="other"),
        "signed, not a click": signing.dumps({"id": "a;b", "at": "x"}, salt=stores.COOKIE_SALT),
        "signed, not a dict": signing.dumps([CLICK], salt=stores.COOKIE_SALT),
    }


@pytest.mark.usefixtures("cookie_store")
@pytest.mark.parametrize("value", forged_requests().values(), ids=forged_requests().keys())
def test_a_forged_or_foreign_cookie_is_no_click(value: str) -> None:
    request = RequestFactory().get("/checkout/")
    request.COOKIES[COOKIE] = value
    assert get_click(request) is None
    assert attach_click(request, "ORD-9") is None
    assert not OrderClick.objects.exists()


@pytest.mark.usefixtures("cookie_store")
def test_the_cookie_store_needs_no_session() -> None:
    request = RequestFactory().get(f"/?pjclid={CLICK}")  # no SessionMiddleware ran
    response = PjclidMiddleware(lambda request: HttpResponse())(request)
    assert isinstance(response, HttpResponse)
    assert signing.loads(response.cookies[COOKIE].value, salt=stores.COOKIE_SALT)["id"] == CLICK
    assert not hasattr(request, "session")


@pytest.mark.usefixtures("cookie_store")
def test_a_click_kept_in_a_view_is_read_back_in_the_same_request() -> None:
    request = RequestFactory().get("/")
    click = store_click(request, CLICK)
    assert get_click(request) == click
    forget_click(request)
    assert get_click(request) is None
    response = HttpResponse()
    stores.after_view(request, response)
    assert response.cookies[COOKIE]["max-age"] == 0


def test_forgetting_a_visitor_without_a_click_changes_no_response() -> None:
    request = RequestFactory().get("/")
    forget_click(request)  # no session, no cookie
    assert stores.AFTER_VIEW not in request.__dict__


def test_an_unknown_store_fails_loudly_naming_the_fix(settings: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "CLICK_STORE": "database"}
    with pytest.raises(PjpixelConfigurationError, match='"session" or "cookie"'):
        stores.current()


# -- the session store ------------------------------------------------------------------


def test_a_logout_outside_the_session_store_puts_nothing_back(
    cookie_store: None, django_user_model: Any
) -> None:
    request = RequestFactory().get("/")
    stores.keep_at_logout(sender=django_user_model, request=request, user=None)
    stores.keep_at_logout(sender=django_user_model, request=None, user=None)
    assert stores.AFTER_VIEW not in request.__dict__


def test_a_logout_with_no_click_in_the_session_puts_nothing_back(django_user_model: Any) -> None:
    request = RequestFactory().get("/")
    request.session = Client().session
    request.session[stores.SESSION_KEY] = {"id": "not;a;click", "at": "x"}
    stores.keep_at_logout(sender=django_user_model, request=request, user=None)
    assert stores.AFTER_VIEW not in request.__dict__


def test_a_click_forgotten_after_a_logout_is_not_put_back(django_user_model: Any) -> None:
    client = Client()
    land(client)
    client.force_login(django_user_model.objects.create_user("visitor"))

    def log_out_and_withdraw(request: HttpRequest) -> HttpResponse:
        logout(request)
        forget_click(request)
        return HttpResponse()

    request = RequestFactory().get("/")
    request.session = client.session
    request.user = django_user_model.objects.get()
    PjclidMiddleware(log_out_and_withdraw)(request)
    assert stores.SESSION_KEY not in request.session


def test_the_session_store_times_a_click_from_its_stored_form(use_tz: bool) -> None:
    request = RequestFactory().get("/")
    request.session = Client().session
    at = datetime(2025, 3, 1, 12, tzinfo=dt_timezone.utc)
    stores.STORES["session"].save(request, CLICK, at)
    assert request.session[stores.SESSION_KEY] == {"id": CLICK, "at": "2025-03-01T12:00:00+00:00"}
    assert stores.STORES["session"].load(request) == (CLICK, at)
    assert stores.from_data({"id": CLICK, "at": at.isoformat()}) == (CLICK, at)
