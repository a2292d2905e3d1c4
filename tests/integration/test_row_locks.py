"""Each locking statement of the outbox touches the rows it names, and no other.

Two senders hold disjoint rows: one records its chunk's outcome while the
other claims, records, releases or renews its own, or a refund supersedes. On
MariaDB an ``UPDATE`` or ``SELECT ... FOR UPDATE`` locks every row its plan
reads, and a plan through the ``(status, ...)`` indexes reads every pending or
sending row, the other sender's too: each then waits for the other, a
deadlock (seen on four concurrent ``deliver_due`` runs, 1 run in 12 under
load). Here the other sender's rows stay locked while each statement runs
with a lock wait of 1 second: it must not wait. Before ``keyed.lock`` the
claim and the restatements' outcome waited on MariaDB; the other statements'
plans happened to read by key, and these tests keep them so. PostgreSQL
locks only the rows a statement returns or changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from django_pjpixel.ledger import keyed
from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending import restating
from django_pjpixel.sending.backlog import _Lease
from django_pjpixel.sending.outbox import claim_due, release, write_chunk
from tests.integration.faults_harness import due_rows
from tests.integration.test_concurrency import ALIASES, claims_db, restated_at_prisjakt

pytestmark = [pytest.mark.services, pytest.mark.slow]

__all__ = ["claims_db"]  # the fixture, for pytest
HELD = 200  # the other sender's rows
TIMEOUT = 30.0


class Holder:
    """Another sender: a transaction holding locks on ``pks`` of ``model`` until released."""

    def __init__(self, model: type[Any], pks: list[int]) -> None:
        self.model, self.pks = model, pks
        self.holding, self.done = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        try:
            alias = router.db_for_write(self.model)
            with transaction.atomic(using=alias):
                for pk in self.pks:  # one by key: exactly these rows
                    self.model._default_manager.using(alias).select_for_update().get(pk=pk)
                self.holding.set()
                self.done.wait(TIMEOUT)
        except BaseException as err:
            self.errors.append(err)
        finally:
            connections.close_all()

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.holding.wait(TIMEOUT), self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(TIMEOUT)
        assert self.errors == []


@pytest.fixture
def short_lock_waits(claims_db: str) -> Iterator[None]:
    """This thread's statements give up after 1 s of waiting for a row lock."""
    alias = "mariadb" if claims_db == "mariadb" else "default"
    name, short, usual = (
        ("innodb_lock_wait_timeout", "1", "DEFAULT")
        if claims_db == "mariadb"
        else ("lock_timeout", "'1s'", "DEFAULT")
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SET SESSION {name} = {short}")
    yield
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SET SESSION {name} = {usual}")


def leased(model: type[Any], pks: list[int]) -> list[Any]:
    rows: list[Any] = claim_due(len(pks), only=Q(pk__in=pks), model=model)
    assert sorted(row.pk for row in rows) == sorted(pks)
    return rows


def run_beside(held: list[int], model: type[Any], action: Callable[[], Any]) -> Any:
    with Holder(model, held):
        return action()


@pytest.fixture
def purchases(claims_db: str) -> tuple[list[int], list[int]]:
    """The other sender's leased purchases, and this sender's due ones."""
    rows = due_rows(2 * HELD, "keys")
    theirs, mine = [row.pk for row in rows[:HELD]], [row.pk for row in rows[HELD:]]
    leased(ConversionEvent, theirs)
    return theirs, mine


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_a_claim_locks_its_own_rows_only(
    purchases: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = purchases
    run_beside(theirs, ConversionEvent, lambda: leased(ConversionEvent, mine))
    assert status_of(ConversionEvent, mine) == {"sending"}


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_an_outcome_locks_its_own_rows_only(
    purchases: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = purchases
    claimed = leased(ConversionEvent, mine)
    written = run_beside(theirs, ConversionEvent, lambda: write_chunk(claimed, TimeoutError()))
    assert sum(len(group.rows) for group in written) == HELD
    assert status_of(ConversionEvent, mine) == {"pending"}
    assert status_of(ConversionEvent, theirs) == {"sending"}  # the other sender's, untouched


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_a_lease_renewal_locks_its_own_rows_only(
    purchases: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = purchases
    lease = _Lease(leased(ConversionEvent, mine))
    lease.until = timezone.now()  # due for renewal
    run_beside(theirs, ConversionEvent, lease.keep)
    assert ConversionEvent.objects.get(pk=mine[0]).leased_until == lease.until


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_a_release_locks_its_own_rows_only(
    purchases: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = purchases
    claimed = leased(ConversionEvent, mine)
    run_beside(theirs, ConversionEvent, lambda: release(claimed, timezone.now()))
    assert status_of(ConversionEvent, mine) == {"pending"}


@pytest.fixture
def restatements(
    claims_db: str, emulator: Any, pjpixel_settings: dict[str, Any]
) -> tuple[list[int], list[int]]:
    """The other sender's leased restatements, and this sender's pending ones."""
    for order_id in restated_at_prisjakt(emulator, 2 * HELD, "refund-keys"):
        restate_purchase(order_id=order_id, amount=10)
    pks = list(Restatement.objects.order_by("pk").values_list("pk", flat=True))
    theirs, mine = pks[:HELD], pks[HELD:]
    leased(Restatement, theirs)
    return theirs, mine


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_a_refund_supersedes_by_key(
    restatements: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = restatements
    order_id = Restatement.objects.get(pk=mine[0]).order_id
    row = run_beside(theirs, Restatement, lambda: restate_purchase(order_id=order_id, amount=5))
    assert row is not None
    assert row.status == "pending"
    assert Restatement.objects.get(pk=mine[0]).status == "superseded"


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_settling_closes_by_key(
    restatements: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = restatements
    stale = Restatement.objects.get(pk=mine[0])
    restate_purchase(order_id=stale.order_id, amount=1)  # supersedes it, which is undone:
    Restatement.objects.filter(order_id=stale.order_id, amount=1).update(status="sending")
    Restatement.objects.filter(pk=stale.pk).update(status="pending", next_attempt_at=None)
    run_beside(theirs, Restatement, lambda: restating.settle(timezone.now()))
    assert Restatement.objects.get(pk=stale.pk).status == "superseded"


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_restatements_are_claimed_and_recorded_by_key(
    restatements: tuple[list[int], list[int]], short_lock_waits: None
) -> None:
    theirs, mine = restatements
    claimed = run_beside(theirs, Restatement, lambda: restating.claim(HELD, timezone.now()))
    assert sorted(row.pk for row in claimed) == mine
    outcomes = run_beside(
        theirs, Restatement, lambda: restating.record_chunk(claimed, TimeoutError())
    )
    assert {outcome.status for outcome in outcomes} == {"pending"}
    assert status_of(Restatement, mine) == {"pending"}
    assert status_of(Restatement, theirs) == {"sending"}


def status_of(model: type[Any], pks: list[int]) -> set[str]:
    return set(model.objects.filter(pk__in=pks).values_list("status", flat=True))


def lock_waits(alias: str) -> int:
    """Other sessions of this test database waiting for a lock (PostgreSQL), or running
    a statement (MariaDB, whose ``innodb_trx`` does not show the wait while it lasts)."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True, databases=ALIASES)
def test_a_refund_and_an_outcome_of_its_order_take_their_locks_in_one_order(
    claims_db: str, emulator: Any, pjpixel_settings: dict[str, Any]
) -> None:
    """A refund locks its order's event, then the order's older restatements it
    supersedes (those pending when it read them). A sender may claim one of them in
    between and record Prisjakt's answer, which updates the event: the outcome must
    lock the event before the restatement, or each waits for the other (a deadlock,
    which loses the refund or the outcome)."""
    [order_id] = restated_at_prisjakt(emulator, 1, "order-of-locks")
    restate_purchase(order_id=order_id, amount=10)
    [older] = restating.claim(10, timezone.now())
    answer = restating.patch_one(restating.prepare(older), older.pixel_id)  # type: ignore[arg-type]
    alias = router.db_for_write(Restatement)
    holding, outcome_waits = threading.Event(), threading.Event()
    errors: list[str] = []

    def refund() -> None:  # restatements._record and _supersede, their locks in turn
        try:
            with transaction.atomic(using=alias):
                ConversionEvent.objects.using(alias).select_for_update().get(order_id=order_id)
                holding.set()
                assert outcome_waits.wait(TIMEOUT)
                keyed.lock(Restatement, [older.pk], "status", using=alias)
        except BaseException as err:
            errors.append(f"refund: {err!r}")
        finally:
            connections.close_all()

    def outcome() -> None:
        try:
            assert holding.wait(TIMEOUT)
            restating.record_one(older, answer)
        except BaseException as err:
            errors.append(f"outcome: {err!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refund), threading.Thread(target=outcome)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while not lock_waits(alias) and time.monotonic() - started < TIMEOUT:
        time.sleep(0.01)  # until the outcome waits for the refund's lock
    time.sleep(0.2)  # MariaDB: running, now surely waiting
    outcome_waits.set()
    for thread in threads:
        thread.join(TIMEOUT)
    assert errors == []
    older.refresh_from_db()
    assert older.status == "sent"
    assert ConversionEvent.objects.get(order_id=order_id).restated_amount == 10
