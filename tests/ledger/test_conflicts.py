"""An order id used again for another purchase (issue 21, item 3): a conflict, never a mix.

A report of a recorded order whose amount, currency, number of items or time
differ is a *conflict*: logged at WARNING with both sets of values, kept on
the row (the admin shows it and filters by it), counted by ``pjpixel_check``
and the health summary. A skipped row is completed by a later click only when
the later report is the same purchase: a click and an amount of two purchases
are never sent together.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.attribution import SESSION_KEY
from django_pjpixel.health import delivery_health
from django_pjpixel.ledger.purchases import attach_click, track_purchase
from django_pjpixel.models import ConversionEvent
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, complete_sync
from tests.test_commands_admin import fails, run

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status


def report(**fields: Any) -> ConversionEvent:
    values: dict[str, Any] = {"order_id": "1001", "amount": 100, "number_of_items": 1, **fields}
    event = track_purchase(**values)
    assert event is not None
    return event


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("django_pjpixel") and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    "other",
    [
        {"amount": 250},
        {"currency": "NOK"},
        {"number_of_items": 3},
        {"event_time": "later"},
    ],
    ids=["amount", "currency", "items", "time"],
)
def test_a_report_of_another_purchase_is_a_conflict_staff_are_told_of(
    other: dict[str, Any], caplog: pytest.LogCaptureFixture, use_tz: bool
) -> None:
    placed = timezone.now() - timedelta(days=3)
    first = report(signed_click_id=CLICK, event_time=placed)
    if other.get("event_time") == "later":
        other = {"event_time": timezone.now()}
    again = report(**{"signed_click_id": CLICK, "event_time": placed, **other})

    assert again.pk == first.pk
    row = ConversionEvent.objects.get()
    assert (row.amount, row.currency, row.number_of_items) == (Decimal("100.00"), "SEK", 1)
    assert row.event_time == placed
    assert row.conflict is not None
    assert row.conflict_at is not None
    (message,) = warnings_of(caplog)
    assert "order 1001" in message
    assert "100.00 SEK, 1 item" in message  # the recorded purchase
    reported = row.conflict
    assert f"{reported['amount']} {reported['currency']}" in message  # and the new one


def test_the_same_purchase_reported_again_is_no_conflict(
    caplog: pytest.LogCaptureFixture, use_tz: bool
) -> None:
    placed = timezone.now() - timedelta(days=3)
    report(signed_click_id=CLICK, event_time=placed)
    report(signed_click_id=CLICK, event_time=placed, amount="100.00")
    report(signed_click_id=CLICK)  # no time given: the time is not compared
    assert ConversionEvent.objects.get().conflict is None
    assert warnings_of(caplog) == []


def test_a_skipped_row_is_never_completed_by_another_purchases_click(
    pjpixel_api: PrisjaktEmulator, inline_queue: None
) -> None:
    # Three days ago: order 1001, 100 SEK, no click. Now: a new purchase reusing the id.
    report(event_time=timezone.now() - timedelta(days=3))
    row = report(amount=250, number_of_items=2, signed_click_id=CLICK)

    assert (row.status, row.click_id, row.amount) == ("skipped", "", Decimal("100.00"))
    assert row.conflict is not None
    assert pjpixel_api.events == []


def test_a_skipped_row_is_completed_by_the_same_purchases_click(
    pjpixel_api: PrisjaktEmulator, inline_queue: None
) -> None:
    report()  # the payment's webhook first, without the visitor's click
    row = report(signed_click_id=CLICK)
    assert (row.status, row.click_id) == ("pending", CLICK)
    assert row.conflict is None


def test_attach_click_never_completes_an_old_purchase_recorded_under_the_order_id(
    use_tz: bool,
) -> None:
    report(event_time=timezone.now() - timedelta(days=3))  # skipped, three days ago
    request = RequestFactory().get("/checkout/")
    request.session = SessionStore()
    request.session[SESSION_KEY] = {
        "id": CLICK,
        "at": (timezone.now() - timedelta(days=5)).isoformat(),
    }
    attach_click(request, "1001")
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id) == ("skipped", "")


def test_conflicts_in_the_admin_list_and_row(admin_client: Client) -> None:
    report(signed_click_id=CLICK)
    report(order_id="1002", signed_click_id=CLICK)
    report(amount=999, signed_click_id=CLICK)
    url = reverse("admin:django_pjpixel_conversionevent_changelist")
    listed = admin_client.get(url, {"conflict": "yes"})
    assert [row.order_id for row in listed.context["cl"].result_list] == ["1001"]
    row = ConversionEvent.objects.get(order_id="1001")
    page = admin_client.get(reverse("admin:django_pjpixel_conversionevent_change", args=[row.pk]))
    assert page.status_code == 200
    assert "999.00 SEK" in page.content.decode()


def test_conflicts_are_counted_by_health_and_pjpixel_check(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    complete_sync()
    report(signed_click_id=CLICK)
    report(amount=999, signed_click_id=CLICK)
    health = delivery_health()
    assert health.conflicts == 1
    assert any("another purchase" in problem for problem in health.problems)
    out, _err, _message = fails("pjpixel_check", "--health")
    assert "Orders reported again as another purchase in the last 24 hours: 1" in out
    out, _err = run("pjpixel_check")
    assert "Orders reported again as another purchase: 1" in out


OTHER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_purchase_and_another_under_its_id_racing_never_mix() -> None:
    report()  # skipped: the webhook came first, without the click
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def send(**fields: Any) -> None:
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                report(**fields)
                time.sleep(0.3)  # both have read the skipped row before either commits
        except BaseException as err:
            errors.append(err)
        finally:
            connection.close()

    same = {"signed_click_id": CLICK}
    another = {"signed_click_id": OTHER, "amount": 990, "number_of_items": 4}
    with mock.patch("django_pjpixel.ledger.publisher.enqueue") as enqueue:
        threads = [threading.Thread(target=send, kwargs=f) for f in (same, another)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    row = ConversionEvent.objects.get()
    assert (row.status, row.click_id, row.amount) == ("pending", CLICK, Decimal("100.00"))
    assert row.conflict is not None
    assert row.conflict["amount"] == "990.00"
    assert enqueue.call_count == 1


def test_a_refund_of_an_order_id_in_conflict_changes_nothing_at_prisjakt(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    """The order id was used again: a refund may be of either purchase, so neither
    purchase's amount is restated with the other's refund; the row says why."""
    from django_pjpixel.ledger.restatements import CONFLICTING, restate_purchase
    from django_pjpixel.models import Restatement
    from django_pjpixel.sending.backlog import deliver_due
    from django_pjpixel.sending.delivery import deliver_event

    first = report(signed_click_id=CLICK)
    deliver_event(first.pk)
    listed = [dict(event["data"]) for event in pjpixel_api.events]
    report(amount=250, signed_click_id=CLICK)  # another purchase under the same order id

    row = restate_purchase(order_id="1001", amount=0, number_of_items=0, reason="refund")

    assert row is not None
    assert (row.status, row.skip_reason) == (Restatement.Status.UNSENDABLE, CONFLICTING)
    deliver_due()
    assert [event["data"] for event in pjpixel_api.events] == listed
    assert ConversionEvent.objects.get().restated_amount is None
