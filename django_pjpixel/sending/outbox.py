"""The outbox's state machine: which rows are due, claims and leases, outcomes, backoff.

A row is sent by whoever *claims* it: claiming sets ``sending``, a lease
(``leased_until``, ``lease_token``) and counts the attempt (``SELECT ... FOR
UPDATE SKIP LOCKED`` where the database has it, a conditional ``UPDATE`` on
the due states everywhere). The request is made outside any lock; its outcome
is written only while the lease token is still the row's, so a worker whose
lease expired and was taken over cannot overwrite a newer outcome.

Due means: ``pending`` with ``next_attempt_at`` unset or reached, or
``sending`` whose lease has expired (its sender died). A transient answer
puts the row back to ``pending`` at ``now + max(full-jitter backoff,
Retry-After or rate-limit reset)``; after ``MAX_ATTEMPTS`` attempts, or once
the row is older than ``MAX_AGE``, it is ``dead`` instead.

The same machine runs ``Restatement`` rows (``claim_due(model=...)``; the
others take the model of the rows they are given). This module writes rows
only; ``delivery`` and ``restating`` send them and announce what was written.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from django.db import connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from django_pjpixel.api.client import ApiResult
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput, PrisjaktAPIError, PrisjaktConflict
from django_pjpixel.ledger import keyed
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent, OutboxRow
from django_pjpixel.signals import Cancel

Status = ConversionEvent.Status
# An outbox row: a ConversionEvent or a Restatement, as given (a list of one model).
Row = TypeVar("Row", bound=OutboxRow)
SendResult = ApiResult | Cancel | Exception
# Outcomes that are not a status of the row.
NOT_DUE = "not_due"  # someone else has it, it is final, or its time has not come
STALE = "stale"  # our lease was taken over: the outcome was not written


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did: the row's new status, and when to try again."""

    status: str
    retry_at: datetime | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class Written(Generic[Row]):
    """The fields written to some rows of a claim (``rows``), and when they are due again."""

    fields: dict[str, Any]
    rows: list[Row]
    retry_at: datetime | None
    stale: list[Row]  # rows whose lease was taken over: nothing written


# -- claiming ----------------------------------------------------------------


def due_filter(now: datetime, *, cutoff: datetime | None = None) -> Q:
    """Rows a sender may claim at ``now`` (pending ones only if due by ``cutoff``)."""
    pending = Q(status=Status.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=cutoff or now)
    )
    expired = Q(status=Status.SENDING) & (Q(leased_until__isnull=True) | Q(leased_until__lte=now))
    return pending | expired


def is_due(status: str, next_attempt_at: Any, leased_until: Any, now: datetime) -> bool:
    """``due_filter(now)`` of one row's state, for rows read under ``keyed.lock``."""
    if status == str(Status.PENDING):
        return next_attempt_at is None or bool(next_attempt_at <= now)
    return status == str(Status.SENDING) and (leased_until is None or bool(leased_until <= now))


def claim_due(
    limit: int,
    *,
    now: datetime | None = None,
    cutoff: datetime | None = None,
    only: Q | None = None,
    model: type[Row] = ConversionEvent,  # type: ignore[assignment]  # the usual rows
) -> list[Row]:
    """Lease up to ``limit`` due rows of ``model`` (oldest first) to this caller; returns them.

    Concurrent callers never get the same row: locked rows are skipped, and
    the claiming ``UPDATE`` repeats the due condition. ``cutoff`` limits
    pending rows to those due by then; ``only`` narrows the rows further.
    """
    now = timezone.now() if now is None else now
    due = due_filter(now, cutoff=cutoff)
    if only is not None:
        due &= only
    token = uuid.uuid4()
    leased_until = now + timedelta(seconds=pjpixel_settings.LEASE_SECONDS)
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        candidates = model._default_manager.using(alias).filter(due).order_by("pk")
        if connections[alias].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        rows = list(candidates[:limit])
        if not rows:
            return []
        claimed = model._default_manager.using(alias).filter(pk__in=[row.pk for row in rows])
        if not connections[alias].features.has_select_for_update_skip_locked:
            claimed = claimed.filter(due)  # not locked above: the due condition again
        count = claimed.update(
            status=Status.SENDING,
            leased_until=leased_until,
            lease_token=token,
            attempts=F("attempts") + 1,
        )
        if count != len(rows):
            # Without SKIP LOCKED (SQLite) another sender may have taken some
            # of them in between: read back which rows this lease holds.
            return list(
                model._default_manager.using(alias)
                .filter(pk__in=[row.pk for row in rows], lease_token=token)
                .order_by("pk")
            )
    for row in rows:  # the locked rows, as the UPDATE left them
        row.status = Status.SENDING
        row.leased_until = leased_until
        row.lease_token = token
        row.attempts += 1
    return rows


def claim_one(event_pk: int, *, now: datetime | None = None) -> ConversionEvent | None:
    """Lease the row ``event_pk`` to this caller if it is due; returns it, or None.

    One conditional ``UPDATE`` in autocommit claims it (no transaction to
    open and commit): a concurrent claim of the same row waits for the row
    lock, then finds it no longer due. PostgreSQL returns the claimed row
    from that ``UPDATE``; elsewhere it is read back by key and lease token.
    """
    now = timezone.now() if now is None else now
    token = uuid.uuid4()
    alias: str = router.db_for_write(ConversionEvent)
    rows = ConversionEvent.objects.using(alias)
    due = rows.filter(due_filter(now), pk=event_pk)
    lease = {
        "status": Status.SENDING,
        "leased_until": now + timedelta(seconds=pjpixel_settings.LEASE_SECONDS),
        "lease_token": token,
        "attempts": F("attempts") + 1,
    }
    if connections[rows.db].vendor == "postgresql":
        return _update_returning(due, lease)
    if not due.update(**lease):
        return None
    claimed: ConversionEvent | None = rows.filter(pk=event_pk, lease_token=token).first()
    return claimed


def _update_returning(
    rows: QuerySet[ConversionEvent], values: dict[str, Any]
) -> ConversionEvent | None:
    """``rows.update(**values)`` of at most one row, returning that row as updated.

    The ``UPDATE`` is compiled as ``QuerySet.update`` compiles it; only
    ``RETURNING`` is added, and the columns pass through the same converters
    as a query's results.
    """
    query = cast(UpdateQuery, rows.query.chain(UpdateQuery))
    query.add_update_values(values)
    query.clear_select_clause()
    connection = connections[rows.db]
    sql, params = query.get_compiler(rows.db).as_sql()
    meta = ConversionEvent._meta
    columns = [field.get_col(meta.db_table) for field in meta.concrete_fields]
    returning = ", ".join(connection.ops.quote_name(col.target.column) for col in columns)
    with transaction.mark_for_rollback_on_error(using=rows.db), connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {returning}", params)
        row = cursor.fetchone()
    if row is None:
        return None
    converted = []
    for col, value in zip(columns, row, strict=True):
        for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
            value = convert(value, col, connection)
        converted.append(value)
    event: ConversionEvent = ConversionEvent.from_db(
        rows.db, [field.attname for field in meta.concrete_fields], converted
    )
    return event


# -- outcomes ----------------------------------------------------------------


def write_outcome(event: Row, result: SendResult, *, now: datetime) -> Written[Row]:
    """Write what sending ``event`` got, if its lease is still ours."""
    fields, retry_at = outcome_fields(event, result, now)
    updated = (
        type(event)
        ._default_manager.filter(pk=event.pk, status=Status.SENDING, lease_token=event.lease_token)
        .update(leased_until=None, lease_token=None, **fields)
    )
    if not updated:
        return Written(fields, [], retry_at, stale=[event])
    return Written(fields, [event], retry_at, stale=[])


def write_chunk(events: list[Row], result: SendResult) -> list[Written[Row]]:
    """Write one answer for every row of a chunk whose lease is still ours.

    A transient answer puts the chunk back on one schedule (the backoff of
    its most tried row, never before ``Retry-After`` or the reset); rows past
    ``MAX_ATTEMPTS`` or ``MAX_AGE`` are ``dead`` instead.
    """
    now = timezone.now()
    model = type(events[0])
    groups: list[tuple[dict[str, Any], list[Row], datetime | None]] = []
    if is_transient(result):
        api_error = result if isinstance(result, PrisjaktAPIError) else None
        retry_after = api_error.retry_after if api_error is not None else None
        problem = (
            problem_fields(api_error)
            if api_error is not None
            else problem_fields(None, f"{type(result).__name__}: {result}")
        )
        attempts = max(event.attempts for event in events)
        next_at = now + timedelta(seconds=retry_delay(attempts, retry_after, api_error))
        dead = [event for event in events if given_up(event, now)]
        alive = [event for event in events if not given_up(event, now)]
        groups.append(({"status": Status.DEAD, **problem}, dead, None))
        pending = {**problem, "status": Status.PENDING, "next_attempt_at": next_at}
        groups.append((pending, alive, next_at))
    else:
        answer, _ = outcome_fields(events[0], result, now)  # not retried: no retry time
        groups.append((answer, events, None))
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        ours = _ours(events)
        for fields, members, _ in groups:
            pks = [event.pk for event in members if event.pk in ours]
            if pks:
                model._default_manager.using(alias).filter(pk__in=pks).update(
                    leased_until=None, lease_token=None, **fields
                )
    return [
        Written(
            fields,
            [event for event in members if event.pk in ours],
            when,
            stale=[event for event in members if event.pk not in ours],
        )
        for fields, members, when in groups
    ]


def is_transient(result: SendResult) -> bool:
    if isinstance(result, (ApiResult, Cancel, InvalidInput)):
        return False
    if isinstance(result, PrisjaktAPIError):
        return result.retryable
    return True  # a configuration error or a bug, kept pending as for one event


def release(events: list[Row], until: datetime | None) -> None:
    """Give back claimed rows that were not sent: due again at ``until``, the attempt undone."""
    model = type(events[0])
    with transaction.atomic(using=router.db_for_write(model)):
        model._default_manager.filter(pk__in=_ours(events)).update(
            status=Status.PENDING,
            leased_until=None,
            lease_token=None,
            next_attempt_at=until,
            attempts=F("attempts") - 1,
        )


def _ours(events: list[Row]) -> set[Any]:
    """Of a chunk's rows, those still leased to it (see ``leased``)."""
    return leased(type(events[0]), [event.pk for event in events], events[0].lease_token)


def leased(model: type[OutboxRow], pks: list[Any], token: Any) -> set[Any]:
    """Of the rows ``pks``, those the lease ``token`` still holds, locked (by key alone,
    ``keyed.lock``) until the transaction ends."""
    state = keyed.lock(model, pks, "status", "lease_token")
    return {pk for pk, fields in state.items() if fields == (str(Status.SENDING), token)}


def outcome_fields(
    event: Row, result: SendResult, now: datetime
) -> tuple[dict[str, Any], datetime | None]:
    if isinstance(result, ApiResult):
        return _sent(result.status, result.request_id, result.data, now), None
    if isinstance(result, Cancel):
        reason = clip("skip_reason", result.reason)
        return {"status": Status.SKIPPED, "skip_reason": reason, "next_attempt_at": None}, None
    if isinstance(result, InvalidInput):
        return {
            "status": Status.FAILED,
            "next_attempt_at": None,
            "problem_type": "",
            "problem_title": INVALID_PURCHASE,
            "problem_detail": str(result),
            "field_errors": {result.field: {"message": result.message}},
        }, None
    if isinstance(result, PrisjaktAPIError):
        if result.status is not None and 200 <= result.status < 300:
            # Created, with an answer we could not read: it is there all the same.
            return _sent(result.status, result.request_id, None, now), None
        problem = problem_fields(result)
        if isinstance(result, PrisjaktConflict):
            return {"status": Status.DUPLICATE, "sent_at": now, **problem}, None
        if not result.retryable:
            return {"status": Status.FAILED, **problem}, None
        return _transient(event, now, result.retry_after, result, problem)
    # A configuration error, or a bug: kept pending so a fix lets it through.
    title = f"{type(result).__name__}: {result}"
    return _transient(event, now, None, None, problem_fields(None, title))


def _sent(status: int, request_id: str | None, data: Any, now: datetime) -> dict[str, Any]:
    remote_id = data.get("id") if isinstance(data, dict) else None
    return {
        "status": Status.SENT,
        "sent_at": now,
        "next_attempt_at": None,
        "last_status_code": status,
        "request_id": clip("request_id", request_id or ""),
        "remote_event_id": clip("remote_event_id", remote_id) if isinstance(remote_id, str) else "",
        "problem_type": "",
        "problem_title": "",
        "problem_detail": "",
        "field_errors": {},
    }


def problem_fields(error: PrisjaktAPIError | None, title: str = "") -> dict[str, Any]:
    record = error.as_record() if error is not None else {"title": title}
    return {
        "next_attempt_at": None,
        "last_status_code": record.get("status"),
        "problem_type": clip("problem_type", record.get("type") or ""),
        "problem_title": clip("problem_title", record.get("title") or ""),
        "problem_detail": record.get("detail") or "",
        "field_errors": record.get("field_errors") or {},
        "request_id": clip("request_id", record.get("request_id") or ""),
    }


def _transient(
    event: Row,
    now: datetime,
    retry_after: float | None,
    error: PrisjaktAPIError | None,
    problem: dict[str, Any],
) -> tuple[dict[str, Any], datetime | None]:
    if given_up(event, now):
        return {"status": Status.DEAD, **problem}, None
    retry_at = now + timedelta(seconds=retry_delay(event.attempts, retry_after, error))
    return {**problem, "status": Status.PENDING, "next_attempt_at": retry_at}, retry_at


def given_up(event: Row, now: datetime) -> bool:
    conf = pjpixel_settings
    return event.attempts >= conf.MAX_ATTEMPTS or now - event.created_at >= conf.MAX_AGE


def retry_delay(
    attempts: int, retry_after: float | None, error: PrisjaktAPIError | None = None
) -> float:
    """Seconds until the next attempt: the backoff, never before ``Retry-After`` or the reset."""
    floor = retry_after or 0.0
    if error is not None and error.rate_limit is not None and error.rate_limit.remaining == 0:
        floor = max(floor, error.rate_limit.reset_seconds or 0.0)
    # An absurd Retry-After must not park the row past the age at which it dies anyway.
    return min(max(backoff_delay(attempts), floor), pjpixel_settings.MAX_AGE.total_seconds())


def backoff_delay(attempts: int) -> float:
    """Full jitter: uniform in [0, min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**(attempts-1))]."""
    conf = pjpixel_settings
    exponent = min(max(attempts - 1, 0), 64)  # 2.0**big overflows
    ceiling = min(conf.RETRY_MAX_DELAY, conf.RETRY_BASE_DELAY * 2.0**exponent)
    return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not security


def clip(name: str, value: str) -> str:
    max_length = getattr(ConversionEvent._meta.get_field(name), "max_length", None)
    return value[:max_length] if max_length else value
