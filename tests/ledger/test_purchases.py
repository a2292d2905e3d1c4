"""Recording purchases: ``track_purchase``, ``order_completed``, ``connect_order_signal``."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.test import Client, RequestFactory
from django.utils import timezone
from kombu.exceptions import OperationalError

import django_pjpixel
from django_pjpixel import tasks
from django_pjpixel.attribution import store_click
from django_pjpixel.ledger.purchases import attach_click, connect_order_signal, track_purchase
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.signals import order_completed
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
OTHER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
SECRET = "s3cr3t-never-shown"
Capture = Callable[..., Any]


@pytest.fixture
def published(inline_queue: None) -> Iterator[mock.Mock]:
    """``deliver_event.apply_async``, recorded in the committing thread (``inline_queue``).

    The publisher thread itself is tested in ``test_publishing``.
    """
    with mock.patch.object(tasks.deliver_event, "apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def eager(pjpixel_api: PrisjaktEmulator) -> Iterator[None]:
    """``CELERY_TASK_ALWAYS_EAGER``: each publish runs the task at once, in this thread."""
    conf = tasks.deliver_event.app.conf
    saved = conf.task_always_eager
    conf.task_always_eager = True
    try:
        yield
    finally:
        conf.task_always_eager = saved


def purchase(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "order-1",
        "amount": Decimal("1234.50"),
        "currency": "SEK",
        "number_of_items": 2,
        "signed_click_id": CLICK,
        **overrides,
    }


# -- recording -----------------------------------------------------------------


def test_a_paid_order_is_recorded_and_queued_after_commit(
    published: mock.Mock, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        event = track_purchase(**purchase())
        assert event is not None
        published.assert_not_called()  # not before the order's transaction commits
    assert len(callbacks) == 1
    published.assert_called_once()
    assert published.call_args.kwargs["args"] == (event.pk,)
    row = ConversionEvent.objects.get()
    assert row.pk == event.pk
    assert row.status == Status.PENDING
    assert (row.order_id, row.amount, row.currency, row.number_of_items) == (
        "order-1",
        Decimal("1234.50"),
        "SEK",
        2,
    )
    assert row.click_id == CLICK
    assert row.pixel_id == "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"


@pytest.mark.usefixtures("eager")
def test_through_to_prisjakt_with_an_eager_celery(
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        event = django_pjpixel.track_purchase(**purchase(amount=1234.5))
    assert event is not None
    event.refresh_from_db()
    assert event.status == Status.SENT
    (sent,) = pjpixel_api.events
    assert sent["external_event_id"] == "order-1"
    assert sent["data"] == {"amount": 1235, "currency": "SEK", "number_of_items": 2}
    for record in caplog.records:
        assert SECRET not in logging.Formatter("%(message)s").format(record) + repr(vars(record))


def test_defaults_currency_and_event_time(pjpixel: dict[str, Any], published: mock.Mock) -> None:
    pjpixel["DEFAULT_CURRENCY"] = "NOK"
    before = timezone.now()
    event = track_purchase(**purchase(currency=None))
    assert event is not None
    assert event.currency == "NOK"
    assert before <= event.event_time <= timezone.now()


def test_currency_is_normalised_and_event_time_kept(published: mock.Mock) -> None:
    when = datetime(2025, 3, 13, 10, 45, 46, tzinfo=dt_timezone.utc)
    event = track_purchase(**purchase(currency="eur", event_time=when))
    assert event is not None
    assert (event.currency, event.event_time) == ("EUR", when)


def test_disabled_records_nothing(pjpixel: dict[str, Any], published: mock.Mock) -> None:
    pjpixel["ENABLED"] = False
    assert track_purchase(**purchase()) is None
    assert not ConversionEvent.objects.exists()
    published.assert_not_called()


def test_without_a_click_the_row_is_skipped_with_the_reason(
    published: mock.Mock, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event = track_purchase(**purchase(signed_click_id=None))
    assert event is not None
    assert (event.status, event.skip_reason) == (Status.SKIPPED, "no click")
    published.assert_not_called()


def _request_with_click(click_id: str, captured_at: datetime | None = None) -> Any:
    request = RequestFactory().get("/pay/")
    request.session = SessionStore()
    store_click(request, click_id, now=captured_at)
    return request


def test_the_click_comes_from_the_session(published: mock.Mock) -> None:
    request = _request_with_click(CLICK)
    event = track_purchase(**purchase(signed_click_id=None), request=request)
    assert event is not None
    assert (event.status, event.click_id) == (Status.PENDING, CLICK)
    assert event.click_captured_at is not None


def test_a_click_outside_the_window_is_skipped(published: mock.Mock) -> None:
    old = timezone.now() - timedelta(days=31)
    request = _request_with_click(CLICK, old)
    event = track_purchase(**purchase(signed_click_id=None), request=request)
    assert event is not None
    assert event.status == Status.SKIPPED
    assert event.skip_reason == "click outside the attribution window"


def test_a_webhook_finds_the_click_attached_at_checkout(published: mock.Mock) -> None:
    attach_click(_request_with_click(CLICK), "order-1")
    event = track_purchase(**purchase(signed_click_id=None))  # no request: a webhook
    assert event is not None
    assert (event.status, event.click_id) == (Status.PENDING, CLICK)


def test_a_rolled_back_order_leaves_no_row_and_publishes_nothing(
    published: mock.Mock, django_capture_on_commit_callbacks: Capture
) -> None:
    def checkout() -> None:
        with transaction.atomic():
            Group.objects.create(name="order 1")
            track_purchase(**purchase())
            raise RuntimeError("payment declined")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        checkout()
    assert callbacks == []
    assert not ConversionEvent.objects.exists()
    published.assert_not_called()


def test_the_same_order_three_times_is_one_row(
    published: mock.Mock, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        events = [track_purchase(**purchase(amount=n)) for n in (10, 20, 30)]
    assert ConversionEvent.objects.count() == 1
    assert len({e.pk for e in events if e is not None}) == 1
    assert ConversionEvent.objects.get().amount == Decimal("10.00")
    published.assert_called_once()


# -- the shop boundary: what the shop passes never breaks its checkout ------------

INVALID = [
    ("currency", {"currency": "USD"}),
    ("currency", {"currency": 752}),
    ("currency", {"currency": "SE\x00"}),
    ("amount", {"amount": -1}),
    ("amount", {"amount": "ten"}),
    ("amount", {"amount": Decimal("1e10")}),
    ("amount", {"amount": None}),
    ("number_of_items", {"number_of_items": -1}),
    ("number_of_items", {"number_of_items": 2.5}),
    ("event_time", {"event_time": datetime(2025, 1, 1)}),  # naive
    ("event_time", {"event_time": "2025-01-01T00:00:00Z"}),
    ("order_id", {"order_id": "x" * 101}),
    ("order_id", {"order_id": ""}),
    ("order_id", {"order_id": None}),
    ("order_id", {"order_id": "ORD\x00-1"}),
    ("order_id", {"order_id": "ORD-1\r\nX-Forged: yes"}),
    ("order_id", {"order_id": "\ud800"}),  # a lone surrogate
    ("order_id", {"order_id": 10**120}),
    ("order_id", {"order_id": 100006.0}),
    ("order_id", {"order_id": True}),
]
DEBUG = pytest.mark.parametrize("debug", [False, True], ids=["DEBUG=False", "DEBUG=True"])


@DEBUG
@pytest.mark.parametrize(("field", "values"), INVALID)
def test_invalid_input_is_recorded_failed_naming_the_field_and_logged(
    settings: Any,
    published: mock.Mock,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Capture,
    debug: bool,
    field: str,
    values: dict[str, Any],
) -> None:
    settings.DEBUG = debug
    with django_capture_on_commit_callbacks(execute=True):
        event = track_purchase(**purchase(**values))
    assert event is not None
    row = ConversionEvent.objects.get()
    assert row.pk == event.pk
    assert (row.status, row.problem_title) == (Status.FAILED, INVALID_PURCHASE)
    assert list(row.field_errors) == [field]
    assert row.field_errors[field]["message"]
    assert row.problem_detail.startswith(f"{field}: ")
    assert 0 < len(row.order_id) <= 100
    assert row.order_id.isprintable()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert field in record.getMessage()
    published.assert_not_called()


@pytest.mark.parametrize(
    ("order_id", "stored"),
    [
        ("x" * 101, "x" * 87 + "#"),
        ("ORD\x00-1", "ORD\\x00-1#"),
        ("ORD-1\r\nX", "ORD-1\\r\\nX#"),
        (None, "(no order id)#"),
        ("", "(no order id)#"),
    ],
)
def test_an_order_id_that_cannot_be_sent_is_stored_safe_and_marked(
    published: mock.Mock, order_id: Any, stored: str
) -> None:
    track_purchase(**purchase(order_id=order_id))
    row = ConversionEvent.objects.get()
    assert row.order_id.startswith(stored)
    assert len(row.order_id) == len(stored) + 12
    assert row.field_errors["order_id"]["value"] == repr(order_id)


def test_stored_order_ids_stay_unique(published: mock.Mock) -> None:
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    for order_id in (long_a, long_b, long_a, None, None):
        track_purchase(**purchase(order_id=order_id))
    # The two long ids are two orders, the same one twice is one; each
    # report without an order id is a row of its own.
    assert ConversionEvent.objects.count() == 4
    assert ConversionEvent.objects.filter(order_id__startswith="x" * 87).count() == 2


@DEBUG
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize(
    "order_id",
    [100006, uuid.UUID("b6f3f2d0-6f3e-4a47-9a49-6d1c7a5b8e21")],
    ids=["int (django-oscar's order.number)", "UUID"],
)
def test_int_and_uuid_order_ids_are_sent_as_their_str(
    settings: Any,
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
    debug: bool,
    order_id: Any,
) -> None:
    settings.DEBUG = debug
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **purchase(order_id=order_id))
    row = ConversionEvent.objects.get()
    assert (row.order_id, row.status) == (str(order_id), Status.SENT)
    assert [body["external_event_id"] for body in posted(pjpixel_api)] == [str(order_id)]


@pytest.mark.usefixtures("eager")
def test_a_click_attached_to_an_int_order_id_is_found_by_the_webhook(
    pjpixel_api: PrisjaktEmulator, django_capture_on_commit_callbacks: Capture
) -> None:
    attach_click(_request_with_click(CLICK), 100006)
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **purchase(order_id=100006, signed_click_id=None))
    assert ConversionEvent.objects.get().status == Status.SENT
    assert [body["signed_click_id"] for body in posted(pjpixel_api)] == [CLICK]


def test_a_wrong_call_is_still_a_type_error(published: mock.Mock) -> None:
    with pytest.raises(TypeError, match="number_of_items"):
        track_purchase(order_id="order-1", amount=1)  # type: ignore[call-arg]
    assert not ConversionEvent.objects.exists()


def test_a_later_valid_call_replaces_the_invalid_record(
    published: mock.Mock, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        track_purchase(**purchase(currency="USD"))
        event = track_purchase(**purchase())
    assert event is not None
    row = ConversionEvent.objects.get()
    assert (row.status, row.currency, row.problem_title, row.field_errors) == (
        Status.PENDING,
        "SEK",
        "",
        {},
    )
    published.assert_called_once()


@pytest.mark.postgres  # SQLite does not enforce a column's length
def test_a_database_error_is_logged_and_the_checkout_goes_on(
    pjpixel: dict[str, Any], published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["PIXEL_ID"] = "p" * 65  # longer than the column: the database refuses it
    with transaction.atomic():
        assert track_purchase(**purchase()) is None
        Group.objects.create(name="the shop's transaction is still usable")
    assert Group.objects.count() == 1
    assert "could not record the purchase of order 'order-1'" in caplog.text


@DEBUG
def test_an_unexpected_error_is_logged_not_raised(
    settings: Any, published: mock.Mock, caplog: pytest.LogCaptureFixture, debug: bool
) -> None:
    settings.DEBUG = debug
    with mock.patch("django_pjpixel.ledger.purchases.resolve_click", side_effect=KeyError("bug")):
        assert track_purchase(**purchase()) is None
    assert caplog.records[-1].exc_info is not None


@pytest.mark.postgres  # SQLite does not enforce a column's length
def test_recording_the_invalid_purchase_may_fail_too(
    pjpixel: dict[str, Any], published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["PIXEL_ID"] = "p" * 65  # longer than the column: the database refuses it
    with transaction.atomic():
        assert track_purchase(**purchase(currency="USD")) is None
        Group.objects.create(name="the shop's transaction is still usable")
    assert "could not record the purchase of order 'order-1'" in caplog.text


# -- publishing from the checkout --------------------------------------------------


def test_a_broker_that_is_down_does_not_break_the_checkout(
    inline_queue: None,
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        mock.patch.object(
            tasks.deliver_event, "apply_async", side_effect=OperationalError("refused")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = track_purchase(**purchase())
    assert event is not None
    row = ConversionEvent.objects.get()
    assert row.status == Status.PENDING
    assert row.next_attempt_at is None  # due as it is: a failed publish writes nothing
    assert "deliver_due will send it" in caplog.text
    assert deliver_due() == {"sent": 1}
    assert [e["external_event_id"] for e in pjpixel_api.events] == ["order-1"]


# -- order_completed and the shop's own signal -----------------------------------


def test_order_completed_records_the_purchase(published: mock.Mock) -> None:
    responses = order_completed.send(sender=Group, **purchase(), unrelated="ignored")
    ((_, event),) = [r for r in responses if r[1] is not None]
    assert isinstance(event, ConversionEvent)
    assert ConversionEvent.objects.get().order_id == "order-1"


@DEBUG
@pytest.mark.parametrize("missing", ["number_of_items", "order_id"])
def test_order_completed_without_a_required_argument_is_a_failed_row(
    settings: Any, published: mock.Mock, caplog: pytest.LogCaptureFixture, debug: bool, missing: str
) -> None:
    settings.DEBUG = debug
    fields = purchase()
    del fields[missing]
    order_completed.send(sender=Group, **fields)
    assert f"{missing}: is required" in caplog.text
    row = ConversionEvent.objects.get()
    assert (row.status, row.field_errors) == (Status.FAILED, {missing: {"message": "is required"}})
    assert row.order_id.startswith("order-1" if missing != "order_id" else "(no order id)#")


def test_order_completed_does_nothing_while_disabled(
    pjpixel: dict[str, Any], published: mock.Mock
) -> None:
    pjpixel["ENABLED"] = False
    order_completed.send(sender=Group, order_id="order-1")
    assert not ConversionEvent.objects.exists()


class Order:
    def __init__(self, pk: int, total: Decimal, lines: int, click: str | None) -> None:
        self.pk, self.total, self.lines, self.click = pk, total, lines, click


@pytest.fixture
def order_paid() -> Iterator[Signal]:
    """A shop's own signal: ``order_paid.send(sender=Order, order=order)``."""
    signal = Signal()
    yield signal
    signal.receivers.clear()


def map_order(sender: Any, order: Order, **kwargs: Any) -> dict[str, Any] | None:
    if order.total == 0:
        return None  # free orders are not reported
    return {
        "order_id": f"shop-{order.pk}",
        "amount": order.total,
        "number_of_items": order.lines,
        "signed_click_id": order.click,
    }


def test_connect_order_signal(order_paid: Signal, published: mock.Mock) -> None:
    receiver = connect_order_signal(order_paid, map_order, sender=Order, dispatch_uid="shop")
    connect_order_signal(order_paid, map_order, sender=Order, dispatch_uid="shop")  # no-op
    order_paid.send(sender=Order, order=Order(7, Decimal("499"), 3, CLICK))
    order_paid.send(sender=Order, order=Order(8, Decimal("0"), 1, CLICK))
    order_paid.send(sender=object, order=Order(9, Decimal("1"), 1, CLICK))  # another sender
    row = ConversionEvent.objects.get()
    assert (row.order_id, row.amount, row.number_of_items, row.click_id) == (
        "shop-7",
        Decimal("499.00"),
        3,
        CLICK,
    )
    assert callable(receiver)


@DEBUG
def test_a_failing_mapper_is_logged_not_raised(
    settings: Any,
    order_paid: Signal,
    published: mock.Mock,
    caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    settings.DEBUG = debug

    def broken(sender: Any, **kwargs: Any) -> dict[str, Any]:
        raise AttributeError("no such field")

    connect_order_signal(order_paid, broken)
    order_paid.send(sender=Order, order=None)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "order mapper" in record.getMessage()
    assert record.exc_info is not None


@DEBUG
@pytest.mark.parametrize(
    ("mapped", "field"),
    [
        ({**purchase(), "price": 1}, "price"),
        ({**purchase(), 7: 1}, "7"),
        ({**purchase(order_id=100006.5)}, "order_id"),
        ({"order_id": 100006}, "amount"),
    ],
    ids=["unknown field", "not a name", "bad order id", "missing field"],
)
def test_a_mapper_returning_bad_fields_leaves_a_failed_row(
    settings: Any,
    order_paid: Signal,
    published: mock.Mock,
    caplog: pytest.LogCaptureFixture,
    debug: bool,
    mapped: dict[Any, Any],
    field: str,
) -> None:
    settings.DEBUG = debug
    connect_order_signal(order_paid, lambda sender, **kw: mapped)
    order_paid.send(sender=Order)
    row = ConversionEvent.objects.get()
    assert (row.status, list(row.field_errors)) == (Status.FAILED, [field])
    assert f"{field}: " in caplog.text


@DEBUG
def test_a_mapper_returning_no_mapping_is_logged(
    settings: Any,
    order_paid: Signal,
    published: mock.Mock,
    caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    settings.DEBUG = debug
    connect_order_signal(order_paid, lambda sender, **kw: ["order-1", 10, 1])
    order_paid.send(sender=Order)
    assert "returned list, not a mapping" in caplog.text
    assert not ConversionEvent.objects.exists()


def test_a_failure_recording_a_mapped_purchase_is_logged(
    order_paid: Signal, published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    connect_order_signal(order_paid, lambda sender, **kw: {"order_id": "order-1"})
    with mock.patch.object(QuerySet, "get_or_create", side_effect=DatabaseError("down")):
        order_paid.send(sender=Order)
    assert "could not record the invalid purchase" in caplog.text


# -- USE_TZ true or false: land, pay, sent ------------------------------------------


def land(client: Client, click_id: str = CLICK) -> str:
    """A visitor arrives from Prisjakt (through the middleware); their session key."""
    assert client.get(f"/admin/login/?pjclid={click_id}").status_code == 200
    return client.session.session_key or ""


def visitor_request(session_key: str) -> Any:
    """A later request of the same visitor (the thank-you page, the checkout)."""
    request = RequestFactory().post("/pay/")
    request.session = SessionStore(session_key)
    return request


def posted(api: PrisjaktEmulator) -> list[Any]:
    return [r.json for r in api.requests if r.method == "POST"]


@pytest.fixture
def visitor(client: Client) -> Any:
    """A request of a visitor who landed from Prisjakt with ``CLICK``."""
    return visitor_request(land(client))


@pytest.mark.usefixtures("eager")
def test_land_pay_sent_with_use_tz_true_or_false(
    use_tz: bool,
    visitor: Any,
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    before = datetime.now(dt_timezone.utc).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        track_purchase(**purchase(order_id="ORD-1", signed_click_id=None), request=visitor)
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id, row.problem_detail) == (Status.SENT, CLICK, "")
    (body,) = posted(pjpixel_api)
    assert body["signed_click_id"] == CLICK
    sent_at = datetime.strptime(body["event_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert before <= sent_at.replace(tzinfo=dt_timezone.utc) <= datetime.now(dt_timezone.utc)


@pytest.mark.usefixtures("eager")
def test_a_webhook_finds_the_attached_click_with_use_tz_true_or_false(
    use_tz: bool,
    visitor: Any,
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    attach_click(visitor, "ORD-2")
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **purchase(order_id="ORD-2", signed_click_id=None))
    assert ConversionEvent.objects.get().status == Status.SENT
    assert [body["external_event_id"] for body in posted(pjpixel_api)] == ["ORD-2"]


@pytest.mark.usefixtures("eager")
def test_a_naive_event_time_without_use_tz_is_in_time_zone(
    settings: Any, pjpixel_api: PrisjaktEmulator, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.USE_TZ = False
    paid = datetime(2025, 3, 13, 11, 45, 46, 987000)  # Stockholm, UTC+1 in March
    with django_capture_on_commit_callbacks(execute=True):
        track_purchase(**purchase(event_time=paid))
    row = ConversionEvent.objects.get()
    assert (row.status, row.event_time) == (Status.SENT, paid)
    (body,) = posted(pjpixel_api)
    assert body["event_time"] == "2025-03-13T10:45:46.987Z"


def test_a_naive_event_time_with_use_tz_is_an_error_naming_the_field(
    published: mock.Mock,
) -> None:
    track_purchase(**purchase(event_time=datetime(2025, 3, 13, 11, 45)))
    row = ConversionEvent.objects.get()
    assert (row.status, list(row.field_errors)) == (Status.FAILED, ["event_time"])
    assert row.problem_detail == "event_time: must be an aware datetime (with a time zone)"


# -- the window runs from the click to the purchase -----------------------------------


@pytest.mark.usefixtures("eager")
def test_a_click_29_days_before_the_payment_reported_later_is_attributed(
    use_tz: bool, pjpixel_api: PrisjaktEmulator, django_capture_on_commit_callbacks: Capture
) -> None:
    now = datetime.now(dt_timezone.utc)
    clicked, paid = now - timedelta(days=31), now - timedelta(days=2)
    attach_click(_request_with_click(CLICK, clicked), "ORD-5", now=paid)  # at checkout
    with django_capture_on_commit_callbacks(execute=True):
        track_purchase(**purchase(order_id="ORD-5", signed_click_id=None, event_time=paid))
    row = ConversionEvent.objects.get()
    assert (row.status, row.skip_reason, row.click_id) == (Status.SENT, "", CLICK)
    (body,) = posted(pjpixel_api)
    assert (
        body["event_time"]
        == paid.strftime("%Y-%m-%dT%H:%M:%S.") + f"{paid.microsecond // 1000:03d}Z"
    )


@pytest.mark.parametrize(
    ("clicked", "paid", "status", "reason"),
    [
        (timedelta(days=31), timedelta(days=2), Status.PENDING, ""),
        (
            timedelta(days=40),
            timedelta(days=10, seconds=-1),
            Status.SKIPPED,
            "click outside the attribution window",
        ),
        (timedelta(hours=1), timedelta(hours=2), Status.SKIPPED, "click after the purchase"),
        (timedelta(hours=1), timedelta(hours=1, minutes=4), Status.PENDING, ""),  # clock skew
    ],
    ids=["29 days", "30 days and a second", "paid before the click", "within the skew"],
)
def test_the_window_is_measured_from_the_click_to_the_event_time(
    published: mock.Mock, clicked: timedelta, paid: timedelta, status: str, reason: str
) -> None:
    now = timezone.now()
    request = _request_with_click(CLICK, now - clicked)
    track_purchase(**purchase(signed_click_id=None, event_time=now - paid), request=request)
    row = ConversionEvent.objects.get()
    assert (row.status, row.skip_reason) == (status, reason)


@pytest.mark.parametrize(
    ("ahead", "status"),
    [(timedelta(minutes=4), Status.PENDING), (timedelta(hours=1), Status.FAILED)],
)
def test_an_event_time_in_the_future_beyond_the_clock_skew_fails(
    published: mock.Mock, ahead: timedelta, status: str
) -> None:
    track_purchase(**purchase(event_time=timezone.now() + ahead))
    row = ConversionEvent.objects.get()
    assert row.status == status
    if status == Status.FAILED:
        assert list(row.field_errors) == ["event_time"]
        assert "in the future" in row.problem_detail


# -- a skipped row takes a click that comes later ------------------------------------


@pytest.mark.usefixtures("eager")
def test_a_webhook_without_a_click_then_the_thank_you_page_with_it_sends_once(
    use_tz: bool,
    visitor: Any,
    pjpixel_api: PrisjaktEmulator,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    order = purchase(order_id="ORD-W2", signed_click_id=None)
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **order)  # the payment webhook: no session
    row = ConversionEvent.objects.get()
    assert (row.status, row.skip_reason) == (Status.SKIPPED, "no click")
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **order, request=visitor)  # the thank-you page
    with django_capture_on_commit_callbacks(execute=True):
        order_completed.send(sender=Group, **order, request=visitor)  # reloaded
    row.refresh_from_db()
    assert (row.status, row.skip_reason, row.click_id) == (Status.SENT, "", CLICK)
    assert row.click_captured_at is not None
    assert [(b["external_event_id"], b["signed_click_id"]) for b in posted(pjpixel_api)] == [
        ("ORD-W2", CLICK)
    ]


@pytest.mark.usefixtures("eager")
def test_a_click_attached_after_the_skipped_report_sends_it_once(
    pjpixel_api: PrisjaktEmulator, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        track_purchase(**purchase(order_id="ORD-W3", signed_click_id=None))
    assert ConversionEvent.objects.get().status == Status.SKIPPED
    request = _request_with_click(CLICK)
    with django_capture_on_commit_callbacks(execute=True):
        assert attach_click(request, "ORD-W3") is not None
    with django_capture_on_commit_callbacks(execute=True):
        attach_click(request, "ORD-W3")
    assert ConversionEvent.objects.get().status == Status.SENT
    assert [b["external_event_id"] for b in posted(pjpixel_api)] == ["ORD-W3"]


def test_a_later_click_outside_the_window_of_the_purchase_changes_nothing(
    published: mock.Mock,
) -> None:
    paid = timezone.now() - timedelta(days=2)
    track_purchase(**purchase(signed_click_id=None, event_time=paid))
    clicked_after = _request_with_click(CLICK, timezone.now() - timedelta(days=1))
    track_purchase(**purchase(signed_click_id=None), request=clicked_after)
    attach_click(clicked_after, "order-1")
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id) == (Status.SKIPPED, "")
    published.assert_not_called()


@pytest.mark.parametrize(
    "fields",
    [
        {"status": Status.SENT},
        {"status": Status.SENDING},
        {"status": Status.FAILED, "last_status_code": 400},
        {"status": Status.DUPLICATE},
        {"status": Status.DEAD},
        {"status": Status.SKIPPED, "skip_reason": "cancelled by a pre_send receiver"},
    ],
    ids=lambda fields: str(fields["status"]) + (" by pre_send" if "skip_reason" in fields else ""),
)
def test_a_row_sent_being_sent_or_refused_never_changes(
    published: mock.Mock, fields: dict[str, Any]
) -> None:
    event = make_event("order-1", click_id=OTHER, **fields)
    track_purchase(**purchase(), request=_request_with_click(CLICK))
    attach_click(_request_with_click(CLICK), "order-1")
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id, row.updated_at) == (event.status, OTHER, event.updated_at)
    published.assert_not_called()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reports_turn_a_skipped_row_once() -> None:
    track_purchase(**purchase(signed_click_id=None))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def report() -> None:
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                track_purchase(**purchase())  # with a usable click
                time.sleep(0.3)  # both have read the skipped row before either commits
        except BaseException as err:
            errors.append(err)
        finally:
            connection.close()

    with mock.patch("django_pjpixel.ledger.publisher.enqueue") as enqueue:
        threads = [threading.Thread(target=report) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert enqueue.call_count == 1
    assert ConversionEvent.objects.get().status == Status.PENDING
