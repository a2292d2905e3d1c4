from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpRequest
from django.test import RequestFactory

import django_pjpixel
from django_pjpixel.attribution import (
    POST_FIELD,
    SESSION_KEY,
    SKIP_CLICK_AFTER_PURCHASE,
    SKIP_INVALID_CLICK_ID,
    SKIP_NO_CLICK,
    SKIP_NO_CONSENT,
    SKIP_OUTSIDE_WINDOW,
    Click,
    Resolution,
    click_for_order,
    forget_click,
    get_click,
    has_consent,
    posted_click,
    resolve_click,
    store_click,
)
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger import purchases
from django_pjpixel.ledger.purchases import attach_click
from django_pjpixel.models import OrderClick

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
OTHER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
WINDOW = timedelta(days=30)


def make_request(data: dict[str, Any] | None = None) -> HttpRequest:
    request = RequestFactory().get("/checkout/")
    request.session = SessionStore()
    if data is not None:
        request.session[SESSION_KEY] = data
    return request


def request_with_click(click_id: str = CLICK, at: datetime = T0) -> HttpRequest:
    return make_request({"id": click_id, "at": at.isoformat()})


@pytest.fixture
def consent(settings: Any) -> Any:
    def set_hook(hook: Any) -> None:
        settings.PJPIXEL = {**settings.PJPIXEL, "CONSENT": hook}

    return set_hook


def refuse(request: HttpRequest) -> bool:
    return False


# --- the window ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "within"),
    [
        (timedelta(0), True),
        (WINDOW - timedelta(microseconds=1), True),
        (WINDOW, True),
        (WINDOW + timedelta(microseconds=1), False),
        (timedelta(days=365), False),
        (-timedelta(minutes=5), True),  # clock skew: a capture "after" now
        (-timedelta(minutes=5, microseconds=1), False),
    ],
    ids=["at capture", "just inside", "boundary", "just outside", "a year", "skew", "before"],
)
def test_window_boundaries(age: timedelta, within: bool) -> None:
    assert Click(CLICK, T0).is_within_window(now=T0 + age) is within


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (WINDOW, ""),
        (WINDOW + timedelta(seconds=1), SKIP_OUTSIDE_WINDOW),
        (-timedelta(minutes=5), ""),
        (-timedelta(minutes=6), SKIP_CLICK_AFTER_PURCHASE),
    ],
)
def test_skip_reason_at_the_purchase(age: timedelta, reason: str) -> None:
    assert Click(CLICK, T0).skip_reason_at(T0 + age) == reason
    assert Click(CLICK, None).skip_reason_at(T0 + age) == ""


@pytest.mark.parametrize("window", [timedelta(hours=1), 3600, 3600.0])
def test_window_from_settings(settings: Any, window: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "ATTRIBUTION_WINDOW": window}
    click = Click(CLICK, T0)
    assert click.is_within_window(now=T0 + timedelta(hours=1))
    assert not click.is_within_window(now=T0 + timedelta(hours=1, seconds=1))


def test_unknown_capture_time_counts_as_within() -> None:
    assert Click(CLICK, None).is_within_window(now=T0 + timedelta(days=10_000))
    assert Click(CLICK, None).is_within_window()


def test_window_defaults_to_the_current_time() -> None:
    now = datetime.now(timezone.utc)
    assert Click(CLICK, now - timedelta(days=29)).is_within_window()
    assert not Click(CLICK, now - timedelta(days=31)).is_within_window()


# --- consent -------------------------------------------------------------------


def test_consent_defaults_to_allowed() -> None:
    assert has_consent(make_request()) is True


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (lambda request: True, True),
        (lambda request: False, False),
        (lambda request: "yes", True),
        (lambda request: None, False),
        (refuse, False),
        ("tests.test_attribution.refuse", False),
        ("", True),  # falsy: no hook configured
        (None, True),
    ],
)
def test_consent_hook(consent: Any, hook: Any, expected: bool) -> None:
    consent(hook)
    assert has_consent(make_request()) is expected


def test_consent_hook_receives_the_request(consent: Any) -> None:
    seen: list[HttpRequest] = []

    def hook(request: HttpRequest) -> bool:
        seen.append(request)
        return True

    consent(hook)
    request = make_request()
    assert has_consent(request)
    assert seen == [request]


def test_failing_consent_hook_is_no_consent(consent: Any, caplog: pytest.LogCaptureFixture) -> None:
    consent("tests.test_attribution.no_such_function")
    assert has_consent(make_request()) is False
    assert "no consent" in caplog.records[-1].getMessage()


class Awaitable:
    def __await__(self) -> Any:
        yield None


async def async_hook(request: HttpRequest) -> bool:
    return True


@pytest.mark.parametrize("hook", [async_hook, lambda request: Awaitable()])
def test_asynchronous_consent_hook_is_no_consent(
    consent: Any, hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    consent(hook)
    assert has_consent(make_request()) is False  # no "never awaited" warning either
    assert "must be synchronous" in caplog.records[-1].getMessage()


# --- the session -----------------------------------------------------------------


def test_store_and_get_click() -> None:
    request = make_request()
    click = store_click(request, CLICK, now=T0)
    assert click == Click(CLICK, T0)
    assert request.session[SESSION_KEY] == {"id": CLICK, "at": "2025-03-01T12:00:00+00:00"}
    assert get_click(request) == click


def test_store_click_replaces_an_older_click() -> None:
    request = request_with_click(CLICK, T0)
    assert store_click(request, OTHER, now=T0 + timedelta(days=1)) == Click(
        OTHER, T0 + timedelta(days=1)
    )
    assert get_click(request) == Click(OTHER, T0 + timedelta(days=1))


def test_store_click_keeps_first_capture_of_the_same_click() -> None:
    request = request_with_click(CLICK, T0)
    request.session.modified = False
    assert store_click(request, CLICK, now=T0 + timedelta(days=1)) == Click(CLICK, T0)
    assert not request.session.modified


def test_store_click_defaults_to_now() -> None:
    request = make_request()
    before = datetime.now(timezone.utc)
    click = store_click(request, CLICK)
    assert click.captured_at is not None
    assert before <= click.captured_at <= datetime.now(timezone.utc)


@pytest.mark.parametrize("bad", ["", "a;b", "x" * 129, "åäö"])
def test_store_click_refuses_invalid_ids(bad: str) -> None:
    request = make_request()
    with pytest.raises(InvalidInput) as excinfo:
        store_click(request, bad)
    assert excinfo.value.field == "click_id"
    assert SESSION_KEY not in request.session


@pytest.mark.parametrize(
    "data",
    [
        "not a dict",
        [CLICK, T0.isoformat()],
        {},
        {"id": CLICK},
        {"id": CLICK, "at": None},
        {"id": CLICK, "at": 1700000000},
        {"id": CLICK, "at": "yesterday"},
        {"id": "bad;id", "at": T0.isoformat()},
        {"id": 123, "at": T0.isoformat()},
        {"id": None, "at": T0.isoformat()},
    ],
)
def test_corrupt_session_data_is_no_click(data: Any) -> None:
    assert get_click(make_request(data)) is None


def test_get_click_without_session() -> None:
    assert get_click(RequestFactory().get("/")) is None


def test_get_click_accepts_other_offsets() -> None:
    request = make_request({"id": CLICK, "at": "2025-03-01T13:00:00+01:00"})
    assert get_click(request) == Click(CLICK, T0)


def test_a_naive_capture_time_is_in_time_zone() -> None:
    # As an older version wrote it under USE_TZ = False: local time, no zone.
    request = make_request({"id": CLICK, "at": "2025-03-01T13:00:00"})  # Stockholm
    assert get_click(request) == Click(CLICK, T0)


def test_store_click_keeps_an_aware_utc_time_with_use_tz_true_or_false(use_tz: bool) -> None:
    request = make_request()
    click = store_click(request, CLICK)
    assert request.session[SESSION_KEY]["at"].endswith("+00:00")
    assert click.captured_at is not None
    assert click.captured_at.utcoffset() == timedelta(0)
    assert get_click(request) == click
    naive_local = datetime(2025, 3, 1, 13, 0)  # the shop's timezone.now() under USE_TZ = False
    assert store_click(make_request(), CLICK, now=naive_local).captured_at == T0


# --- orders ------------------------------------------------------------------------


@pytest.mark.django_db
def test_attach_click_and_click_for_order() -> None:
    request = request_with_click(CLICK, T0)
    assert attach_click(request, "order-1", now=T0 + timedelta(days=1)) == Click(CLICK, T0)

    row = OrderClick.objects.get(order_id="order-1")
    assert (row.click_id, row.captured_at, row.pixel_id) == (CLICK, T0, "")  # no market named
    assert click_for_order("order-1") == Click(CLICK, T0)
    assert click_for_order("order-2") is None


@pytest.mark.django_db
def test_attach_click_again_updates_the_row() -> None:
    attach_click(request_with_click(CLICK, T0), "order-1", now=T0)
    later = T0 + timedelta(days=2)
    attach_click(request_with_click(OTHER, later), "order-1", now=later)
    assert OrderClick.objects.count() == 1
    assert click_for_order("order-1") == Click(OTHER, later)


@pytest.mark.django_db
def test_attach_click_defaults_to_now() -> None:
    recent = datetime.now(timezone.utc) - timedelta(days=1)
    assert attach_click(request_with_click(CLICK, recent), "order-1") == Click(CLICK, recent)
    assert attach_click(request_with_click(CLICK, T0), "order-2") is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("request_factory", "reason"),
    [
        (make_request, "no click"),
        (lambda: make_request({"id": "corrupt;"}), "corrupt"),
        (lambda: request_with_click(CLICK, T0 - WINDOW - timedelta(seconds=1)), "too old"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_attach_click_attaches_nothing(request_factory: Any, reason: str) -> None:
    assert attach_click(request_factory(), "order-1", now=T0) is None
    assert not OrderClick.objects.exists()


@pytest.mark.django_db
def test_attach_click_needs_consent(consent: Any) -> None:
    consent(refuse)
    assert attach_click(request_with_click(), "order-1", now=T0) is None
    assert not OrderClick.objects.exists()


@pytest.mark.django_db
def test_attach_click_accepts_100_character_order_ids() -> None:
    order_id = "o" * 100
    attach_click(request_with_click(), order_id, now=T0)
    assert click_for_order(order_id) == Click(CLICK, T0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "order_id",
    [42, uuid.UUID("b6f3f2d0-6f3e-4a47-9a49-6d1c7a5b8e21")],
    ids=["int", "UUID"],
)
def test_attach_click_takes_int_and_uuid_order_ids(order_id: Any) -> None:
    assert attach_click(request_with_click(), order_id, now=T0) == Click(CLICK, T0)
    assert click_for_order(str(order_id)) == Click(CLICK, T0)


@pytest.mark.django_db
@pytest.mark.parametrize("order_id", ["", "o" * 101, None, 4.2, "ORD\x00-1", "ORD\n1"])
def test_attach_click_logs_an_order_id_it_cannot_use_and_goes_on(
    settings: Any, caplog: pytest.LogCaptureFixture, order_id: Any
) -> None:
    for debug in (False, True):
        settings.DEBUG = debug
        assert attach_click(request_with_click(), order_id, now=T0) is None
    assert not OrderClick.objects.exists()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    assert "order_id" in errors[0].getMessage()


@pytest.mark.django_db
def test_attach_click_logs_a_database_error_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with mock.patch.object(OrderClick.objects, "update_or_create", side_effect=OSError("db")):
        assert attach_click(request_with_click(), "order-1", now=T0) is None
    assert "could not attach the click to order order-1" in caplog.text


@pytest.mark.parametrize("order_id", ["", "o" * 101, None])
def test_click_for_impossible_order_ids(order_id: Any) -> None:
    # No query: such an order id cannot have been attached.
    assert click_for_order(order_id) is None


def test_attach_click_is_public() -> None:
    assert django_pjpixel.attach_click is purchases.attach_click


@pytest.mark.django_db
def test_forget_click() -> None:
    request = request_with_click(CLICK, T0)
    attach_click(request, "order-1", now=T0)
    attach_click(request, "order-2", now=T0)
    attach_click(request_with_click(OTHER, T0), "order-3", now=T0)

    forget_click(request)

    assert SESSION_KEY not in request.session
    assert get_click(request) is None
    assert list(OrderClick.objects.values_list("order_id", flat=True)) == ["order-3"]


@pytest.mark.django_db
def test_forget_click_without_a_click() -> None:
    attach_click(request_with_click(OTHER, T0), "order-3", now=T0)
    request = make_request({"id": "corrupt;", "at": "x"})
    forget_click(request)
    assert SESSION_KEY not in request.session
    forget_click(make_request())
    forget_click(RequestFactory().get("/"))  # no session at all
    assert OrderClick.objects.count() == 1


# --- the browser script's click, posted at checkout ---------------------------------------


def checkout_post(click_id: str | None, session: dict[str, Any] | None = None) -> HttpRequest:
    """The checkout form posted, with ``pjpixel_click_id`` (``{% pjpixel_click_input %}``)."""
    data = {"order": "order-1"} if click_id is None else {POST_FIELD: click_id}
    request = RequestFactory().post("/checkout/", data)
    request.session = SessionStore()
    if session is not None:
        request.session[SESSION_KEY] = session
    return request


@pytest.mark.django_db
def test_attach_click_takes_the_posted_click_when_the_store_has_none() -> None:
    assert attach_click(checkout_post(CLICK), "order-1", now=T0) == Click(CLICK, T0)
    assert click_for_order("order-1") == Click(CLICK, T0)  # captured when the shop got it


@pytest.mark.django_db
def test_attach_click_prefers_the_store_to_the_posted_click() -> None:
    request = checkout_post(OTHER, {"id": CLICK, "at": T0.isoformat()})
    assert attach_click(request, "order-1", now=T0 + timedelta(days=1)) == Click(CLICK, T0)


@pytest.mark.django_db
def test_attach_click_takes_the_posted_click_when_the_stores_is_too_old() -> None:
    request = checkout_post(OTHER, {"id": CLICK, "at": (T0 - WINDOW * 2).isoformat()})
    assert attach_click(request, "order-1", now=T0) == Click(OTHER, T0)


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "a;b", "x" * 129, "åäö", " " + CLICK])
def test_a_posted_value_that_cannot_be_a_click_is_none(bad: str) -> None:
    assert attach_click(checkout_post(bad), "order-1", now=T0) is None
    assert not OrderClick.objects.exists()


@pytest.mark.django_db
def test_a_posted_click_needs_consent(consent: Any) -> None:
    consent(refuse)
    assert attach_click(checkout_post(CLICK), "order-1", now=T0) is None
    assert not OrderClick.objects.exists()


def test_posted_click_reads_only_a_post() -> None:
    request = RequestFactory().get("/checkout/", {POST_FIELD: CLICK})
    assert posted_click(request, T0) is None
    assert posted_click(checkout_post(None), T0) is None
    assert posted_click(checkout_post(CLICK)) is not None


def test_posted_click_survives_a_body_too_large(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    assert posted_click(checkout_post(CLICK), T0) is None


@pytest.mark.django_db
def test_forget_click_drops_it_from_both_stores(settings: Any) -> None:
    # A shop that moved to the cookie store: an older click may still be in the session.
    settings.PJPIXEL = {**settings.PJPIXEL, "CLICK_STORE": "cookie"}
    request = request_with_click(OTHER, T0)
    store_click(request, CLICK, now=T0)
    for order_id, click_id in (("order-1", CLICK), ("order-2", OTHER), ("order-3", "kept")):
        OrderClick.objects.create(order_id=order_id, click_id=click_id, captured_at=T0)

    forget_click(request)

    assert SESSION_KEY not in request.session
    assert get_click(request) is None
    assert list(OrderClick.objects.values_list("order_id", flat=True)) == ["order-3"]


# --- resolve_click ---------------------------------------------------------------------

NOW = T0 + timedelta(days=1)


@pytest.mark.django_db
def test_resolve_signed_click_id_comes_first() -> None:
    attach_click(request_with_click(OTHER, T0), "order-1", now=T0)
    resolution = resolve_click(
        order_id="order-1", request=request_with_click(OTHER), signed_click_id=CLICK, at=NOW
    )
    assert resolution == Resolution(Click(CLICK, None), "")
    assert resolution.is_attributable


@pytest.mark.django_db
def test_resolve_signed_click_id_has_no_window() -> None:
    resolution = resolve_click(order_id="o", signed_click_id=CLICK, at=T0 + timedelta(days=999))
    assert resolution.click == Click(CLICK, None)


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["a;b", "x" * 129, "åäö", " " + CLICK])
def test_resolve_invalid_signed_click_id(bad: str) -> None:
    resolution = resolve_click(order_id="order-1", signed_click_id=bad, at=NOW)
    assert resolution == Resolution(None, SKIP_INVALID_CLICK_ID)
    # Junk is no click: the visitor's own click is used (the click rule, clickids).
    resolution = resolve_click(
        order_id="order-1", request=request_with_click(), signed_click_id=bad, at=NOW
    )
    assert resolution == Resolution(Click(CLICK, T0))


@pytest.mark.django_db
def test_resolve_empty_signed_click_id_means_not_given() -> None:
    resolution = resolve_click(
        order_id="order-1", request=request_with_click(), signed_click_id="", at=NOW
    )
    assert resolution == Resolution(Click(CLICK, T0), "")


@pytest.mark.django_db
def test_resolve_attached_click_before_session(consent: Any) -> None:
    attach_click(request_with_click(OTHER, T0), "order-1", now=T0)
    consent(refuse)  # consent is asked only of the session's click
    resolution = resolve_click(order_id="order-1", request=request_with_click(CLICK), at=NOW)
    assert resolution == Resolution(Click(OTHER, T0), "")


@pytest.mark.django_db
def test_resolve_attached_click_outside_window() -> None:
    attach_click(request_with_click(OTHER, T0), "order-1", now=T0)
    resolution = resolve_click(
        order_id="order-1", request=request_with_click(CLICK, NOW), at=T0 + WINDOW * 2
    )
    assert resolution == Resolution(None, SKIP_OUTSIDE_WINDOW)


@pytest.mark.django_db
def test_resolve_session_click() -> None:
    resolution = resolve_click(order_id="order-1", request=request_with_click(), at=NOW)
    assert resolution == Resolution(Click(CLICK, T0), "")


@pytest.mark.django_db
def test_resolve_session_click_outside_window() -> None:
    resolution = resolve_click(
        order_id="order-1", request=request_with_click(), at=T0 + WINDOW + timedelta(seconds=1)
    )
    assert resolution == Resolution(None, SKIP_OUTSIDE_WINDOW)


@pytest.mark.django_db
def test_resolve_session_click_needs_consent(consent: Any) -> None:
    consent(refuse)
    resolution = resolve_click(order_id="order-1", request=request_with_click(), at=NOW)
    assert resolution == Resolution(None, SKIP_NO_CONSENT)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_factory",
    [lambda: None, make_request, lambda: make_request({"id": CLICK, "at": "garbage"})],
    ids=["no request", "empty session", "corrupt session"],
)
def test_resolve_no_click(request_factory: Any) -> None:
    resolution = resolve_click(order_id="order-1", request=request_factory(), at=NOW)
    assert resolution == Resolution(None, SKIP_NO_CLICK)


def test_skip_reasons() -> None:
    assert SKIP_NO_CLICK == "no click"
    assert SKIP_OUTSIDE_WINDOW == "click outside the attribution window"
    assert SKIP_NO_CONSENT == "no consent"
    assert SKIP_INVALID_CLICK_ID == "invalid click id"
    assert SKIP_CLICK_AFTER_PURCHASE == "click after the purchase"
