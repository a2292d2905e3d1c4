"""The API's field formats (``django_pjpixel.api.payloads``): bodies, times, amounts, limits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import responses
from django.test import override_settings

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.api.payloads import check_range, format_time, parse_retry_after, to_api_amount
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests import seed
from tests.helpers import CLICK, seed_payload

UTC = timezone.utc

# The seed's cURL body, with its placeholders filled in.
SEED_BODY = seed.body("order-10045", CLICK)


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


def test_seed_payload_shape() -> None:
    payload = seed_payload()

    assert payload == json.loads(SEED_BODY)
    assert list(payload) == [
        "event_name",
        "event_time",
        "external_event_id",
        "data",
        "signed_click_id",
    ]
    assert payload["event_time"] == "2025-03-13T10:45:46.987Z"
    assert payload["data"] == {"amount": 1234, "currency": "SEK", "number_of_items": 4}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2025, 3, 13, 10, 45, 46, 987000, tzinfo=UTC), "2025-03-13T10:45:46.987Z"),
        (datetime(2025, 3, 13, 10, 45, 46, 987999, tzinfo=UTC), "2025-03-13T10:45:46.987Z"),
        (datetime(2025, 3, 13, 10, 45, 46, tzinfo=UTC), "2025-03-13T10:45:46.000Z"),
        (
            datetime(2025, 7, 1, 0, 30, tzinfo=ZoneInfo("Europe/Stockholm")),
            "2025-06-30T22:30:00.000Z",
        ),
        # Issue 11: years below 1000 were sent as 1-01-01T00:00:00.000Z.
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (
            datetime(9999, 12, 31, 18, 29, tzinfo=ZoneInfo("America/New_York")),
            "9999-12-31T23:29:00.000Z",
        ),
    ],
)
def test_format_time_is_utc_with_milliseconds(value: datetime, expected: str) -> None:
    assert format_time(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=ZoneInfo("Europe/Stockholm")),
        datetime(9999, 12, 31, 23, 30, tzinfo=ZoneInfo("America/New_York")),
    ],
)
def test_times_outside_the_utc_years_are_refused(value: datetime) -> None:
    with pytest.raises(InvalidInput) as info:
        format_time(value)
    assert info.value.field == "event_time"
    with pytest.raises(InvalidInput) as info:
        check_range(value, value)
    assert info.value.field == "from"


def test_a_purchase_in_the_year_1_reaches_the_api_with_four_digits(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    early = datetime(1, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    PrisjaktClient().create_event(seed_payload(event_time=early))
    assert [e["event_time"] for e in pjpixel_api.events] == ["0001-01-01T00:00:00.123Z"]
    PrisjaktClient().list_events(start=early, end=early + timedelta(days=3))
    query = pjpixel_api.requests[-1].query
    assert (query["from"], query["to"]) == ("0001-01-01T00:00:00.123Z", "0001-01-04T00:00:00.123Z")


@pytest.mark.parametrize(
    ("amount", "units", "expected"),
    [
        (Decimal("1234.50"), "major", 1235),
        (Decimal("1234.49"), "major", 1234),
        (Decimal("1234.50"), "minor", 123450),
        (0.5, "major", 1),
        (2.5, "major", 3),
        (19.99, "minor", 1999),
        (0, "major", 0),
        (999_999_999, "major", 999_999_999),
        (Decimal("9999999.99"), "minor", 999_999_999),
    ],
)
def test_amounts(amount: object, units: str, expected: int) -> None:
    assert to_api_amount(amount, units) == expected
    assert seed_payload(amount=amount, amount_units=units)["data"]["amount"] == expected


def test_amount_units_from_settings() -> None:
    with override_settings(PJPIXEL={"AMOUNT_UNITS": "minor"}):
        assert seed_payload(amount=Decimal("1234.50"))["data"]["amount"] == 123450
    assert seed_payload(amount=Decimal("1234.50"))["data"]["amount"] == 1235


@pytest.mark.parametrize(
    "amount",
    [
        -1,
        -0.4,
        Decimal("-0.01"),
        1_000_000_000,
        Decimal("999999999.5"),
        1e30,
        "9e999998",
        float("nan"),
        float("inf"),
        Decimal("NaN"),
        Decimal("-Infinity"),
        True,
        None,
        "abc",
        [1234],
        object(),
    ],
)
def test_invalid_amounts_are_refused(amount: object) -> None:
    with pytest.raises(InvalidInput) as info:
        seed_payload(amount=amount)
    assert info.value.field == "amount"


def test_huge_minor_amount_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        to_api_amount(Decimal("9999999.995"), "minor")
    assert info.value.field == "amount"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "USD"),
        ("currency", ""),
        ("currency", None),
        ("currency", 752),
        ("number_of_items", -1),
        ("number_of_items", 1_000_000_000),
        ("number_of_items", 4.0),
        ("number_of_items", True),
        ("number_of_items", "4"),
        ("external_event_id", ""),
        ("external_event_id", "x" * 101),
        ("external_event_id", None),
        ("external_event_id", 10045),
        ("event_time", datetime(2025, 3, 13, 10, 45, 46)),
        ("signed_click_id", ""),
        ("signed_click_id", "<query-param-pjclid-sent-to-webpage>"),
        ("signed_click_id", "a b"),
        ("signed_click_id", "x" * 129),
        ("signed_click_id", 123),
        ("event_name", "refund"),
    ],
)
def test_invalid_fields_are_refused_with_their_name(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        seed_payload(**{field: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_payload_edge_values_are_accepted() -> None:
    payload = seed_payload(
        currency="eur", external_event_id="x" * 100, number_of_items=0, signed_click_id=None
    )
    assert payload["data"]["currency"] == "EUR"
    assert payload["external_event_id"] == "x" * 100
    assert payload["data"]["number_of_items"] == 0
    assert "signed_click_id" not in payload


NOW = datetime(2025, 3, 13, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 13 Mar 2025 10:02:00 GMT", 120.0),
        ("Thu, 13 Mar 2025 10:02:00 -0000", 120.0),
        ("Thu, 13 Mar 2025 11:02:00 +0100", 120.0),
        ("Thu, 13 Mar 2025 09:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),
        ("١٢٠", None),
        ("9" * 400, None),
        ("Mon, 01 Jan 99999999999999999999 00:00:00 GMT", None),
        ("Mon, 32 Jan 2025 00:00:00 GMT", None),
        ("Mon, 01 Jan 2025 00:00:00 +9999", None),
        # Bounded by the API's one-hour rate-limit window (issue 11).
        ("999999999999999999", 3600.0),
        ("3601", 3600.0),
        ("Fri, 13 Mar 2026 11:00:00 GMT", 3600.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (START, START + timedelta(days=60, seconds=1), "to"),
        (START, START + timedelta(days=61), "to"),
        (START, START - timedelta(seconds=1), "to"),
        (START.replace(tzinfo=None), START + timedelta(days=1), "from"),
        (START, (START + timedelta(days=1)).replace(tzinfo=None), "to"),
        ("2025-01-01", START, "from"),
    ],
)
def test_listing_ranges_refused_before_any_request(
    api: responses.RequestsMock,
    client: PrisjaktClient,
    start: Any,
    end: Any,
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        client.list_events(start=start, end=end)
    assert info.value.field == field
    with pytest.raises(InvalidInput):
        list(client.iter_events(start=start, end=end))
    assert len(api.calls) == 0


def test_sixty_days_exactly_is_allowed() -> None:
    check_range(START, START + timedelta(days=60))


def test_the_60_day_limit_counts_real_hours_across_a_clock_change() -> None:
    """60 local days over the autumn change are 60 days and an hour: refused, unsent."""
    stockholm = ZoneInfo("Europe/Stockholm")
    start = datetime(2026, 9, 1, tzinfo=stockholm)
    client = PrisjaktClient()
    with responses.RequestsMock() as mock:
        with pytest.raises(InvalidInput) as excinfo:
            client.list_events(start=start, end=start + timedelta(days=60))
        assert not mock.calls
    assert excinfo.value.field == "to"
