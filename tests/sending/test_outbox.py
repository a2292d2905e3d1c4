"""The outbox: giving up, backoff, claims and leases (``outbox.py``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from django_pjpixel.exceptions import (
    PrisjaktServerError,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.delivery import deliver_event, record_outcome
from django_pjpixel.sending.outbox import (
    NOT_DUE,
    STALE,
    Outcome,
    backoff_delay,
    claim_due,
    claim_one,
)
from django_pjpixel.signals import Cancel
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import claim_due_one, make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
SECRET = "s3cr3t-never-shown"


def reload(event: ConversionEvent) -> ConversionEvent:
    return ConversionEvent.objects.get(pk=event.pk)


# -- giving up -----------------------------------------------------------------


def test_max_attempts_then_dead(pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]) -> None:
    pjpixel["MAX_ATTEMPTS"] = 2
    pjpixel_api.script([500, 500, 500])
    event = make_event()
    assert deliver_event(event.pk).status == Status.PENDING
    later = reload(event).next_attempt_at
    assert later is not None
    outcome = deliver_event(event.pk, now=later)
    assert outcome == Outcome(Status.DEAD, error=outcome.error)
    row = reload(event)
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.DEAD, 2, None)
    assert deliver_event(event.pk, now=later + timedelta(days=1)).status == NOT_DUE


def test_older_than_max_age_then_dead(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([503])
    event = make_event(created_at=timezone.now() - timedelta(days=4))
    assert deliver_event(event.pk).status == Status.DEAD


def test_backoff_is_full_jitter_capped(pjpixel: dict[str, Any]) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 2.0
    pjpixel["RETRY_MAX_DELAY"] = 100.0
    with mock.patch("random.uniform", side_effect=lambda low, high: high) as uniform:
        assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
        assert backoff_delay(10_000) == 100.0
    assert uniform.call_args.args[0] == 0.0
    assert 0.0 <= backoff_delay(3) <= 8.0


def test_an_absurd_retry_after_is_capped_at_max_age(pjpixel: dict[str, Any]) -> None:
    (event,) = claim_due_one()
    now = timezone.now()
    error = PrisjaktServerError(status=503, retry_after=1e15)
    outcome = record_outcome(event, error, now=now)
    assert outcome.retry_at == now + timedelta(days=3)


# -- leases --------------------------------------------------------------------


def test_claiming_leases_the_row_and_counts_the_attempt(pjpixel: dict[str, Any]) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    event = make_event()
    (claimed,) = claim_due(5, now=now)
    assert claimed.pk == event.pk
    assert claimed.status == Status.SENDING
    assert claimed.attempts == 1
    assert claimed.lease_token is not None
    assert claimed.leased_until == now + timedelta(seconds=60)
    assert claim_due(5, now=now + timedelta(seconds=59)) == []


def test_an_expired_lease_is_reclaimed_and_the_stale_outcome_is_dropped(
    pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    make_event()
    (first,) = claim_due(1, now=now)
    (second,) = claim_due(1, now=now + timedelta(seconds=61))
    assert second.pk == first.pk
    assert second.lease_token != first.lease_token
    assert second.attempts == 2
    # The first sender wakes up late: its outcome must not be written.
    assert record_outcome(first, PrisjaktServerError(status=503)).status == STALE
    assert reload(second).status == Status.SENDING
    assert record_outcome(second, Cancel("test")).status == Status.SKIPPED
    # Nor after the newer outcome is written.
    assert record_outcome(first, PrisjaktServerError(status=503)).status == STALE
    row = reload(second)
    assert (row.status, row.skip_reason) == (Status.SKIPPED, "test")
    assert any("taken over" in r.getMessage() for r in caplog.records)


def test_only_due_rows_are_claimed() -> None:
    now = timezone.now()
    due = [
        make_event("a"),
        make_event("b", next_attempt_at=now - timedelta(seconds=1)),
        make_event("c", status=Status.SENDING, leased_until=now - timedelta(seconds=1)),
        make_event("d", status=Status.SENDING),  # a lease without an end: a crash mid-claim
    ]
    for order_id, fields in [
        ("e", {"next_attempt_at": now + timedelta(seconds=30)}),
        ("f", {"status": Status.SENDING, "leased_until": now + timedelta(seconds=30)}),
        *[(str(s), {"status": s}) for s in ("sent", "duplicate", "failed", "skipped", "dead")],
    ]:
        make_event(order_id, **fields)
    claimed = claim_due(100, now=now)
    assert [e.pk for e in claimed] == [e.pk for e in due]


@pytest.fixture(params=["returning", "update-then-select"])
def claim_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``claim_one`` as on PostgreSQL (``UPDATE ... RETURNING``) and as on other databases."""
    if request.param == "returning" and connection.vendor != "postgresql":
        pytest.skip("UPDATE ... RETURNING is used on PostgreSQL only")
    if request.param == "update-then-select":
        monkeypatch.setattr(connection, "vendor", "other")
    return str(request.param)


def test_claim_one_leases_a_due_row_and_returns_it_as_stored(
    pjpixel: dict[str, Any], claim_path: str
) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    event = make_event(
        next_attempt_at=now - timedelta(seconds=1),
        attempts=2,
        field_errors={"amount": {"message": "was refused once"}},
        click_captured_at=now - timedelta(days=1),
    )
    claimed = claim_one(event.pk, now=now)
    assert claimed is not None
    stored = reload(event)
    assert {
        f.attname: getattr(claimed, f.attname) for f in ConversionEvent._meta.concrete_fields
    } == {f.attname: getattr(stored, f.attname) for f in ConversionEvent._meta.concrete_fields}
    assert (claimed.status, claimed.attempts) == (Status.SENDING, 3)
    assert claimed.leased_until == now + timedelta(seconds=60)
    assert isinstance(claimed.amount, Decimal)
    assert claimed.field_errors == {"amount": {"message": "was refused once"}}
    assert claimed._state.db == "default"
    assert not claimed._state.adding
    # Leased: nobody else gets it until the lease ends.
    assert claim_one(event.pk, now=now + timedelta(seconds=59)) is None
    assert claim_one(event.pk, now=now + timedelta(seconds=61)) is not None


def test_claim_one_leaves_rows_that_are_not_due(claim_path: str) -> None:
    now = timezone.now()
    later = make_event("later", next_attempt_at=now + timedelta(seconds=30))
    sent = make_event("sent", status=Status.SENT)
    assert claim_one(later.pk, now=now) is None
    assert claim_one(sent.pk, now=now) is None
    assert claim_one(987654, now=now) is None
    assert reload(later).attempts == 0
    assert reload(sent).status == Status.SENT


def test_deliver_event_of_a_missing_row(caplog: pytest.LogCaptureFixture) -> None:
    assert deliver_event(987654) == Outcome(NOT_DUE)
    assert "no conversion event 987654" in caplog.text


def test_deliver_event_of_a_row_leased_elsewhere_is_not_due() -> None:
    event = make_event(status=Status.SENDING, leased_until=timezone.now() + timedelta(minutes=1))
    assert deliver_event(event.pk) == Outcome(NOT_DUE)
