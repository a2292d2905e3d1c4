"""Recording purchases: ``track_purchase``, ``order_completed``, ``connect_order_signal``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.dispatch import Signal
from django.test import RequestFactory
from django.utils import timezone
from kombu.exceptions import OperationalError

import django_pjpixel
from django_pjpixel import tasks
from django_pjpixel.attribution import attach_click, store_click
from django_pjpixel.backlog import deliver_due
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent
from django_pjpixel.purchases import connect_order_signal, track_purchase
from django_pjpixel.signals import order_completed
from django_pjpixel.testing.emulator import PrisjaktEmulator

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
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


# -- invalid input ---------------------------------------------------------------

INVALID = [
    ("currency", {"currency": "USD"}),
    ("currency", {"currency": 752}),
    ("amount", {"amount": -1}),
    ("amount", {"amount": "ten"}),
    ("amount", {"amount": Decimal("1e10")}),
    ("number_of_items", {"number_of_items": -1}),
    ("number_of_items", {"number_of_items": 2.5}),
    ("event_time", {"event_time": datetime(2025, 1, 1)}),  # naive
    ("event_time", {"event_time": "2025-01-01T00:00:00Z"}),
    ("order_id", {"order_id": "x" * 101}),
    ("order_id", {"order_id": ""}),
    ("order_id", {"order_id": 17}),
]


@pytest.mark.parametrize(("field", "values"), INVALID)
def test_invalid_input_raises_a_value_error_naming_the_field_in_debug(
    settings: Any, published: mock.Mock, field: str, values: dict[str, Any]
) -> None:
    settings.DEBUG = True
    with pytest.raises(ValueError, match=f"^{field}: ") as info:
        track_purchase(**purchase(**values))
    assert isinstance(info.value, InvalidInput)
    assert info.value.field == field
    assert not ConversionEvent.objects.exists()


@pytest.mark.parametrize(("field", "values"), [v for v in INVALID if v[0] != "order_id"])
def test_invalid_input_in_production_is_recorded_failed_and_logged(
    published: mock.Mock,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Capture,
    field: str,
    values: dict[str, Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event = track_purchase(**purchase(**values))
    assert event is not None
    row = ConversionEvent.objects.get()
    assert row.status == Status.FAILED
    assert row.problem_title == INVALID_PURCHASE
    assert list(row.field_errors) == [field]
    assert row.field_errors[field]["message"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert field in record.getMessage()
    published.assert_not_called()


@pytest.mark.parametrize("order_id", ["x" * 101, "", None])
def test_an_invalid_order_id_in_production_is_only_logged(
    published: mock.Mock, caplog: pytest.LogCaptureFixture, order_id: Any
) -> None:
    assert track_purchase(**purchase(order_id=order_id)) is None
    assert not ConversionEvent.objects.exists()
    assert "order_id" in caplog.text


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


def test_a_database_error_is_logged_and_the_checkout_goes_on(
    pjpixel: dict[str, Any], published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["PIXEL_ID"] = "p" * 65  # longer than the column: the database refuses it
    with transaction.atomic():
        assert track_purchase(**purchase()) is None
        Group.objects.create(name="the shop's transaction is still usable")
    assert Group.objects.count() == 1
    assert "could not record the purchase of order order-1" in caplog.text


def test_an_unexpected_error_is_logged_in_production_raised_in_debug(
    settings: Any, published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch("django_pjpixel.purchases.resolve_click", side_effect=KeyError("bug")):
        assert track_purchase(**purchase()) is None
        assert caplog.records[-1].exc_info is not None
        settings.DEBUG = True
        with pytest.raises(KeyError):
            track_purchase(**purchase())


def test_recording_the_invalid_purchase_may_fail_too(
    published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch.object(ConversionEvent.objects, "get_or_create", side_effect=OSError("db")):
        assert track_purchase(**purchase(currency="USD")) is None
    assert "could not record the invalid purchase of order order-1" in caplog.text


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


def test_order_completed_without_a_required_argument(
    settings: Any, published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    fields = purchase()
    del fields["number_of_items"]
    order_completed.send(sender=Group, **fields)
    assert "number_of_items: is required" in caplog.text
    settings.DEBUG = True
    with pytest.raises(ValueError, match="number_of_items"):
        order_completed.send(sender=Group, **fields)
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


def test_a_failing_mapper_is_logged_in_production_raised_in_debug(
    settings: Any, order_paid: Signal, published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> dict[str, Any]:
        raise AttributeError("no such field")

    connect_order_signal(order_paid, broken)
    order_paid.send(sender=Order, order=None)
    assert "order mapper" in caplog.text
    settings.DEBUG = True
    with pytest.raises(AttributeError):
        order_paid.send(sender=Order, order=None)


def test_a_mapper_returning_an_unknown_field(
    settings: Any, order_paid: Signal, published: mock.Mock, caplog: pytest.LogCaptureFixture
) -> None:
    connect_order_signal(order_paid, lambda sender, **kw: {**purchase(), "price": 1})
    order_paid.send(sender=Order)
    assert "price: is not an argument of track_purchase" in caplog.text
    assert not ConversionEvent.objects.exists()
