"""The emulator's model of the API (``testing/model.py``): event bodies, the
duplicate window, click ids, tokens and the rate limit, as
``/work/shared/prisjakt-api.md`` states them, seen through ``handle``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from django_pjpixel.testing.clock import ManualClock
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.seed import BODY as SEED_BODY
from tests.seed import VALIDATION as SEED_VALIDATION
from tests.testing.test_emulator import (
    CLICK,
    CLIENT,
    PIXEL,
    call,
    field_errors_of,
    get_token,
    make_emulator,
    post,
    purchase,
)
from tests.testing.test_emulator import clock as clock  # fixtures, shared by name
from tests.testing.test_emulator import emu as emu

# -- Creating an event ----------------------------------------------------


def test_create_body_is_the_seeds_shape(emu: PrisjaktEmulator) -> None:
    # The seed's cURL body is accepted once its click-id placeholder is a click id; the
    # placeholder itself ("<...>") cannot be one and is the only field refused.
    seed = json.loads(SEED_BODY)
    errors = field_errors_of(post(emu, seed))
    assert list(errors) == ["signed_click_id"]
    seed["signed_click_id"] = CLICK
    response = post(emu, seed)
    assert response.status == 201
    assert response.json()["external_event_id"] == "<your-reference-or-order-id>"


def test_validation_error_has_the_seeds_exact_shape(emu: PrisjaktEmulator) -> None:
    # "validation errors (status 400) add `field_errors`" [seed], shape for shape.
    seed = json.loads(SEED_VALIDATION)
    response = post(emu, purchase(data={"amount": "alfa", "currency": "SEK", "number_of_items": 1}))
    body = response.json()
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert list(body) == list(seed)
    assert body["title"] == seed["title"]
    assert body["status"] == seed["status"]
    assert body["detail"] == (
        "Request contains invalid fields: data.amount. See field_errors for more details."
    )
    assert body["field_errors"] == {"data.amount": {"message": "invalid integer", "value": "alfa"}}
    assert list(body["field_errors"]["data.amount"]) == list(seed["field_errors"]["shopId"])
    assert list(body["context"]) == ["request-id"]
    assert body["context"]["request-id"] == response.headers["request-id"]
    assert uuid.UUID(body["context"]["request-id"])
    assert emu.events == []


def test_validation_lists_every_invalid_field(emu: PrisjaktEmulator) -> None:
    response = post(emu, purchase(event_name="refund", data={"currency": "USD", "amount": 1}))
    assert response.json()["detail"] == (
        "Request contains invalid fields: event_name, data.number_of_items, data.currency. "
        "See field_errors for more details."
    )


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        # "`event_time`: ISO-8601, UTC [seed]"
        ("event_time", "2025-03-13T10:45:46.987Z", True),
        ("event_time", "2025-03-13T10:45:46Z", True),
        ("event_time", "2025-03-13T11:45:46.987+01:00", True),
        ("event_time", "2025-03-13T10:45:46.123456789Z", True),
        ("event_time", "2025-03-13 10:45:46", False),
        ("event_time", "2025-03-13T10:45:46", False),
        ("event_time", "2025-13-13T10:45:46Z", False),
        ("event_time", "yesterday", False),
        ("event_time", 1741862746, False),
        # "`external_event_id`: optional [seed]; at most 100 characters [docs]"
        ("external_event_id", "x" * 100, True),
        ("external_event_id", None, True),
        ("external_event_id", "x" * 101, False),
        ("external_event_id", "", False),
        ("external_event_id", 42, False),
        # "`event_name`: `purchase` is the only documented value [seed, docs]"
        ("event_name", "purchase", True),
        ("event_name", "Purchase", False),
        ("event_name", "add_to_cart", False),
        # "rejects values that cannot be one (too long, characters outside `[A-Za-z0-9_-]`)"
        ("signed_click_id", CLICK, True),
        ("signed_click_id", None, True),
        ("signed_click_id", "a" * 128, True),
        ("signed_click_id", "a" * 129, False),
        ("signed_click_id", "abc def", False),
        ("signed_click_id", "<script>", False),
        ("signed_click_id", "", False),
        ("signed_click_id", 7, False),
    ],
)
def test_top_level_field_rules(emu: PrisjaktEmulator, field: str, value: object, ok: bool) -> None:
    response = post(emu, purchase(**{field: value}))
    if ok:
        assert response.status == 201
        assert response.json()[field] == value
    else:
        errors = field_errors_of(response)
        assert list(errors) == [field]
        assert errors[field]["value"] == value
        assert isinstance(errors[field]["message"], str)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        # "`amount`: 0 to 999999999 [docs]"
        ("amount", 0, True),
        ("amount", 999_999_999, True),
        ("amount", -1, False),
        ("amount", 1_000_000_000, False),
        ("amount", 12.5, False),
        ("amount", 12.0, False),
        ("amount", "1234", False),
        ("amount", True, False),
        # "`number_of_items`: 0 to 999999999 [docs]"
        ("number_of_items", 0, True),
        ("number_of_items", 999_999_999, True),
        ("number_of_items", -1, False),
        ("number_of_items", 1_000_000_000, False),
        ("number_of_items", False, False),
        ("number_of_items", 1.5, False),
        # "`currency`: ISO 4217; supported values DKK, EUR, GBP, NOK, NZD, SEK [docs]"
        *[("currency", code, True) for code in ("DKK", "EUR", "GBP", "NOK", "NZD", "SEK")],
        ("currency", "USD", False),
        ("currency", "sek", False),
        ("currency", 752, False),
    ],
)
def test_data_field_rules(emu: PrisjaktEmulator, field: str, value: object, ok: bool) -> None:
    data = {"amount": 1234, "currency": "SEK", "number_of_items": 4, field: value}
    response = post(emu, purchase(data=data))
    if ok:
        assert response.status == 201
        assert response.json()["data"][field] == value
    else:
        errors = field_errors_of(response)
        assert list(errors) == [f"data.{field}"]
        assert errors[f"data.{field}"]["value"] == value


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            {},
            {
                "event_name": {"message": "required", "value": None},
                "event_time": {"message": "required", "value": None},
                "data": {"message": "required", "value": None},
            },
            id="empty",
        ),
        pytest.param(
            purchase(extra=1),
            {"extra": {"message": "unknown field", "value": 1}},
            id="unknown-top-level",
        ),
        pytest.param(
            purchase(data=[1]),
            {"data": {"message": "must be a JSON object", "value": [1]}},
            id="data-not-object",
        ),
        pytest.param(
            purchase(data={"amount": 1, "currency": "SEK", "number_of_items": 1, "tax": 2}),
            {"data.tax": {"message": "unknown field", "value": 2}},
            id="unknown-in-data",
        ),
        pytest.param(
            purchase(data={}),
            {
                "data.amount": {"message": "required", "value": None},
                "data.number_of_items": {"message": "required", "value": None},
                "data.currency": {"message": "required", "value": None},
            },
            id="data-empty",
        ),
        pytest.param(
            [purchase()],
            {"body": {"message": "must be a JSON object", "value": [purchase()]}},
            id="not-an-object",
        ),
    ],
)
def test_unknown_or_missing_structure(
    emu: PrisjaktEmulator, body: Any, errors: dict[str, Any]
) -> None:
    assert field_errors_of(post(emu, body)) == errors


def test_409_for_a_duplicate_within_30_days(emu: PrisjaktEmulator, clock: ManualClock) -> None:
    # "If an event with the same external event ID already exists within the last 30 days,
    # the request will fail with a 409 Conflict" [docs]
    assert post(emu, purchase()).status == 201
    clock.advance(days=29, hours=23)
    again = post(emu, purchase())
    assert again.status == 409
    assert again.json()["title"] == "Event already exists"
    assert again.json()["detail"] == "An event with external event ID order-1 already exists"
    assert len(emu.events) == 1
    # Another pixel's events do not conflict.
    emu.add_pixel("pixel-2")
    assert call(emu, "POST", "/pixels/pixel-2/events", purchase()).status == 201


def test_no_409_after_30_days(emu: PrisjaktEmulator, clock: ManualClock) -> None:
    assert post(emu, purchase()).status == 201
    clock.advance(days=30)
    assert post(emu, purchase()).status == 201
    assert len(emu.events) == 2


def test_patch_after_30_days_creates_a_new_event(emu: PrisjaktEmulator, clock: ManualClock) -> None:
    post(emu, purchase())
    clock.advance(days=31)
    call(emu, "PATCH", f"/pixels/{PIXEL}/events", [purchase()])
    assert len(emu.events) == 2


def test_events_without_reference_never_conflict(emu: PrisjaktEmulator) -> None:
    body = purchase()
    del body["external_event_id"]
    assert post(emu, body).status == 201
    assert post(emu, body).status == 201
    assert [e["external_event_id"] for e in emu.events] == [None, None]


def test_click_id_of_an_unusual_signed_click_id(emu: PrisjaktEmulator) -> None:
    # "The shop treats it as opaque": any valid value gets a stable click id.
    first = post(emu, purchase(signed_click_id="opaque-click")).json()
    second = post(emu, purchase(external_event_id="o2", signed_click_id="opaque-click")).json()
    assert first["click_id"] == second["click_id"]
    assert uuid.UUID(first["click_id"])
    no_click = post(emu, purchase(external_event_id="o3", signed_click_id=None)).json()
    assert no_click["click_id"] is None


# -- Tokens -------------------------------------------------------------------


def test_oauth2_tokens_can_be_revoked_and_expired(emu: PrisjaktEmulator) -> None:
    first = get_token(emu)
    other = get_token(emu, "reader", "reader-secret")
    assert emu.revoke_tokens(CLIENT) == 1
    assert emu.tokens == [other]
    assert post(emu, purchase(), headers={"Authorization": f"Bearer {first}"}).status == 401
    reader = {"Authorization": f"Bearer {other}"}
    assert call(emu, "GET", "/clients/reader", headers=reader).status == 200
    emu.expire_tokens()
    assert emu.tokens == [other]
    assert call(emu, "GET", "/clients/reader", headers=reader).status == 401
    assert emu.revoke_tokens() == 1
    assert emu.tokens == []


# -- Rate limit ---------------------------------------------------------------


def test_rate_limit_headers_on_every_answer(emu: PrisjaktEmulator, clock: ManualClock) -> None:
    # "Answers carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
    # (milliseconds until the window resets)" [docs]
    first = post(emu, purchase())
    assert first.headers["X-RateLimit-Limit"] == "10000"
    assert first.headers["X-RateLimit-Remaining"] == "9999"
    assert first.headers["X-RateLimit-Reset"] == "3600000"
    clock.advance(seconds=1.5)
    second = post(emu, {})
    assert second.headers["X-RateLimit-Remaining"] == "9998"
    assert second.headers["X-RateLimit-Reset"] == "3598500"


def test_rate_limit_429_with_retry_after(clock: ManualClock) -> None:
    # "past the limit the API answers 429" [docs]
    emulator = make_emulator(clock, rate_limit=2, rate_window=60)
    assert post(emulator, purchase()).status == 201
    clock.advance(seconds=10)
    assert post(emulator, purchase(external_event_id="o2")).status == 201
    clock.advance(seconds=0.5)
    limited = post(emulator, purchase(external_event_id="o3"))
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "50"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"] == "49500"
    assert limited.json()["title"] == "Too Many Requests"
    assert len(emulator.events) == 2
    clock.advance(seconds=50)
    assert post(emulator, purchase(external_event_id="o3")).status == 201


def test_rate_limit_is_per_client_id(clock: ManualClock) -> None:
    # "Per client id" [docs]
    emulator = make_emulator(clock, rate_limit=1)
    assert post(emulator, purchase()).status == 201
    assert post(emulator, purchase()).status == 429
    boss = {"client-id": "boss", "client-secret": "boss-secret-1"}
    assert post(emulator, purchase(external_event_id="o2"), headers=boss).status == 201
    token = get_token(emulator)
    bearer = {"Authorization": f"Bearer {token}"}
    assert post(emulator, purchase(external_event_id="o3"), headers=bearer).status == 429
