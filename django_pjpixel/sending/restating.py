"""Sending restatements: which are due (in order, the last one wins), their body, their outcome.

``deliver_due`` (``backlog``) drains the due ``Restatement`` rows after the
purchases, in many-events ``PATCH`` batches of their own: Prisjakt updates
the event whose ``external_event_id`` it has [docs], so a row is sent as its
event's body (order id, ``event_time``, click) with the new ``data``. There
is no other way to send one: a ``POST`` of it would be a 409.

A row is claimed (``outbox``, as events are) only once its event is
delivered (sent, or a 409), while the event is within the 30-day window
(``restatements.RESTATEMENT_WINDOW``), and when no other restatement of the
order stands before it: an older one still waiting is ``superseded`` (never
sent after a newer one), and a newer one waits while an older one is being
sent. A row whose event failed, was skipped or given up, or grew too old,
is ``unsendable`` with the reason. Once Prisjakt accepts a row its event's
``restated_*`` fields take the new values, in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger import keyed
from django_pjpixel.ledger.restatements import (
    SUPERSEDED,
    TOO_OLD,
    not_at_prisjakt,
    restated_values,
    window_start,
)
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending.delivery import build_payload, patch
from django_pjpixel.sending.outbox import (
    STALE,
    Outcome,
    SendResult,
    Written,
    claim_due,
    due_filter,
    is_due,
    write_chunk,
    write_outcome,
)

logger = logging.getLogger("django_pjpixel.restating")

Status = Restatement.Status
EventStatus = ConversionEvent.Status
DELIVERED = (EventStatus.SENT, EventStatus.DUPLICATE)
# Restatements that make an older one of the same order obsolete.
LIVE = (Status.APPLIED, Status.PENDING, Status.SENDING, Status.SENT)
_SENT, _PENDING = str(Status.SENT), str(Status.PENDING)


def claim(limit: int, cutoff: datetime, only: Q | None = None) -> list[Restatement]:
    """Lease up to ``limit`` restatements that may be sent now (due by ``cutoff``;
    ``only``: of these rows, e.g. one market's events)."""
    now = timezone.now()
    settle(now)
    due = sendable(now, cutoff)
    pks = list((due if only is None else due.filter(only)).values_list("pk", flat=True)[:limit])
    if not pks:
        return []
    # The order of a claim is checked above, not in the claiming UPDATE: MySQL refuses
    # an UPDATE whose condition reads the table it updates.
    rows = claim_due(limit, now=now, cutoff=cutoff, only=Q(pk__in=pks), model=Restatement)
    prefetch_related_objects(rows, "event")
    return rows


def sendable(now: datetime, cutoff: datetime | None = None) -> QuerySet[Restatement]:
    """Due restatements whose turn it is, oldest first (see the module docstring)."""
    oldest = window_start(now)
    siblings = Restatement.objects.filter(event=OuterRef("event"))
    before = siblings.filter(pk__lt=OuterRef("pk"), status__in=(Status.PENDING, Status.SENDING))
    rows: QuerySet[Restatement] = (
        Restatement.objects.filter(
            due_filter(now, cutoff=cutoff),
            event__status__in=DELIVERED,
            event__event_time__gt=oldest,
            event__created_at__gt=oldest,
        )
        .exclude(Exists(before))
        .exclude(Exists(siblings.filter(pk__gt=OuterRef("pk"), status__in=LIVE)))
        .order_by("pk")
    )
    return rows


def settle(now: datetime) -> None:
    """Due rows that can no longer be sent: ``superseded``, or ``unsendable`` with the reason."""
    due = Restatement.objects.filter(due_filter(now))
    newer = Restatement.objects.filter(
        event=OuterRef("event"), pk__gt=OuterRef("pk"), status__in=LIVE
    )
    obsolete = list(due.filter(Exists(newer)).values_list("pk", flat=True))
    _close(now, obsolete, status=Status.SUPERSEDED, skip_reason=SUPERSEDED)
    oldest = window_start(now)
    stuck = Q(event__status__in=(EventStatus.SKIPPED, EventStatus.FAILED, EventStatus.DEAD))
    too_old = Q(event__event_time__lte=oldest) | Q(event__created_at__lte=oldest)
    for row in due.filter(stuck | too_old).select_related("event"):
        why = not_at_prisjakt(row.event) or TOO_OLD
        _close(now, [row.pk], status=Status.UNSENDABLE, skip_reason=why)


def _close(now: datetime, pks: list[int], **fields: Any) -> None:
    # Still due: a row claimed meanwhile is left to its sender.
    with transaction.atomic(using=router.db_for_write(Restatement)):
        state = keyed.lock(Restatement, pks, "status", "next_attempt_at", "leased_until")
        due = [pk for pk, (status, at, until) in state.items() if is_due(status, at, until, now)]
        Restatement.objects.filter(pk__in=due).update(
            next_attempt_at=None, leased_until=None, lease_token=None, **fields
        )


def prepare(row: Restatement) -> dict[str, Any] | InvalidInput:
    """The event's body with the restatement's ``data``."""
    assert row.event is not None  # claimed only with a delivered event
    try:
        return build_payload(row.event, row)
    except InvalidInput as err:
        return err


def patch_one(payload: dict[str, Any], pixel_id: str | None = None) -> SendResult:
    """A restatement alone: a ``PATCH`` of one event, with the client of its pixel."""
    return patch([payload], pixel_id)


def record_one(row: Restatement, result: SendResult) -> Outcome:
    with transaction.atomic(using=router.db_for_write(Restatement)):
        _lock_events([row])
        written = write_outcome(row, result, now=timezone.now())
        outcomes = _take(written, result)
    return outcomes[0]


def record_chunk(rows: list[Restatement], result: SendResult) -> list[Outcome]:
    """Write one answer for every row of a chunk; events take what Prisjakt accepted."""
    outcomes: list[Outcome] = []
    with transaction.atomic(using=router.db_for_write(Restatement)):
        _lock_events(rows)
        for written in write_chunk(rows, result):
            outcomes.extend(_take(written, result))
    return outcomes


def _lock_events(rows: list[Restatement]) -> None:
    """The rows' events locked before the rows: in the order a refund takes them
    (``restatements._record``: the event, then the restatements it supersedes)."""
    keyed.lock(ConversionEvent, [row.event_id for row in rows if row.event_id is not None])


def _take(written: Written[Restatement], result: SendResult) -> list[Outcome]:
    """The events of rows Prisjakt accepted take their values; each outcome logged."""
    status = str(written.fields["status"])
    error = result if isinstance(result, Exception) else None
    if status == _SENT:
        now = timezone.now()
        for row in written.rows:
            ConversionEvent.objects.filter(pk=row.event_id).update(**restated_values(row, now))
    for row in written.stale:
        logger.warning(
            "pjpixel: the lease on restatement %s of order %s was taken over; this outcome "
            "(%s) is dropped",
            row.pk,
            row.order_id,
            status,
        )
    level = {_SENT: logging.INFO, _PENDING: logging.WARNING}.get(status, logging.ERROR)
    for row in written.rows:
        logger.log(
            level,
            "pjpixel: restatement %s of order %s (amount %s, %s items): %s%s",
            row.pk,
            row.order_id,
            row.api_amount,
            row.number_of_items,
            status,
            f": {error}" if error is not None else "",
            extra={"pjpixel_restatement": row.pk, "order_id": row.order_id, "status": status},
        )
    stale = [Outcome(STALE, error=error) for _ in written.stale]
    return stale + [Outcome(status, retry_at=written.retry_at, error=error) for _ in written.rows]
