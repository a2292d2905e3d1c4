"""Refunds and cancellations: ``restate_purchase`` and its rules, against the API emulator.

Each flow pays an order (sent to the emulator by ``POST``), restates it, runs
``deliver_due`` and reads Prisjakt's listing back (``GET .../events``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils import timezone

import django_pjpixel
import django_pjpixel.signals
from django_pjpixel.api.client import get_client
from django_pjpixel.ledger.purchases import track_purchase
from django_pjpixel.ledger.restatements import (
    NEVER_REPORTED,
    SUPERSEDED,
    TOO_OLD,
    connect_restatement_signal,
    restate_purchase,
)
from django_pjpixel.models import INVALID_RESTATEMENT, ConversionEvent, Restatement
from django_pjpixel.sending import restating
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.sending.delivery import deliver_event
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, make_event

pytestmark = pytest.mark.django_db

Status = Restatement.Status
EventStatus = ConversionEvent.Status
Capture = Callable[..., Any]


@pytest.fixture
def pay(
    inline_queue: None, pjpixel_api: PrisjaktEmulator, django_capture_on_commit_callbacks: Capture
) -> Callable[..., ConversionEvent]:
    """Pay an order with a click: its event reaches the emulator (``POST``) at commit."""

    def paid(order_id: Any = "order-1", amount: Any = "1234.00", items: int = 4) -> ConversionEvent:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            track_purchase(
                order_id=order_id, amount=amount, number_of_items=items, signed_click_id=CLICK
            )
        event = ConversionEvent.objects.get(order_id=str(order_id))
        assert event.status == EventStatus.SENT
        return event

    return paid


def listed() -> dict[str, dict[str, Any]]:
    """Prisjakt's listing of the pixel's events (``GET .../events``), by order id."""
    now = datetime.now(dt_timezone.utc)
    events = get_client().iter_events(start=now - timedelta(days=59), end=now + timedelta(days=1))
    return {event["external_event_id"]: event["data"] for event in events}


def restated(order_id: str = "order-1") -> QuerySet[Restatement]:
    return Restatement.objects.filter(order_id=order_id).order_by("pk")


def patches(api: PrisjaktEmulator) -> list[list[dict[str, Any]]]:
    return [request.json for request in api.requests if request.method == "PATCH"]


# -- the flows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "items", "data"),
    [
        pytest.param(0, 0, {"amount": 0, "currency": "SEK", "number_of_items": 0}, id="cancel"),
        pytest.param(
            "234.00", None, {"amount": 234, "currency": "SEK", "number_of_items": 4}, id="partial"
        ),
        pytest.param(
            "617.49", 2, {"amount": 617, "currency": "SEK", "number_of_items": 2}, id="refund"
        ),
    ],
)
def test_a_refund_reaches_prisjakt_as_a_patch_of_the_event(
    use_tz: bool,
    pay: Callable[..., ConversionEvent],
    pjpixel_api: PrisjaktEmulator,
    amount: Any,
    items: int | None,
    data: dict[str, Any],
) -> None:
    event = pay(amount="1234.00", items=4)
    (created,) = pjpixel_api.events
    with transaction.atomic():  # the shop's refund
        row = restate_purchase(
            order_id="order-1", amount=amount, number_of_items=items, reason="returned"
        )
    assert row is not None
    assert row.status == Status.PENDING
    assert deliver_due() == {"restatement sent": 1}

    (body,) = patches(pjpixel_api)
    assert body == [
        {
            "event_name": "purchase",
            "event_time": created["event_time"],
            "external_event_id": "order-1",
            "data": data,
            "signed_click_id": CLICK,
        }
    ]
    assert listed() == {"order-1": data}
    assert pjpixel_api.events[0]["id"] == created["id"]  # the same event, changed
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (Status.SENT, 1, 204)
    (patched,) = (request for request in pjpixel_api.requests if request.method == "PATCH")
    assert row.request_id == patched.request_id
    assert row.sent_at is not None
    assert (row.old_amount, row.old_api_amount, row.old_number_of_items, row.old_currency) == (
        Decimal("1234.00"),
        1234,
        4,
        "SEK",
    )
    assert (row.api_amount, row.number_of_items, row.reason) == (
        data["amount"],
        data["number_of_items"],
        "returned",
    )
    event.refresh_from_db()
    assert (event.amount, event.api_amount, event.number_of_items) == (Decimal("1234.00"), 1234, 4)
    assert (event.current_api_amount, event.current_number_of_items) == (
        data["amount"],
        data["number_of_items"],
    )
    assert event.current_amount == Decimal(str(amount))
    assert event.is_restated


def test_an_event_not_yet_sent_takes_the_new_values_and_nothing_is_patched(
    use_tz: bool, pjpixel_api: PrisjaktEmulator
) -> None:
    with transaction.atomic():
        track_purchase(order_id="order-1", amount=1000, number_of_items=3, signed_click_id=CLICK)
        row = restate_purchase(order_id="order-1", amount=0, number_of_items=0, reason="cancel")
    assert row is not None
    assert row.status == Status.APPLIED
    event = ConversionEvent.objects.get()
    assert (event.status, event.current_api_amount, event.current_number_of_items) == (
        EventStatus.PENDING,
        0,
        0,
    )
    assert deliver_due() == {"sent": 1}
    assert [request.method for request in pjpixel_api.requests] == ["PATCH"]
    assert listed() == {"order-1": {"amount": 0, "currency": "SEK", "number_of_items": 0}}
    assert restated().get().status == Status.APPLIED  # never sent on its own


def test_an_event_taking_new_values_is_posted_with_them(pjpixel_api: PrisjaktEmulator) -> None:
    event = make_event(api_amount=1234)
    restate_purchase(order_id="order-1", amount="99.50", reason="partial")
    assert deliver_event(event.pk).status == "sent"
    (sent,) = pjpixel_api.events
    assert sent["data"] == {"amount": 100, "currency": "SEK", "number_of_items": 2}


def test_an_event_retried_may_be_at_prisjakt_so_it_is_patched_once_delivered(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 0.0
    event = make_event(api_amount=1234)
    pjpixel_api.latency = 5.0  # stored, then the answer comes too late
    pjpixel_api.sleep = lambda seconds: None
    pjpixel["READ_TIMEOUT"] = 0.05
    assert deliver_event(event.pk).status == "pending"
    pjpixel_api.latency = 0.0
    row = restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    assert row is not None
    assert row.status == Status.PENDING  # not taken by the event: Prisjakt has the old values
    assert deliver_due() == {"sent": 1, "restatement sent": 1}
    assert [request.method for request in pjpixel_api.requests] == ["POST", "PATCH", "PATCH"]
    assert listed() == {"order-1": {"amount": 0, "currency": "SEK", "number_of_items": 0}}


def test_a_restatement_waits_while_its_event_is_being_sent(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    event = make_event(api_amount=1234, status=EventStatus.SENDING, attempts=1)
    event.leased_until = timezone.now() + timedelta(minutes=2)
    event.save()
    restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    assert deliver_due() == {}
    assert pjpixel_api.requests == []
    ConversionEvent.objects.filter(pk=event.pk).update(status=EventStatus.DUPLICATE)
    assert deliver_due() == {"restatement sent": 1}  # a 409: Prisjakt has it


def test_an_event_claimed_as_it_is_restated_is_patched_after_it_is_sent(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    # Where the database takes no row lock (SQLite), the event may be claimed between
    # the restatement's read of it and its write: the restatement then waits its turn.
    event = make_event(api_amount=1234)
    stale = ConversionEvent.objects.get(pk=event.pk)
    ConversionEvent.objects.filter(pk=event.pk).update(status=EventStatus.SENDING, attempts=1)
    with mock.patch("django_pjpixel.ledger.restatements._event_of", return_value=stale):
        row = restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    assert row is not None
    assert row.status == Status.PENDING
    assert not ConversionEvent.objects.get().is_restated
    ConversionEvent.objects.filter(pk=event.pk).update(status=EventStatus.SENT)
    assert deliver_due() == {"restatement sent": 1}


def test_a_restatement_may_change_the_currency(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    pay()
    restate_purchase(order_id="order-1", amount=100, currency="eur", reason="re-invoiced")
    assert deliver_due() == {"restatement sent": 1}
    assert listed() == {"order-1": {"amount": 100, "currency": "EUR", "number_of_items": 4}}
    assert ConversionEvent.objects.get().current_currency == "EUR"


def test_an_event_stored_with_a_value_that_cannot_be_sent_fails_its_restatement(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    make_event(status=EventStatus.SENT, click_id="not a click id")
    restate_purchase(order_id="order-1", amount=0)
    assert deliver_due() == {"restatement failed": 1}
    row = Restatement.objects.get()
    assert list(row.field_errors) == ["signed_click_id"]
    assert pjpixel_api.requests == []


# -- several restatements of one order -------------------------------------------


def test_restatements_are_sent_in_order_and_the_last_one_wins(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    pay(amount=1000, items=4)
    restate_purchase(order_id="order-1", amount=750, number_of_items=3, reason="one returned")
    assert deliver_due() == {"restatement sent": 1}
    restate_purchase(order_id="order-1", amount=500, number_of_items=2, reason="two returned")
    restate_purchase(order_id="order-1", amount=0, number_of_items=0, reason="all returned")
    assert deliver_due() == {"restatement sent": 1}

    assert [body[0]["data"]["amount"] for body in patches(pjpixel_api)] == [750, 0]
    assert listed() == {"order-1": {"amount": 0, "currency": "SEK", "number_of_items": 0}}
    rows = list(restated().values_list("status", "old_api_amount", "api_amount", "skip_reason"))
    assert rows == [
        (Status.SENT, 1000, 750, ""),
        (Status.SUPERSEDED, 750, 500, SUPERSEDED),
        (Status.SENT, 500, 0, ""),
    ]
    assert ConversionEvent.objects.get().current_api_amount == 0


def test_an_older_restatement_due_again_is_never_sent_after_a_newer_one(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 0.0
    pay(amount=1000, items=4)
    first = restate_purchase(order_id="order-1", amount=600)
    pjpixel_api.script([503], method="PATCH")
    assert deliver_due() == {"restatement pending": 1}
    last = restate_purchase(order_id="order-1", amount=100)
    assert first is not None
    assert last is not None
    assert deliver_due() == {"restatement sent": 1}
    assert deliver_due() == {}
    assert [body[0]["data"]["amount"] for body in patches(pjpixel_api)] == [600, 100]
    first.refresh_from_db()
    assert (first.status, first.skip_reason) == (Status.SUPERSEDED, SUPERSEDED)
    assert listed()["order-1"]["amount"] == 100


def test_a_newer_restatement_waits_for_an_older_one_being_sent(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    pay()
    restate_purchase(order_id="order-1", amount=600)
    (claimed,) = restating.claim(10, timezone.now())  # in flight
    restate_purchase(order_id="order-1", amount=0)
    assert restating.claim(10, timezone.now()) == []
    payload = restating.prepare(claimed)
    assert isinstance(payload, dict)
    assert restating.record_one(claimed, restating.patch_one(payload)).status == "sent"
    assert deliver_due() == {"restatement sent": 1}
    assert [body[0]["data"]["amount"] for body in patches(pjpixel_api)] == [600, 0]


# -- what cannot be restated -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        pytest.param(
            {"status": EventStatus.SKIPPED, "skip_reason": "no click", "click_id": ""},
            "the purchase was not sent to Prisjakt (skipped: no click)",
            id="skipped",
        ),
        pytest.param(
            {"status": EventStatus.FAILED},
            "the purchase was refused, not recorded by Prisjakt (failed)",
            id="failed",
        ),
        pytest.param(
            {"status": EventStatus.DEAD},
            "sending the purchase was given up: Prisjakt may not have it",
            id="dead",
        ),
    ],
)
def test_an_order_prisjakt_does_not_have_is_not_sendable(
    pjpixel_api: PrisjaktEmulator, fields: dict[str, Any], why: str
) -> None:
    make_event(**fields)
    row = restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    assert row is not None
    assert (row.status, row.skip_reason) == (Status.UNSENDABLE, why)
    assert deliver_due() == {}
    assert pjpixel_api.requests == []


def test_an_order_never_reported_is_not_sendable(
    pjpixel_api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "django_pjpixel")
    row = restate_purchase(order_id=10041, amount=0, number_of_items=0, reason="cancelled")
    assert row is not None
    stored = Restatement.objects.get()
    assert (stored.order_id, stored.event, stored.status, stored.skip_reason) == (
        "10041",
        None,
        Status.UNSENDABLE,
        NEVER_REPORTED,
    )
    assert (stored.old_amount, stored.amount, stored.currency) == (None, Decimal("0.00"), "SEK")
    assert f"the restatement of order 10041 is not sent: {NEVER_REPORTED}" in caplog.text
    assert deliver_due() == {}


def test_an_event_whose_delivery_fails_later_leaves_its_restatement_unsendable(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    event = make_event(status=EventStatus.PENDING, attempts=1)
    row = restate_purchase(order_id="order-1", amount=0)
    assert row is not None
    assert row.status == Status.PENDING
    pjpixel_api.script([400, 400])  # the batch's PATCH, then the event's own POST
    assert deliver_due() == {"failed": 1}
    event.refresh_from_db()
    assert event.status == EventStatus.FAILED
    row.refresh_from_db()
    assert (row.status, row.skip_reason) == (
        Status.UNSENDABLE,
        "the purchase was refused, not recorded by Prisjakt (failed)",
    )


@pytest.mark.parametrize("field", ["event_time", "created_at"])
def test_an_event_older_than_30_days_is_never_restated(
    use_tz: bool, pjpixel_api: PrisjaktEmulator, field: str
) -> None:
    old = timezone.now() - timedelta(days=30)
    make_event(status=EventStatus.SENT, **{field: old})
    row = restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    assert row is not None
    assert (row.status, row.skip_reason) == (Status.UNSENDABLE, TOO_OLD)
    assert "past Prisjakt's 30-day window a PATCH may create a second event" in TOO_OLD
    assert deliver_due() == {}
    assert pjpixel_api.requests == []


def test_a_restatement_still_waiting_when_its_event_turns_30_days_old_is_not_sent(
    use_tz: bool, pjpixel_api: PrisjaktEmulator
) -> None:
    event = make_event(status=EventStatus.SENDING, event_time=timezone.now() - timedelta(days=29))
    row = restate_purchase(order_id="order-1", amount=0)
    assert row is not None
    assert row.status == Status.PENDING
    ConversionEvent.objects.filter(pk=event.pk).update(
        status=EventStatus.SENT, event_time=timezone.now() - timedelta(days=30)
    )
    assert deliver_due() == {}
    row.refresh_from_db()
    assert (row.status, row.skip_reason) == (Status.UNSENDABLE, TOO_OLD)
    assert pjpixel_api.requests == []


# -- the shop's boundary -----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        ({"amount": -100}, "amount", "must be between 0 and 999999999, got -100"),
        ({"amount": "lots"}, "amount", "'lots' is not a number"),
        ({"amount": 0, "number_of_items": 1.5}, "number_of_items", "must be a whole number"),
        ({"amount": 0, "number_of_items": -1}, "number_of_items", "must be between 0 and"),
        ({"amount": 0, "currency": "USD"}, "currency", "'USD' is not one of DKK"),
        ({"order_id": None, "amount": 0}, "order_id", "must be a string, an int or a UUID"),
    ],
)
def test_a_bad_value_is_a_failed_row_naming_the_field(
    pjpixel_api: PrisjaktEmulator,
    caplog: pytest.LogCaptureFixture,
    call: dict[str, Any],
    field: str,
    message: str,
) -> None:
    make_event(status=EventStatus.SENT)
    with transaction.atomic():
        row = restate_purchase(**{"order_id": "order-1", **call})
        Group.objects.create(name="the refund's transaction is still usable")
    assert row is not None
    stored = Restatement.objects.get()
    assert (stored.status, stored.problem_title) == (Status.FAILED, INVALID_RESTATEMENT)
    assert message in stored.field_errors[field]["message"]
    assert list(stored.field_errors) == [field]
    assert caplog.records[-1].levelno == logging.ERROR
    assert "invalid restatement of order" in caplog.text
    assert deliver_due() == {}
    assert pjpixel_api.requests == []
    if field != "order_id":
        assert stored.event == ConversionEvent.objects.get()


def test_a_bad_value_never_supersedes_a_restatement_waiting(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    pay()
    restate_purchase(order_id="order-1", amount=500)
    restate_purchase(order_id="order-1", amount=-5)
    assert deliver_due() == {"restatement sent": 1}
    assert listed()["order-1"]["amount"] == 500


def test_int_and_uuid_order_ids_are_found_by_their_str(
    pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    pay(order_id=10042)
    pay(order_id=key)
    restate_purchase(order_id=10042, amount=0, number_of_items=0)
    restate_purchase(order_id=key, amount=1, number_of_items=1)
    assert deliver_due() == {"restatement sent": 2}
    assert listed() == {
        "10042": {"amount": 0, "currency": "SEK", "number_of_items": 0},
        str(key): {"amount": 1, "currency": "SEK", "number_of_items": 1},
    }


def test_a_database_error_is_logged_and_the_refund_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_event(status=EventStatus.SENT)
    with (
        transaction.atomic(),
        mock.patch.object(Restatement, "save", side_effect=DatabaseError("down")),
    ):
        assert restate_purchase(order_id="order-1", amount=0) is None
        Group.objects.create(name="the refund's transaction is still usable")
    assert Group.objects.count() == 1
    assert "could not record the restatement of order 'order-1'" in caplog.text
    assert Restatement.objects.count() == 0


def refund_that_fails() -> None:
    with transaction.atomic():
        restate_purchase(order_id="order-1", amount=0)
        raise RuntimeError("the refund failed")


def test_a_rolled_back_refund_leaves_nothing() -> None:
    make_event(api_amount=1234)
    with pytest.raises(RuntimeError):
        refund_that_fails()
    assert Restatement.objects.count() == 0
    assert not ConversionEvent.objects.get().is_restated


def test_disabled_records_nothing(pjpixel: dict[str, Any]) -> None:
    pjpixel["ENABLED"] = False
    assert restate_purchase(order_id="order-1", amount=0) is None
    assert Restatement.objects.count() == 0


def test_the_public_names() -> None:
    assert django_pjpixel.restate_purchase is restate_purchase
    assert django_pjpixel.connect_restatement_signal is connect_restatement_signal
    assert django_pjpixel.signals.connect_restatement_signal is connect_restatement_signal


# -- the shop's own refund signal --------------------------------------------------


@pytest.fixture
def order_refunded() -> Iterator[Signal]:
    signal = Signal()
    yield signal
    signal.receivers.clear()


def refund_of(sender: Any, order: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return order


def test_connect_restatement_signal(
    order_refunded: Signal, pay: Callable[..., ConversionEvent], pjpixel_api: PrisjaktEmulator
) -> None:
    pay(order_id=7)
    connect_restatement_signal(order_refunded, refund_of)
    with transaction.atomic():
        order_refunded.send(
            sender=None, order={"order_id": 7, "amount": 0, "number_of_items": 0, "reason": "x"}
        )
    assert restated("7").get().reason == "x"
    assert deliver_due() == {"restatement sent": 1}
    assert listed()["7"]["amount"] == 0


@pytest.mark.parametrize(
    ("fields", "named", "message"),
    [
        ({"order_id": "order-1"}, "amount", "is required"),
        ({"amount": 0}, "order_id", "is required"),
        (
            {"order_id": "order-1", "amount": 0, "refund_id": 3},
            "refund_id",
            "is not an argument of restate_purchase",
        ),
        ({"order_id": "order-1", "amount": -1}, "amount", "must be between 0"),
    ],
)
def test_a_mapper_returning_bad_fields_leaves_a_failed_row(
    order_refunded: Signal,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, Any],
    named: str,
    message: str,
) -> None:
    make_event(status=EventStatus.SENT)
    connect_restatement_signal(order_refunded, refund_of)
    order_refunded.send(sender=None, order=fields)
    row = Restatement.objects.get()
    assert row.status == Status.FAILED
    assert message in row.field_errors[named]["message"]
    assert caplog.records[-1].levelno == logging.ERROR


@pytest.mark.parametrize(
    ("mapper", "logged"),
    [
        (lambda sender, **kw: 1 / 0, "the refund mapper"),
        (lambda sender, **kw: ["order-1", 0], "returned list, not a mapping"),
    ],
)
def test_a_failing_mapper_is_logged_not_raised(
    order_refunded: Signal, caplog: pytest.LogCaptureFixture, mapper: Any, logged: str
) -> None:
    connect_restatement_signal(order_refunded, mapper)
    order_refunded.send(sender=None)
    assert logged in caplog.text
    assert Restatement.objects.count() == 0


def test_a_mapper_returning_none_ignores_the_sending(order_refunded: Signal) -> None:
    connect_restatement_signal(order_refunded, lambda sender, **kw: None)
    order_refunded.send(sender=None)
    assert Restatement.objects.count() == 0


def test_recording_a_mapped_refund_may_fail_too(
    order_refunded: Signal, caplog: pytest.LogCaptureFixture
) -> None:
    connect_restatement_signal(order_refunded, refund_of)
    with mock.patch.object(QuerySet, "create", side_effect=DatabaseError("down")):
        order_refunded.send(sender=None, order={"amount": 0})
    assert "could not record the invalid restatement" in caplog.text


def test_a_mapped_refund_does_nothing_while_disabled(
    order_refunded: Signal, pjpixel: dict[str, Any]
) -> None:
    pjpixel["ENABLED"] = False
    connect_restatement_signal(order_refunded, refund_of)
    order_refunded.send(sender=None, order={"amount": 0})
    assert Restatement.objects.count() == 0
