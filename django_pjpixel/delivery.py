"""Delivery of ``ConversionEvent`` rows to Prisjakt: plain functions, no Celery needed.

A row is sent by whoever *claims* it: claiming sets ``sending``, a lease
(``leased_until``, ``lease_token``) and counts the attempt, in a short
transaction (``SELECT ... FOR UPDATE SKIP LOCKED`` where the database has
it, a conditional ``UPDATE`` on the due states everywhere). The request is
made outside any lock; its outcome is written only while the lease token is
still the row's, so a worker whose lease expired and was taken over cannot
overwrite a newer outcome.

Due means: ``pending`` with ``next_attempt_at`` unset or reached, or
``sending`` whose lease has expired (its sender died). A transient answer
puts the row back to ``pending`` at ``now + max(full-jitter backoff,
Retry-After or rate-limit reset)``; after ``MAX_ATTEMPTS`` attempts, or once
the row is older than ``MAX_AGE``, it is ``dead`` instead.

``deliver_due`` sends what is due in batches, one many-events ``PATCH``
per claimed chunk of ``BATCH_SIZE`` rows (``BATCH_SIZE = 1``: one ``POST``
per row). Prisjakt updates an event whose ``external_event_id`` it already
has, so a resent batch (its answer was lost, its sender died) counts each
event once. A refused batch (400) is sent again one ``POST`` per row, so each
row gets its own outcome; credentials that may not ``PATCH`` (403) get
``POST``s for the rest of the run. A transient failure returns the chunk to
``pending`` on one schedule. The run keeps ``RATE_LIMIT_RESERVE`` requests of
the rate-limit window unused (for the checkouts' own ``POST``s): at the
reserve it waits for the reset when that is at most ``RATE_LIMIT_MAX_WAIT``
seconds away, else it stops and leaves what is due for the reset.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from django_pjpixel.client import ApiResult, get_client, purchase_payload
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConflict,
    RateLimit,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.signals import INVALID_PURCHASE, Cancel, post_send, pre_send

logger = logging.getLogger(__name__)

Status = ConversionEvent.Status
SendResult = ApiResult | Cancel | Exception

_DELIVERED = frozenset({str(Status.SENT), str(Status.DUPLICATE)})
_SKIPPED, _FAILED, _DEAD = str(Status.SKIPPED), str(Status.FAILED), str(Status.DEAD)
# Outcomes that are not a status of the row.
NOT_DUE = "not_due"  # someone else has it, it is final, or its time has not come
STALE = "stale"  # our lease was taken over: the outcome was not written
# Answers to a batch that a POST of each event would get as well: recorded for every row.
BATCH_ANSWERS_FOR_ALL = frozenset({401, 404})
# Answers meaning these credentials (or this API) may not use the many-events PATCH.
PATCH_NOT_ALLOWED = frozenset({403, 405})
# Batches failing transiently in a row before a run leaves the rest to a later one.
MAX_FAILED_BATCHES = 2


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did: the row's new status, and when to try again."""

    status: str
    retry_at: datetime | None = None
    error: Exception | None = None


class PublishTimeout(Exception):
    """A message was not queued for publishing: the broker is blocked, or the queue is full."""


# -- publishing --------------------------------------------------------------


def enqueue(event: ConversionEvent) -> bool:
    """Queue ``deliver_event(event.pk)``; never raises. False: left to ``deliver_due``.

    Runs from ``transaction.on_commit`` in the checkout, so it does not wait
    for the broker: the row's key goes to this process's publisher thread,
    which publishes it (kombu retries ``PUBLISH_RETRIES`` times, at once,
    then 0.2 s apart). The committed row is the durable record, so a message
    that is never published (the broker is down, the process ends) costs
    only time: ``deliver_due`` sends the row. While a publish has been
    blocked for longer than ``PUBLISH_TIMEOUT`` seconds (a Redis broker that
    accepts connections but never answers), or ``PUBLISH_QUEUE_SIZE`` keys
    are waiting, new rows are left to ``deliver_due`` at once. Run eagerly
    (``CELERY_TASK_ALWAYS_EAGER``) the task runs right here, in the caller's
    thread. The message carries the row's key only.
    """
    from django_pjpixel.tasks import deliver_event

    try:
        if deliver_event.app.conf.task_always_eager:
            _publish(event.pk)
        else:
            _publisher.submit(event.pk, event.order_id)
    except Exception as err:
        _publish_failed(event.pk, event.order_id, err)
        return False
    return True


def flush_publishes(timeout: float | None = None) -> bool:
    """Wait until this process has published what it queued; False if ``timeout`` ran out.

    Called at interpreter exit with ``PUBLISH_TIMEOUT``. Tests that look at
    the broker right after a commit call it first.
    """
    return _publisher.flush(timeout)


def _publish(event_pk: int) -> None:
    from django_pjpixel.tasks import deliver_event

    retries = pjpixel_settings.PUBLISH_RETRIES
    deliver_event.apply_async(
        args=(event_pk,),
        retry=retries > 0,
        retry_policy={
            "max_retries": retries,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )


def _publish_failed(event_pk: int, order_id: str, err: Exception) -> None:
    logger.warning(
        "pjpixel: could not queue order %s (%s: %s); deliver_due will send it",
        order_id,
        type(err).__name__,
        err,
        extra={"pjpixel_event": event_pk, "order_id": order_id, "status": str(Status.PENDING)},
    )
    _leave_due(event_pk, order_id)


class _Publisher:
    """One daemon thread per process publishing ``deliver_event`` off the request path.

    Started on first use, and again in a forked child (a pre-forking server
    that imported the shop before forking). Keys still queued at interpreter
    exit get ``PUBLISH_TIMEOUT`` seconds to go out; what does not is sent by
    ``deliver_due``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, str]] | None = None
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None

    def submit(self, event_pk: int, order_id: str) -> None:
        keys = self._started()
        busy_since = self._busy_since
        timeout = pjpixel_settings.PUBLISH_TIMEOUT
        if busy_since is not None and time.monotonic() - busy_since > timeout:
            raise PublishTimeout(f"the broker has not taken a message for over {timeout:g} s")
        try:
            keys.put_nowait((event_pk, order_id))
        except queue.Full:
            raise PublishTimeout(
                f"{keys.maxsize} events are already waiting to be published"
            ) from None

    def flush(self, timeout: float | None) -> bool:
        keys = self._queue
        if keys is None or not keys.unfinished_tasks:
            return True
        if timeout is None:
            timeout = pjpixel_settings.PUBLISH_TIMEOUT
        deadline = time.monotonic() + timeout
        with keys.all_tasks_done:
            while keys.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                keys.all_tasks_done.wait(left)
        return True

    def forget(self) -> None:
        """In a forked child: the parent's thread and queue are not ours."""
        self._lock = threading.Lock()
        self._queue = self._thread = self._busy_since = None

    def _started(self) -> queue.Queue[tuple[int, str]]:
        with self._lock:
            if self._queue is None or self._thread is None or not self._thread.is_alive():
                self._queue = queue.Queue(maxsize=pjpixel_settings.PUBLISH_QUEUE_SIZE)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="pjpixel-publisher", daemon=True
                )
                self._thread.start()
            return self._queue

    def _run(self, keys: queue.Queue[tuple[int, str]]) -> None:
        while True:
            event_pk, order_id = keys.get()
            if keys is self._queue:  # not a thread left behind by forget()
                self._busy_since = time.monotonic()
            try:
                _publish(event_pk)
            except Exception as err:
                _publish_failed(event_pk, order_id, err)
            finally:
                if keys is self._queue:
                    self._busy_since = None
                if keys.empty():
                    connections.close_all()  # any this thread opened (a failure, a hook)
                keys.task_done()


_publisher = _Publisher()
if hasattr(os, "register_at_fork"):  # POSIX; Windows does not fork
    os.register_at_fork(after_in_child=_publisher.forget)
atexit.register(flush_publishes)


def _leave_due(event_pk: int, order_id: str) -> None:
    try:
        ConversionEvent.objects.filter(
            pk=event_pk, status=Status.PENDING, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now())
    except Exception:  # the row is due as it is; this only makes it explicit
        logger.exception("pjpixel: could not mark order %s as due", order_id)


# -- claiming ----------------------------------------------------------------


def due_filter(now: datetime, *, cutoff: datetime | None = None) -> Q:
    """Rows a sender may claim at ``now`` (pending ones only if due by ``cutoff``)."""
    pending = Q(status=Status.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=cutoff or now)
    )
    expired = Q(status=Status.SENDING) & (Q(leased_until__isnull=True) | Q(leased_until__lte=now))
    return pending | expired


def claim_due(
    limit: int,
    *,
    now: datetime | None = None,
    cutoff: datetime | None = None,
    only: Q | None = None,
) -> list[ConversionEvent]:
    """Lease up to ``limit`` due rows (oldest first) to this caller; returns them.

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
    alias = router.db_for_write(ConversionEvent)
    with transaction.atomic(using=alias):
        candidates = ConversionEvent.objects.using(alias).filter(due).order_by("pk")
        if connections[alias].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        rows = list(candidates[:limit])
        if not rows:
            return []
        claimed = ConversionEvent.objects.using(alias).filter(due, pk__in=[row.pk for row in rows])
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
                ConversionEvent.objects.using(alias)
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


# -- sending -----------------------------------------------------------------


def build_payload(event: ConversionEvent) -> dict[str, Any]:
    return purchase_payload(
        external_event_id=event.order_id,
        amount=event.amount,
        currency=event.currency,
        number_of_items=event.number_of_items,
        event_time=event.event_time,
        signed_click_id=event.click_id or None,
        event_name=event.event_name,
    )


def send_one(event: ConversionEvent) -> SendResult:
    """Ask ``pre_send``, then POST the event; returns the answer or the error, never raises."""
    prepared = prepare(event)
    if not isinstance(prepared, dict):
        return prepared
    return _post(prepared)


def prepare(event: ConversionEvent) -> dict[str, Any] | Cancel | InvalidInput:
    """The payload to send after ``pre_send`` (which may change it), or why there is none."""
    try:
        payload = build_payload(event)
    except InvalidInput as err:
        return err
    for receiver, response in pre_send.send_robust(
        sender=ConversionEvent, event=event, payload=payload
    ):
        if isinstance(response, Exception):
            logger.error(
                "pjpixel: pre_send receiver %r failed; delivering anyway",
                receiver,
                exc_info=response,
                extra=_extra(event),
            )
        elif isinstance(response, Cancel):
            return response
    return payload


def _post(payload: dict[str, Any]) -> SendResult:
    try:
        return get_client().create_event(payload)
    except Exception as err:  # recorded as an outcome; unexpected ones are retried
        return err


def _patch(payloads: list[dict[str, Any]]) -> SendResult:
    try:
        return get_client().create_events(payloads)
    except Exception as err:  # as in _post
        return err


def _send_claimed(event: ConversionEvent) -> Outcome:
    return record_outcome(event, send_one(event))


# -- recording ---------------------------------------------------------------


def record_outcome(
    event: ConversionEvent, result: SendResult, *, now: datetime | None = None
) -> Outcome:
    """Write what ``send_one`` got, if ``event``'s lease is still ours; emit ``post_send``."""
    now = timezone.now() if now is None else now
    fields, retry_at = _outcome_fields(event, result, now)
    status = str(fields["status"])
    error = result if isinstance(result, Exception) else None
    updated = ConversionEvent.objects.filter(
        pk=event.pk, status=Status.SENDING, lease_token=event.lease_token
    ).update(leased_until=None, lease_token=None, **fields)
    if not updated:
        return _stale(event, status, error)
    return _announce(event, fields, result, retry_at)


def _stale(event: ConversionEvent, status: str, error: Exception | None) -> Outcome:
    logger.warning(
        "pjpixel: the lease on order %s was taken over; this outcome (%s) is dropped",
        event.order_id,
        status,
        extra=_extra(event, status=STALE),
    )
    return Outcome(STALE, error=error)


def _announce(
    event: ConversionEvent, fields: dict[str, Any], result: SendResult, retry_at: datetime | None
) -> Outcome:
    """Log the outcome written to ``event``'s row, and send ``post_send``."""
    status = str(fields["status"])
    error = result if isinstance(result, Exception) else None
    for name, value in {**fields, "leased_until": None, "lease_token": None}.items():
        setattr(event, name, value)
    _log_outcome(event, result)
    for receiver, response in post_send.send_robust(
        sender=ConversionEvent, event=event, status=status, error=error
    ):
        if isinstance(response, Exception):
            logger.error(
                "pjpixel: post_send receiver %r failed",
                receiver,
                exc_info=response,
                extra=_extra(event),
            )
    return Outcome(status, retry_at=retry_at, error=error)


def _outcome_fields(
    event: ConversionEvent, result: SendResult, now: datetime
) -> tuple[dict[str, Any], datetime | None]:
    if isinstance(result, ApiResult):
        return _sent(result.status, result.request_id, result.data, now), None
    if isinstance(result, Cancel):
        reason = _clip("skip_reason", result.reason)
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
        problem = _problem_fields(result)
        if isinstance(result, PrisjaktConflict):
            return {"status": Status.DUPLICATE, "sent_at": now, **problem}, None
        if not result.retryable:
            return {"status": Status.FAILED, **problem}, None
        return _transient(event, now, result.retry_after, result, problem)
    # A configuration error, or a bug: kept pending so a fix lets it through.
    title = f"{type(result).__name__}: {result}"
    return _transient(event, now, None, None, _problem_fields(None, title))


def _sent(status: int, request_id: str | None, data: Any, now: datetime) -> dict[str, Any]:
    remote_id = data.get("id") if isinstance(data, dict) else None
    return {
        "status": Status.SENT,
        "sent_at": now,
        "next_attempt_at": None,
        "last_status_code": status,
        "request_id": _clip("request_id", request_id or ""),
        "remote_event_id": _clip("remote_event_id", remote_id)
        if isinstance(remote_id, str)
        else "",
        "problem_type": "",
        "problem_title": "",
        "problem_detail": "",
        "field_errors": {},
    }


def _problem_fields(error: PrisjaktAPIError | None, title: str = "") -> dict[str, Any]:
    record = error.as_record() if error is not None else {"title": title}
    return {
        "next_attempt_at": None,
        "last_status_code": record.get("status"),
        "problem_type": _clip("problem_type", record.get("type") or ""),
        "problem_title": _clip("problem_title", record.get("title") or ""),
        "problem_detail": record.get("detail") or "",
        "field_errors": record.get("field_errors") or {},
        "request_id": _clip("request_id", record.get("request_id") or ""),
    }


def _transient(
    event: ConversionEvent,
    now: datetime,
    retry_after: float | None,
    error: PrisjaktAPIError | None,
    problem: dict[str, Any],
) -> tuple[dict[str, Any], datetime | None]:
    if _given_up(event, now):
        return {"status": Status.DEAD, **problem}, None
    retry_at = now + timedelta(seconds=retry_delay(event.attempts, retry_after, error))
    return {**problem, "status": Status.PENDING, "next_attempt_at": retry_at}, retry_at


def _given_up(event: ConversionEvent, now: datetime) -> bool:
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


def _clip(name: str, value: str) -> str:
    max_length = getattr(ConversionEvent._meta.get_field(name), "max_length", None)
    return value[:max_length] if max_length else value


def _extra(event: ConversionEvent, **overrides: Any) -> dict[str, Any]:
    return {
        "pjpixel_event": event.pk,
        "order_id": event.order_id,
        "status": event.status,
        "request_id": event.request_id or None,
        "http_status": event.last_status_code,
        **overrides,
    }


def _log_outcome(event: ConversionEvent, result: SendResult) -> None:
    extra = _extra(event)
    order, status = event.order_id, str(event.status)
    if status in _DELIVERED:
        logger.info("pjpixel: order %s delivered (%s)", order, status, extra=extra)
    elif status == _SKIPPED:
        logger.info("pjpixel: order %s skipped: %s", order, event.skip_reason, extra=extra)
    elif isinstance(result, PrisjaktAuthError):
        logger.error(
            "pjpixel: Prisjakt refused the credentials of client id %r (HTTP %s) for order %s: "
            'check PJPIXEL["CLIENT_ID"] and PJPIXEL["CLIENT_SECRET"] and the client\'s '
            "event_publisher role: %s",
            pjpixel_settings.CLIENT_ID,
            result.status,
            order,
            result,
            extra=extra,
        )
    elif status == _FAILED:
        logger.error("pjpixel: order %s failed: %s", order, result, extra=extra)
    elif isinstance(result, PrisjaktAPIError):
        level = logging.ERROR if status == _DEAD else logging.WARNING
        logger.log(
            level,
            "pjpixel: order %s not delivered (%s, attempt %d): %s",
            order,
            status,
            event.attempts,
            result,
            extra=extra,
        )
    else:  # a configuration error (its message names the fix), or a bug
        config = isinstance(result, PjpixelConfigurationError)
        logger.error(
            "pjpixel: order %s not delivered (%s, attempt %d): %s",
            order,
            status,
            event.attempts,
            result if config else type(result).__name__,
            exc_info=result if isinstance(result, Exception) and not config else None,
            extra=extra,
        )


# -- entry points ------------------------------------------------------------


def deliver_event(event_pk: int, *, now: datetime | None = None) -> Outcome:
    """Send one row now if it is due; ``Outcome.retry_at``: when to try again.

    A row not due yet (``pending`` with a later ``next_attempt_at``) answers
    ``NOT_DUE`` with that time, so a task that arrived early can wait for it.
    """
    now = timezone.now() if now is None else now
    claimed = claim_one(event_pk, now=now)
    if claimed is not None:
        return _send_claimed(claimed)
    row = ConversionEvent.objects.filter(pk=event_pk).values("status", "next_attempt_at").first()
    if row is None:
        logger.warning("pjpixel: no conversion event %s to deliver", event_pk)
        return Outcome(NOT_DUE)
    retry_at = row["next_attempt_at"] if row["status"] == Status.PENDING else None
    return Outcome(NOT_DUE, retry_at=retry_at)


def deliver_due(limit: int | None = None) -> dict[str, int]:
    """Send every row that is due, up to ``limit`` (``DELIVER_DUE_LIMIT``); counts per outcome.

    Rows are claimed a chunk at a time (memory stays flat however large the
    backlog), so concurrent runs (and tasks) share the work without sending a
    row twice. With ``BATCH_SIZE`` > 1 a chunk is ``BATCH_SIZE`` rows sent in
    one ``PATCH``; else a chunk is what one lease covers, one ``POST`` per row.
    A row that fails again in this run waits for its next attempt time; it is
    not retried in a loop. The run keeps its pace under the rate limit (see
    the module docstring); while a stop for the rate limit lasts, a run in the
    same process sends nothing.
    """
    conf = pjpixel_settings
    limit = conf.DELIVER_DUE_LIMIT if limit is None else limit
    started = timezone.now()
    paused = _paused_until(started)
    if paused is not None:
        logger.info(
            "pjpixel: deliver_due waits for the rate limit to reset at %s",
            paused.isoformat(),
            extra={"retry_at": paused.isoformat()},
        )
        return {}
    run = _Run(batches=conf.BATCH_SIZE > 1)
    done = 0
    while done < limit and not run.stopped:
        size = conf.BATCH_SIZE if run.batches else chunk_size()
        chunk = claim_due(min(size, limit - done), cutoff=started)
        if not chunk:
            break
        _send_chunk(run, chunk)
        done += len(chunk)
    if run.resume_at is not None:
        _defer_due(run.resume_at, run.rate_limit)
    counts = dict(run.counts)
    if counts:
        logger.info("pjpixel: deliver_due %s", counts, extra={"counts": counts})
    return counts


def chunk_size() -> int:
    """How many rows one claim takes for single sends: what one lease covers at worst."""
    conf = pjpixel_settings
    return max(1, min(conf.BATCH_SIZE, int(conf.LEASE_SECONDS // _worst_request())))


def _worst_request() -> float:
    return sum(pjpixel_settings.TIMEOUT) or 1.0


# -- batches -------------------------------------------------------------------


@dataclass
class _Run:
    """The state of one ``deliver_due`` run."""

    batches: bool  # False once the credentials may not PATCH
    counts: Counter[str] = field(default_factory=Counter)
    failed_batches: int = 0  # transient batch failures in a row
    stopped: bool = False
    resume_at: datetime | None = None  # the rate limit: nothing more before then
    rate_limit: RateLimit | None = None  # the last one that made the run stop

    def count(self, outcomes: Iterable[Outcome]) -> None:
        self.counts.update(outcome.status for outcome in outcomes)


class _Lease:
    """A claimed chunk's lease, renewed before a request that could outlast it."""

    def __init__(self, chunk: list[ConversionEvent]) -> None:
        self.token = chunk[0].lease_token
        self.pks = [event.pk for event in chunk]
        ends = [event.leased_until for event in chunk if event.leased_until is not None]
        self.until = min(ends) if ends else timezone.now()

    def keep(self) -> None:
        now = timezone.now()
        if now + timedelta(seconds=_worst_request()) <= self.until:
            return
        self.until = now + timedelta(seconds=pjpixel_settings.LEASE_SECONDS)
        ConversionEvent.objects.filter(
            pk__in=self.pks, status=Status.SENDING, lease_token=self.token
        ).update(leased_until=self.until)


def _send_chunk(run: _Run, chunk: list[ConversionEvent]) -> None:
    """Prepare each row (``pre_send``), then send the rest in one batch or one by one."""
    lease = _Lease(chunk)
    ready: list[tuple[ConversionEvent, dict[str, Any]]] = []
    for event in chunk:
        prepared = prepare(event)
        if isinstance(prepared, dict):
            ready.append((event, prepared))
        else:
            run.count([record_outcome(event, prepared)])
    if not ready:
        return
    if not run.batches:
        _send_singly(run, ready, lease)
        return
    lease.keep()
    result = _patch([payload for _, payload in ready])
    events = [event for event, _ in ready]
    status = result.status if isinstance(result, (ApiResult, PrisjaktAPIError)) else None
    if _is_transient(result):
        run.count(_record_chunk(events, result))
        run.failed_batches += 1
        if run.failed_batches >= MAX_FAILED_BATCHES:
            logger.warning(
                "pjpixel: %d batches in a row failed (%s); deliver_due leaves the rest for "
                "a later run",
                run.failed_batches,
                result,
            )
            run.stopped = True
        _pace(run, result)
        return
    run.failed_batches = 0
    if status is not None and (200 <= status < 300 or status in BATCH_ANSWERS_FOR_ALL):
        run.count(_record_chunk(events, result))
        _pace(run, result)
        return
    if status in PATCH_NOT_ALLOWED:
        run.batches = False
        logger.warning(
            "pjpixel: Prisjakt refused the many-events PATCH for client id %r (%s); "
            "this deliver_due run sends one POST per event instead. Give the client the "
            "event_publisher role to send in batches, or set BATCH_SIZE to 1.",
            pjpixel_settings.CLIENT_ID,
            result,
        )
    else:
        logger.info(
            "pjpixel: a batch of %d events was refused (%s); sending them one by one",
            len(ready),
            result,
        )
    _pace(run, result)
    _send_singly(run, ready, lease)


def _send_singly(
    run: _Run, ready: list[tuple[ConversionEvent, dict[str, Any]]], lease: _Lease
) -> None:
    for index, (event, payload) in enumerate(ready):
        if run.stopped:
            _release([event for event, _ in ready[index:]], run.resume_at)
            return
        lease.keep()
        result = _post(payload)
        run.count([record_outcome(event, result)])
        _pace(run, result)


def _is_transient(result: SendResult) -> bool:
    if isinstance(result, (ApiResult, Cancel, InvalidInput)):
        return False
    if isinstance(result, PrisjaktAPIError):
        return result.retryable
    return True  # a configuration error or a bug, kept pending as for one event


def _record_chunk(events: list[ConversionEvent], result: SendResult) -> list[Outcome]:
    """Write one answer for every row of a chunk whose lease is still ours; ``post_send`` each.

    A transient answer puts the chunk back on one schedule (the backoff of
    its most tried row, never before ``Retry-After`` or the reset); rows past
    ``MAX_ATTEMPTS`` or ``MAX_AGE`` are ``dead`` instead.
    """
    now = timezone.now()
    groups: list[tuple[dict[str, Any], list[ConversionEvent], datetime | None]] = []
    if _is_transient(result):
        api_error = result if isinstance(result, PrisjaktAPIError) else None
        retry_after = api_error.retry_after if api_error is not None else None
        problem = (
            _problem_fields(api_error)
            if api_error is not None
            else _problem_fields(None, f"{type(result).__name__}: {result}")
        )
        attempts = max(event.attempts for event in events)
        next_at = now + timedelta(seconds=retry_delay(attempts, retry_after, api_error))
        dead = [event for event in events if _given_up(event, now)]
        alive = [event for event in events if not _given_up(event, now)]
        groups.append(({"status": Status.DEAD, **problem}, dead, None))
        pending = {**problem, "status": Status.PENDING, "next_attempt_at": next_at}
        groups.append((pending, alive, next_at))
    else:
        answer, _ = _outcome_fields(events[0], result, now)  # not retried: no retry time
        groups.append((answer, events, None))
    alias = router.db_for_write(ConversionEvent)
    with transaction.atomic(using=alias):
        mine = ConversionEvent.objects.using(alias).filter(
            pk__in=[event.pk for event in events],
            status=Status.SENDING,
            lease_token=events[0].lease_token,
        )
        if connections[alias].features.has_select_for_update:
            mine = mine.select_for_update()
        ours = set(mine.values_list("pk", flat=True))
        for fields, members, _ in groups:
            pks = [event.pk for event in members if event.pk in ours]
            if pks:
                ConversionEvent.objects.using(alias).filter(pk__in=pks).update(
                    leased_until=None, lease_token=None, **fields
                )
    outcomes = []
    error = result if isinstance(result, Exception) else None
    for fields, members, when in groups:
        for event in members:
            if event.pk in ours:
                outcomes.append(_announce(event, fields, result, when))
            else:
                outcomes.append(_stale(event, str(fields["status"]), error))
    return outcomes


def _release(events: list[ConversionEvent], until: datetime | None) -> None:
    """Give back claimed rows that were not sent: due again at ``until``, the attempt undone."""
    ConversionEvent.objects.filter(
        pk__in=[event.pk for event in events],
        status=Status.SENDING,
        lease_token=events[0].lease_token,
    ).update(
        status=Status.PENDING,
        leased_until=None,
        lease_token=None,
        next_attempt_at=until,
        attempts=F("attempts") - 1,
    )


# -- pace ----------------------------------------------------------------------

# (API_URL, CLIENT_ID) -> until when this process's deliver_due runs send nothing.
_pauses: dict[tuple[str, str], datetime] = {}
_pauses_lock = threading.Lock()


def _pause_key() -> tuple[str, str]:
    return (pjpixel_settings.API_URL, pjpixel_settings.CLIENT_ID)


def _paused_until(now: datetime) -> datetime | None:
    with _pauses_lock:
        until = _pauses.get(_pause_key())
        if until is not None and until <= now:
            del _pauses[_pause_key()]
            return None
        return until


def _pace(run: _Run, result: SendResult) -> None:
    """After each answer: at the rate limit's reserve (or on a 429), wait briefly or stop."""
    conf = pjpixel_settings
    rate_limit = result.rate_limit if isinstance(result, (ApiResult, PrisjaktAPIError)) else None
    limited = isinstance(result, PrisjaktAPIError) and result.status == 429
    low = (
        rate_limit is not None
        and rate_limit.remaining is not None
        and rate_limit.remaining <= conf.RATE_LIMIT_RESERVE
    )
    if not (limited or low):
        return
    wait = rate_limit.reset_seconds if rate_limit is not None else None
    if isinstance(result, PrisjaktAPIError) and limited and result.retry_after is not None:
        wait = max(wait or 0.0, result.retry_after)
    if wait is None:  # no reset given: wait as after a transient failure
        wait = conf.RETRY_BASE_DELAY
    wait = min(wait, conf.MAX_AGE.total_seconds())
    if wait <= conf.RATE_LIMIT_MAX_WAIT:
        logger.info("pjpixel: rate limit: waiting %.3f s for its reset", wait)
        time.sleep(wait)
        return
    run.stopped = True
    run.rate_limit = rate_limit
    run.resume_at = timezone.now() + timedelta(seconds=wait)


def _defer_due(until: datetime, rate_limit: RateLimit | None) -> None:
    """Make what is due wait for the rate limit's reset (rows, and this process's runs)."""
    deferred = ConversionEvent.objects.filter(
        Q(status=Status.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=until))
    ).update(next_attempt_at=until)
    with _pauses_lock:
        _pauses[_pause_key()] = until
    logger.warning(
        "pjpixel: rate limit: %s of %s requests left in this window; deliver_due stops and "
        "%d due events wait until %s",
        "?" if rate_limit is None or rate_limit.remaining is None else rate_limit.remaining,
        "?" if rate_limit is None or rate_limit.limit is None else rate_limit.limit,
        deferred,
        until.isoformat(),
        extra={"deferred": deferred, "retry_at": until.isoformat()},
    )
