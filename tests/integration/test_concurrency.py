"""Concurrent senders over the same rows on PostgreSQL and MariaDB: each row sent once.

Four ``deliver_due`` runs start at the same moment over 1,000 due rows; the
claim (``SELECT ... FOR UPDATE SKIP LOCKED`` plus a lease; MariaDB has it
from 10.6) must hand every row to one sender only, and no sender may wait on
another's locks (no deadlock). Four threads call ``deliver_event`` for the
same 300 rows at once (a message delivered twice, a retry racing
``deliver_due``): the single-row claim, one conditional ``UPDATE`` (with
``RETURNING`` on PostgreSQL, read back by its lease token on MariaDB), must
let one of them through per row. Restatements take the same claims: each is
sent once, and an order's restatements reach Prisjakt in the order they were
made, however the shop's writes and the senders interleave. On MariaDB the
outbox's models are routed to the ``mariadb`` alias of the test settings.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections

from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.sending.delivery import deliver_event
from django_pjpixel.sending.outbox import NOT_DUE
from tests.integration.faults_harness import due_rows
from tests.integration.harness import RecordingEmulator, event_counts, times_sent

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROWS = 1_000
SENDERS = 4
DEADLINE = 120.0  # seconds; far above the few seconds this takes, so a hang means a deadlock
ALIASES = ["default", *(["mariadb"] if "mariadb" in django_settings.DATABASES else [])]
DATABASES = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


class OutboxOnMariaDB:
    """Routes django_pjpixel's models to the ``mariadb`` alias."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return "mariadb" if model._meta.app_label == "django_pjpixel" else None

    db_for_write = db_for_read


@pytest.fixture(params=DATABASES)
def claims_db(request: pytest.FixtureRequest, settings: Any) -> str:
    """The database the outbox's rows live in for this test."""
    if request.param == "mariadb":
        settings.DATABASE_ROUTERS = [f"{__name__}.OutboxOnMariaDB"]
        with connections["mariadb"].cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            print(f"\n[claims] MariaDB {cursor.fetchone()[0]}")
        assert connections["mariadb"].features.has_select_for_update_skip_locked
    return str(request.param)


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_four_concurrent_deliver_due_runs_send_each_row_once(
    claims_db: str, emulator: RecordingEmulator, pjpixel_settings: dict[str, Any]
) -> None:
    due_rows(ROWS, "due")
    barrier = threading.Barrier(SENDERS)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def sender(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = deliver_due()
        except BaseException as err:
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(SENDERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, DEADLINE - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a deliver_due run never finished"
    assert errors == []

    calls = emulator.calls
    sent = times_sent(emulator)
    methods = Counter(call.method for call in calls)
    statuses = Counter(call.status for call in calls)
    print(
        f"\n[scenario 6, {claims_db}] {SENDERS} deliver_due runs over {ROWS} due rows: "
        f"{elapsed:.2f} s; each run answered {[results.get(i) for i in range(SENDERS)]}; calls "
        f"{dict(methods)} with statuses {dict(statuses)}"
    )
    assert len(sent) == ROWS
    assert set(sent.values()) == {1}, {k: n for k, n in sent.items() if n != 1}
    assert statuses[409] == 0
    assert len(event_counts(emulator)) == ROWS
    rows = ConversionEvent.objects.all()
    assert dict(Counter(rows.values_list("status", flat=True))) == {"sent": ROWS}
    assert set(rows.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_four_threads_delivering_the_same_rows_send_each_once(
    claims_db: str, emulator: RecordingEmulator, pjpixel_settings: dict[str, Any]
) -> None:
    pks = [row.pk for row in due_rows(300, "due")]
    barrier = threading.Barrier(SENDERS)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def sender(seed: int) -> None:
        order = pks[:]
        random.Random(seed).shuffle(order)
        try:
            barrier.wait(timeout=10)
            for pk in order:
                status = deliver_event(pk).status
                with lock:
                    outcomes[status] += 1
        except BaseException as err:
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a sender never finished"
    assert errors == []
    print(
        f"\n[same rows, {claims_db}] {SENDERS} threads x {len(pks)} rows: outcomes {dict(outcomes)}"
    )
    assert outcomes == {"sent": len(pks), NOT_DUE: (SENDERS - 1) * len(pks)}
    sent = times_sent(emulator)
    assert len(sent) == len(pks)
    assert set(sent.values()) == {1}
    rows = ConversionEvent.objects.all()
    assert set(rows.values_list("status", "attempts")) == {("sent", 1)}


def restated_at_prisjakt(emulator: RecordingEmulator, count: int, prefix: str) -> list[str]:
    """``count`` purchases Prisjakt has (sent, and in the emulator); their order ids."""
    rows = due_rows(count, prefix)
    ConversionEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
        status="sent", attempts=1, next_attempt_at=None
    )
    for row in rows:
        emulator.add_event(external_event_id=row.order_id, amount=100, signed_click_id=row.click_id)
    return [row.order_id for row in rows]


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_four_concurrent_deliver_due_runs_send_each_restatement_once(
    claims_db: str, emulator: RecordingEmulator, pjpixel_settings: dict[str, Any]
) -> None:
    orders = restated_at_prisjakt(emulator, 400, "refund")
    for order_id in orders:
        restate_purchase(order_id=order_id, amount=0, number_of_items=0)
    barrier = threading.Barrier(SENDERS)
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            barrier.wait(timeout=10)
            deliver_due()
        except BaseException as err:
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a deliver_due run never finished"
    assert errors == []
    sent = times_sent(emulator)
    assert sent == Counter(dict.fromkeys(orders, 1))
    assert {event["data"]["amount"] for event in emulator.events} == {0}
    assert event_counts(emulator) == dict.fromkeys(orders, 1)
    assert set(Restatement.objects.values_list("status", "attempts")) == {("sent", 1)}


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_refunds_racing_deliver_due_end_at_each_order_s_last_restatement(
    claims_db: str, emulator: RecordingEmulator, pjpixel_settings: dict[str, Any]
) -> None:
    """Shops restate while senders run: Prisjakt gets each order's restatements in order."""
    orders = restated_at_prisjakt(emulator, 40, "race")
    writing = threading.Event()
    writing.set()
    errors: list[BaseException] = []

    def shop(seed: int) -> None:
        try:
            for step in range(5):
                for order_id in random.Random(seed + step).sample(orders, len(orders)):
                    restate_purchase(order_id=order_id, amount=seed * 100 + step)
        except BaseException as err:
            errors.append(err)
        finally:
            connections.close_all()

    def sender() -> None:
        try:
            while writing.is_set():
                deliver_due()
        except BaseException as err:
            errors.append(err)
        finally:
            connections.close_all()

    shops = [threading.Thread(target=shop, args=(i + 1,), daemon=True) for i in range(3)]
    senders = [threading.Thread(target=sender, daemon=True) for _ in range(2)]
    for thread in shops + senders:
        thread.start()
    for thread in shops:
        thread.join(DEADLINE)
    writing.clear()
    for thread in senders:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in shops + senders)
    assert errors == []
    deliver_due()

    rows = Restatement.objects.order_by("pk")
    assert rows.count() == 3 * 5 * len(orders)  # every refund recorded, none lost to a lock
    last = {row.order_id: row for row in rows}
    assert {row.status for row in last.values()} == {"sent"}
    listed = {event["external_event_id"]: event["data"]["amount"] for event in emulator.events}
    assert listed == {order_id: row.api_amount for order_id, row in last.items()}
    pk_of = {(row.order_id, row.api_amount): row.pk for row in rows}
    for order_id in orders:  # the PATCHes of one order follow the order of its restatements
        patched = [
            pk_of[order_id, event["data"]["amount"]]
            for request in emulator.requests
            if request.method == "PATCH" and request.status == 204
            for event in request.json
            if event["external_event_id"] == order_id
        ]
        assert patched == sorted(patched), order_id
        assert patched[-1] == last[order_id].pk
