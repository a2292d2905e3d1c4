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

The pieces a batch sender reuses: ``claim_due``, ``send_one``,
``record_outcome``.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from django_pjpixel.client import ApiResult, get_client, purchase_payload
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConflict,
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
# Publishing threads still blocked on the broker before publishes fail fast.
MAX_BLOCKED_PUBLISHERS = 2


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did: the row's new status, and when to try again."""

    status: str
    retry_at: datetime | None = None
    error: Exception | None = None


class PublishTimeout(Exception):
    """The broker did not take the message within ``PUBLISH_TIMEOUT``."""


# -- publishing --------------------------------------------------------------

_blocked: list[threading.Thread] = []
_blocked_lock = threading.Lock()


def enqueue(event: ConversionEvent) -> bool:
    """Queue ``deliver_event(event.pk)``; never raises. False: left to ``deliver_due``.

    Runs from ``transaction.on_commit`` in the checkout, so it is bounded:
    kombu retries the publish ``PUBLISH_RETRIES`` times (at once, then 0.2 s
    apart) and the whole publish is given up after ``PUBLISH_TIMEOUT`` seconds even
    where the transport would block for ever (a Redis broker that accepts
    connections but never answers has no socket timeout by default). The
    message carries the row's key only.
    """
    from django_pjpixel.tasks import deliver_event

    conf = pjpixel_settings
    retries = conf.PUBLISH_RETRIES
    extra = {"pjpixel_event": event.pk, "order_id": event.order_id, "status": event.status}
    try:
        _publish_bounded(
            lambda: deliver_event.apply_async(
                args=(event.pk,),
                retry=retries > 0,
                retry_policy={
                    "max_retries": retries,
                    "interval_start": 0,
                    "interval_step": 0.2,
                    "interval_max": 0.5,
                },
            ),
            conf.PUBLISH_TIMEOUT,
            # Run eagerly (CELERY_TASK_ALWAYS_EAGER) the task runs right here, in
            # the caller's thread and transaction; there is no broker to wait for.
            inline=bool(deliver_event.app.conf.task_always_eager),
        )
    except Exception as err:
        logger.warning(
            "pjpixel: could not queue order %s (%s: %s); deliver_due will send it",
            event.order_id,
            type(err).__name__,
            err,
            extra=extra,
        )
        _leave_due(event)
        return False
    logger.debug("pjpixel: queued order %s", event.order_id, extra=extra)
    return True


def _publish_bounded(publish: Callable[[], object], timeout: float, *, inline: bool) -> None:
    """Run ``publish`` in a thread and wait at most ``timeout`` seconds for it.

    A publish still blocked after that is left to finish (or fail) on its
    own; while ``MAX_BLOCKED_PUBLISHERS`` of them are blocked, new publishes
    fail at once instead of starting more threads.
    """
    if inline:
        publish()
        return
    with _blocked_lock:
        _blocked[:] = [thread for thread in _blocked if thread.is_alive()]
        if len(_blocked) >= MAX_BLOCKED_PUBLISHERS:
            raise PublishTimeout("earlier publishes are still blocked on the broker")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            publish()
        except BaseException as err:  # handed to the caller
            errors.append(err)
        finally:
            connections.close_all()  # any this thread opened (a before_task_publish hook)

    thread = threading.Thread(target=run, name="pjpixel-publish", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with _blocked_lock:
            _blocked.append(thread)
        raise PublishTimeout(f"the broker did not take the message within {timeout:g} s")
    if errors:
        raise errors[0]


def _leave_due(event: ConversionEvent) -> None:
    try:
        ConversionEvent.objects.filter(
            pk=event.pk, status=Status.PENDING, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now())
    except Exception:  # the row is due as it is; this only makes it explicit
        logger.exception("pjpixel: could not mark order %s as due", event.order_id)


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
    alias = router.db_for_write(ConversionEvent)
    with transaction.atomic(using=alias):
        candidates = ConversionEvent.objects.using(alias).filter(due).order_by("pk")
        if connections[alias].features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        pks = list(candidates.values_list("pk", flat=True)[:limit])
        if not pks:
            return []
        ConversionEvent.objects.using(alias).filter(due, pk__in=pks).update(
            status=Status.SENDING,
            leased_until=now + timedelta(seconds=pjpixel_settings.LEASE_SECONDS),
            lease_token=token,
            attempts=F("attempts") + 1,
        )
    return list(ConversionEvent.objects.using(alias).filter(lease_token=token).order_by("pk"))


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
    try:
        return get_client().create_event(payload)
    except Exception as err:  # recorded as an outcome; unexpected ones are retried
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
        logger.warning(
            "pjpixel: the lease on order %s was taken over; this outcome (%s) is dropped",
            event.order_id,
            status,
            extra=_extra(event, status=STALE),
        )
        return Outcome(STALE, error=error)
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
    conf = pjpixel_settings
    if event.attempts >= conf.MAX_ATTEMPTS or now - event.created_at >= conf.MAX_AGE:
        return {"status": Status.DEAD, **problem}, None
    floor = retry_after or 0.0
    if error is not None and error.rate_limit is not None and error.rate_limit.remaining == 0:
        floor = max(floor, error.rate_limit.reset_seconds or 0.0)
    # An absurd Retry-After must not park the row past the age at which it dies anyway.
    delay = min(max(backoff_delay(event.attempts), floor), conf.MAX_AGE.total_seconds())
    retry_at = now + timedelta(seconds=delay)
    return {**problem, "status": Status.PENDING, "next_attempt_at": retry_at}, retry_at


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
    claimed = claim_due(1, now=now, only=Q(pk=event_pk))
    if claimed:
        return _send_claimed(claimed[0])
    row = ConversionEvent.objects.filter(pk=event_pk).values("status", "next_attempt_at").first()
    if row is None:
        logger.warning("pjpixel: no conversion event %s to deliver", event_pk)
        return Outcome(NOT_DUE)
    retry_at = row["next_attempt_at"] if row["status"] == Status.PENDING else None
    return Outcome(NOT_DUE, retry_at=retry_at)


def deliver_due(limit: int | None = None) -> dict[str, int]:
    """Send every row that is due, up to ``limit`` (``DELIVER_DUE_LIMIT``); counts per outcome.

    Rows are claimed a few at a time, never more than can be sent within one
    lease even if every request times out, so concurrent runs (and tasks)
    share the work without sending a row twice. A row that fails again in
    this run waits for its next attempt time; it is not retried in a loop.
    """
    limit = pjpixel_settings.DELIVER_DUE_LIMIT if limit is None else limit
    started = timezone.now()
    counts: Counter[str] = Counter()
    done = 0
    while done < limit:
        batch = claim_due(min(chunk_size(), limit - done), cutoff=started)
        if not batch:
            break
        for event in batch:
            counts[_send_claimed(event).status] += 1
        done += len(batch)
    if counts:
        logger.info("pjpixel: deliver_due %s", dict(counts), extra={"counts": dict(counts)})
    return dict(counts)


def chunk_size() -> int:
    """How many rows one claim takes: what one lease covers at the worst request time."""
    conf = pjpixel_settings
    worst = sum(conf.TIMEOUT) or 1.0
    return max(1, min(conf.BATCH_SIZE, int(conf.LEASE_SECONDS // worst)))
