"""``deliver_due`` with single sends: chunks, limits, runs that share the work."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.backlog import chunk_size, deliver_due
from django_pjpixel.sending.outbox import claim_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
SECRET = "s3cr3t-never-shown"


def reload(event: ConversionEvent) -> ConversionEvent:
    return ConversionEvent.objects.get(pk=event.pk)


# -- deliver_due ---------------------------------------------------------------


def test_deliver_due_sends_everything_due_and_counts(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1  # one POST per event, in several chunks (batches: test_batching)
    for i in range(5):
        make_event(f"due-{i}")
    make_event("later", next_attempt_at=timezone.now() + timedelta(hours=1))
    pjpixel_api.add_event(external_event_id="due-4")
    pjpixel_api.script([503], method="POST")
    counts = deliver_due()
    assert counts == {"pending": 1, "sent": 3, "duplicate": 1}
    assert deliver_due() == {}  # the retry is not due yet, and not looped on
    assert ConversionEvent.objects.get(order_id="later").status == Status.PENDING


def test_deliver_due_respects_the_limit(pjpixel_api: PrisjaktEmulator) -> None:
    for i in range(3):
        make_event(f"lim-{i}")
    assert deliver_due(limit=2) == {"sent": 2}
    assert deliver_due(limit=2) == {"sent": 1}


def test_chunks_fit_in_one_lease(pjpixel: dict[str, Any]) -> None:
    # A request's worst case is its total deadline, not its (connect, read) timeouts:
    # a trickling server can hold a request past those, never past the deadline.
    pjpixel.update(LEASE_SECONDS=120, REQUEST_DEADLINE=12, READ_TIMEOUT=3, BATCH_SIZE=100)
    assert chunk_size() == 10
    pjpixel.update(LEASE_SECONDS=1)
    assert chunk_size() == 1
    pjpixel.update(LEASE_SECONDS=1000, BATCH_SIZE=50)
    assert chunk_size() == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_skip_locked_a_claim_keeps_only_the_rows_it_won(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on SQLite: another sender takes a row between this claim's read and its UPDATE."""
    first, second = make_event("race-1"), make_event("race-2")
    monkeypatch.setattr(connection.features, "has_select_for_update_skip_locked", False)
    update = QuerySet.update
    rival: list[list[ConversionEvent]] = []
    raced = threading.Event()

    def racing_update(self: QuerySet[Any], **fields: Any) -> int:
        if fields.get("status") == ConversionEvent.Status.SENDING and not raced.is_set():
            raced.set()

            def claim_first() -> None:
                try:  # its own connection, which has SKIP LOCKED
                    rival.append(claim_due(1, only=Q(pk=first.pk)))
                finally:
                    connection.close()

            thread = threading.Thread(target=claim_first)
            thread.start()
            thread.join(10)
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", racing_update)
    mine = claim_due(10)
    assert [event.pk for event in rival[0]] == [first.pk]
    assert [event.pk for event in mine] == [second.pk]
    assert reload(first).lease_token == rival[0][0].lease_token != mine[0].lease_token


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_send_a_row_twice(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1  # one POST per event (batches: test_batching)
    assert connection.features.has_select_for_update_skip_locked
    for i in range(30):
        make_event(f"par-{i}")
    pjpixel_api.latency = 0.005
    results: list[dict[str, int]] = []

    def run() -> None:
        try:
            results.append(deliver_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.get("sent", 0) for r in results) == 30
    external = [e["external_event_id"] for e in pjpixel_api.events]
    assert sorted(external) == sorted(f"par-{i}" for i in range(30))
    assert len([r for r in pjpixel_api.requests if r.method == "POST"]) == 30
