"""Retention and erasure: ``purge`` (the periodic task) and ``erase`` (a data subject's request)."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_pjpixel import tasks, times
from django_pjpixel.ledger.retention import CLICK_COLUMNS, ERASED_REASON, erase, purge
from django_pjpixel.models import ConversionEvent, OrderClick, PrisjaktEvent
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
OTHER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
NOW = datetime(2026, 6, 1, 12, tzinfo=dt_timezone.utc)
EVENTS, ORDER_CLICKS = "django_pjpixel.ConversionEvent", "django_pjpixel.OrderClick"
MIRROR = "django_pjpixel.PrisjaktEvent"


def event(order_id: str, age: timedelta, status: str = Status.SENT, **fields: Any) -> None:
    written = times.as_django(NOW - age)
    make_event(order_id, status=status, created_at=written, event_time=written, **fields)


def order_click(order_id: str, age: timedelta, click_id: str = CLICK) -> None:
    written = times.as_django(NOW - age)
    OrderClick.objects.create(
        order_id=order_id, click_id=click_id, captured_at=written, created_at=written
    )


def mirrored(order_id: str, age: timedelta, click_id: str = CLICK) -> None:
    """The event as Prisjakt's listing showed it, first synced ``age`` before ``NOW``."""
    seen = times.as_django(NOW - age)
    PrisjaktEvent.objects.create(
        id=f"pj-{order_id}",
        pixel_id="pixel",
        click_id=click_id,
        external_event_id=order_id,
        first_seen=seen,
        last_seen=seen,
    )


def mirror_clicks() -> dict[str, str]:
    return dict(PrisjaktEvent.objects.values_list("external_event_id", "click_id"))


def clicks() -> dict[str, str]:
    return dict(ConversionEvent.objects.values_list("order_id", "click_id"))


def test_the_tables_holding_click_ids() -> None:
    assert [column.label for column in CLICK_COLUMNS] == [EVENTS, ORDER_CLICKS, MIRROR]


# -- purge ---------------------------------------------------------------------------


def test_purge_erases_old_click_ids_from_rows_done_with(use_tz: bool) -> None:
    old, young = timedelta(days=91), timedelta(days=89)
    for status in (Status.SENT, Status.DUPLICATE, Status.FAILED, Status.SKIPPED, Status.DEAD):
        event(f"old-{status}", old, status)
    event("old-pending", old, Status.PENDING)  # still to be sent: its click is needed
    event("old-sending", old, Status.SENDING)
    event("young-sent", young)
    order_click("old-unpaid", old)
    order_click("young-unpaid", young)
    mirrored("old-sent", old)
    mirrored("young-sent", young)

    assert purge(now=NOW) == {EVENTS: 5, ORDER_CLICKS: 1, MIRROR: 1}

    assert {order for order, click in clicks().items() if click} == {
        "old-pending",
        "old-sending",
        "young-sent",
    }
    assert list(OrderClick.objects.values_list("order_id", flat=True)) == ["young-unpaid"]
    sent = ConversionEvent.objects.get(order_id=f"old-{Status.SENT}")
    assert (sent.status, sent.amount) == (Status.SENT, 1234)  # the row stays, for the ledger
    assert mirror_clicks() == {"old-sent": "", "young-sent": CLICK}
    assert purge(now=NOW) == {EVENTS: 0, ORDER_CLICKS: 0, MIRROR: 0}


def test_the_retention_is_a_setting(settings: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "RETENTION": timedelta(days=10)}
    event("eleven days", timedelta(days=11))
    event("nine days", timedelta(days=9))
    assert purge(now=NOW) == {EVENTS: 1, ORDER_CLICKS: 0, MIRROR: 0}
    assert clicks() == {"eleven days": "", "nine days": CLICK}


def test_purge_goes_in_batches_each_in_its_own_transaction() -> None:
    for index in range(5):
        event(f"o-{index}", timedelta(days=100))
        order_click(f"o-{index}", timedelta(days=100))
    with CaptureQueriesContext(connection) as queries:
        assert purge(now=NOW, batch_size=2) == {EVENTS: 5, ORDER_CLICKS: 5, MIRROR: 0}
    statements = [q["sql"].split()[0] for q in queries]
    # 2 + 2 + 1 rows of each table, a transaction (a savepoint, in a test) each.
    assert (statements.count("UPDATE"), statements.count("DELETE")) == (3, 3)
    assert statements.count("SAVEPOINT") == 6
    assert set(clicks().values()) == {""}
    assert not OrderClick.objects.exists()


def test_the_purge_task_runs_it(settings: Any) -> None:
    event("old", timedelta(days=400))
    assert tasks.purge.apply().get() == {EVENTS: 1, ORDER_CLICKS: 0, MIRROR: 0}
    assert clicks() == {"old": ""}


# -- erase ---------------------------------------------------------------------------


def test_erase_an_order_whatever_its_age(use_tz: bool) -> None:
    event("ORD-1", timedelta(days=1))
    event("ORD-2", timedelta(days=1))
    order_click("ORD-1", timedelta(0))
    mirrored("ORD-1", timedelta(0))
    assert erase(order_id="ORD-1") == {EVENTS: 1, ORDER_CLICKS: 1, MIRROR: 1}
    assert mirror_clicks() == {"ORD-1": ""}
    assert clicks() == {"ORD-1": "", "ORD-2": CLICK}
    assert list(OrderClick.objects.values_list("order_id", flat=True)) == []


def test_erase_a_click_wherever_it_is() -> None:
    event("ORD-1", timedelta(days=1))
    event("ORD-2", timedelta(days=1), click_id=OTHER)
    event("ORD-3", timedelta(days=200))
    order_click("ORD-4", timedelta(0))
    order_click("ORD-5", timedelta(0), click_id=OTHER)
    mirrored("ORD-6", timedelta(0))
    mirrored("ORD-7", timedelta(0), click_id=OTHER)
    assert erase(click_id=CLICK) == {EVENTS: 2, ORDER_CLICKS: 1, MIRROR: 1}
    assert mirror_clicks() == {"ORD-6": "", "ORD-7": OTHER}
    assert clicks() == {"ORD-1": "", "ORD-2": OTHER, "ORD-3": ""}
    assert list(OrderClick.objects.values_list("order_id", flat=True)) == ["ORD-5"]


def test_an_erased_order_not_sent_yet_is_never_sent(pjpixel_api: PrisjaktEmulator) -> None:
    make_event("ORD-1", status=Status.PENDING)
    make_event("ORD-2", status=Status.SENDING, leased_until=times.as_django(times.now()))
    assert erase(order_id="ORD-1") == {EVENTS: 1, ORDER_CLICKS: 0, MIRROR: 0}
    assert erase(order_id="ORD-2") == {EVENTS: 1, ORDER_CLICKS: 0, MIRROR: 0}
    deliver_due()
    assert pjpixel_api.requests == []
    for row in ConversionEvent.objects.all():
        assert (row.status, row.skip_reason, row.click_id) == (Status.SKIPPED, ERASED_REASON, "")
        assert (row.leased_until, row.lease_token, row.next_attempt_at) == (None, None, None)


def test_erase_what_nothing_holds() -> None:
    event("ORD-1", timedelta(days=1))
    assert erase(order_id="nobody") == {EVENTS: 0, ORDER_CLICKS: 0, MIRROR: 0}
    assert erase(click_id=OTHER) == {EVENTS: 0, ORDER_CLICKS: 0, MIRROR: 0}
    assert clicks() == {"ORD-1": CLICK}


@pytest.mark.parametrize("kwargs", [{}, {"order_id": "o", "click_id": CLICK}])
def test_erase_takes_one_of_order_and_click(kwargs: dict[str, str]) -> None:
    with pytest.raises(TypeError, match="one of them"):
        erase(**kwargs)
