"""What a shop reports, checked where it enters (``django_pjpixel.ledger.validation``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest

from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger.validation import (
    NO_ORDER_ID,
    Purchase,
    Refused,
    event_time_of,
    invalid_values,
    order_id_text,
    stored_order_id,
    validate_purchase,
)

NOW = datetime(2025, 3, 13, 12, 0, tzinfo=dt_timezone.utc)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("ORD-1", "ORD-1"),
        (100006, "100006"),
        (-7, "-7"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ("ö" * 100, "ö" * 100),
        (10**99, "1" + "0" * 99),
    ],
)
def test_order_ids_a_shop_has(value: Any, text: str) -> None:
    assert order_id_text(value) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be a string, an int or a UUID, not NoneType"),
        (True, "must be a string, an int or a UUID, not bool"),
        (1.5, "must be a string, an int or a UUID, not float"),
        ("", "must not be empty"),
        ("x" * 101, "must be at most 100 characters"),
        (10**100, "must be at most 100 characters"),
        pytest.param(10**10_000, "must be at most 100 characters", id="10**10000"),
        ("a\x00b", "must not contain control characters (such as NUL)"),
        ("a\x7fb", "must not contain control characters (such as NUL)"),
        ("\udc80", "must not contain control characters (such as NUL)"),
    ],
)
def test_order_ids_that_cannot_be_sent(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        order_id_text(value)
    assert (info.value.field, info.value.message) == ("order_id", message)


@pytest.mark.parametrize(
    "value",
    ["x" * 500, "a\x00b", pytest.param(10**10_000, id="10**10000"), Unprintable(), 2.5],
)
def test_a_stored_order_id_is_safe_and_the_same_each_time(value: Any) -> None:
    stored = stored_order_id(value)
    assert stored == stored_order_id(value)
    assert len(stored) <= 100
    assert stored.isprintable()
    assert stored.encode()  # no lone surrogate


def test_stored_order_ids_of_different_values_differ() -> None:
    values = ["x" * 100 + "a", "x" * 100 + "b", 10**10_000, 10**10_000 + 1, 2.5, "2.5"]
    assert len({stored_order_id(value) for value in values}) == len(values)


def test_a_missing_order_id_is_stored_anew_each_time() -> None:
    first, second = stored_order_id(None), stored_order_id("")
    assert first.startswith(NO_ORDER_ID + "#")
    assert first != second


def test_a_naive_event_time_and_use_tz(use_tz: bool) -> None:
    naive = datetime(2025, 3, 13, 13, 0)  # Stockholm
    if use_tz:
        with pytest.raises(InvalidInput, match="must be an aware datetime"):
            event_time_of(naive, NOW)
    else:
        assert event_time_of(naive, NOW) == NOW


def test_an_event_time_in_the_future() -> None:
    assert event_time_of(NOW + timedelta(minutes=5), NOW) == NOW + timedelta(minutes=5)
    with pytest.raises(InvalidInput, match="is in the future: 2025-03-13T12:05:01"):
        event_time_of(NOW + timedelta(minutes=5, seconds=1), NOW)


def test_invalid_values_keep_what_can_be_kept() -> None:
    err = InvalidInput("order_id", "must be a string, an int or a UUID, not Unprintable")
    values = invalid_values(
        err,
        {"order_id": Unprintable(), "amount": "12.345", "currency": "SEK", "number_of_items": 3},
        NOW,
    )
    assert values["order_id"].startswith("<Unprintable>#")
    assert (str(values["amount"]), values["currency"], values["number_of_items"]) == (
        "12.35",
        "SEK",
        3,
    )
    assert values["field_errors"] == {
        "order_id": {"message": err.message, "value": "<Unprintable>"}
    }
    assert values["event_time"] == NOW


def test_one_pass_yields_the_purchase_as_stored_and_sent() -> None:
    reported = {
        "order_id": 1001,
        "amount": "12.345",
        "currency": None,
        "number_of_items": 3,
        "event_time": None,
    }
    purchase = validate_purchase(reported=reported, now=NOW)
    assert isinstance(purchase, Purchase)
    assert (purchase.order_id, str(purchase.amount), purchase.currency) == ("1001", "12.35", "SEK")
    assert (purchase.number_of_items, purchase.event_time) == (3, NOW)


def test_one_pass_yields_the_failed_rows_fields_naming_the_bad_field() -> None:
    reported = {
        "order_id": 1001,
        "amount": "12.345",
        "currency": "SEK",
        "number_of_items": -1,
        "event_time": None,
    }
    refusal = validate_purchase(reported=reported, now=NOW)
    assert isinstance(refusal, Refused)
    assert refusal.error.field == "number_of_items"
    assert refusal.values["order_id"] == "1001"
    assert refusal.values["field_errors"] == {
        "number_of_items": {"message": refusal.error.message, "value": "-1"}
    }
    assert refusal.values == invalid_values(refusal.error, reported, NOW)
