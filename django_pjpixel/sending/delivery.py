"""Sending one ``ConversionEvent`` row: ``deliver_event`` and the outcome's announcement.

``deliver_event(pk)`` claims the row if it is due (``outbox.claim_one``),
asks ``pre_send``, ``POST``s the event, writes the outcome while the lease is
still ours (``outbox``), then logs it and sends ``post_send``. Plain
functions, no Celery needed: ``tasks.deliver_event`` wraps this one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from django_pjpixel import times
from django_pjpixel.api.auth import SEND_ROLES
from django_pjpixel.api.client import get_client
from django_pjpixel.api.payloads import purchase_payload
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktAuthError,
)
from django_pjpixel.logtext import one_line
from django_pjpixel.markets import market_of
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending.outbox import (
    NOT_DUE,
    STALE,
    Outcome,
    SendResult,
    Written,
    claim_one,
    write_chunk,
    write_outcome,
)
from django_pjpixel.signals import Cancel, post_send, pre_send

logger = logging.getLogger("django_pjpixel.delivery")

Status = ConversionEvent.Status
_DELIVERED = frozenset({str(Status.SENT), str(Status.DUPLICATE)})
_SKIPPED, _FAILED, _DEAD = str(Status.SKIPPED), str(Status.FAILED), str(Status.DEAD)
_ROLE_HINT = "the client needs one of the roles " + ", ".join(SEND_ROLES) + " to send events"


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


def build_payload(event: ConversionEvent, restated: Restatement | None = None) -> dict[str, Any]:
    """The row's create-event body, with its current values or those ``restated`` holds.

    ``data.amount`` is the one rounded when the purchase (or restatement) was recorded.
    """
    if restated is None:
        amount, api_amount = event.current_amount, event.current_api_amount
        currency, items = event.current_currency, event.current_number_of_items
    else:
        amount, api_amount = restated.amount, restated.api_amount
        currency, items = restated.currency, restated.number_of_items
    return purchase_payload(
        external_event_id=event.order_id,
        amount=amount,
        api_amount=api_amount,
        currency=currency,
        number_of_items=items,
        event_time=times.aware(event.event_time),
        signed_click_id=event.click_id or None,
        event_name=event.event_name,
    )


def send_one(event: ConversionEvent) -> SendResult:
    """Ask ``pre_send``, then POST the event; returns the answer or the error, never raises."""
    prepared = prepare(event)
    if not isinstance(prepared, dict):
        return prepared
    return post(prepared, event.pixel_id)


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


def post(payload: dict[str, Any], pixel_id: str | None = None) -> SendResult:
    """POST one event with the client of ``pixel_id``'s market."""
    try:
        return get_client(pixel_id).create_event(payload)
    except Exception as err:  # recorded as an outcome; unexpected ones are retried
        return err


def patch(payloads: list[dict[str, Any]], pixel_id: str | None = None) -> SendResult:
    try:
        return get_client(pixel_id).create_events(payloads)
    except Exception as err:  # as in post
        return err


def _send_claimed(event: ConversionEvent) -> Outcome:
    return record_outcome(event, send_one(event))


# -- recording ---------------------------------------------------------------


def record_outcome(
    event: ConversionEvent, result: SendResult, *, now: datetime | None = None
) -> Outcome:
    """Write what ``send_one`` got, if ``event``'s lease is still ours; emit ``post_send``."""
    now = timezone.now() if now is None else now
    return announce(result, write_outcome(event, result, now=now))[0]


def record_chunk(events: list[ConversionEvent], result: SendResult) -> list[Outcome]:
    """Write one answer for every row of a chunk (``outbox.write_chunk``); ``post_send`` each."""
    outcomes: list[Outcome] = []
    for written in write_chunk(events, result):
        outcomes.extend(announce(result, written))
    return outcomes


def announce(result: SendResult, written: Written[ConversionEvent]) -> list[Outcome]:
    """Log the outcome of each row ``written`` (or that its lease was lost); ``post_send`` each."""
    error = result if isinstance(result, Exception) else None
    status = str(written.fields["status"])
    outcomes = [_stale(event, status, error) for event in written.stale]
    for event in written.rows:
        outcomes.append(_announce(event, written.fields, result, written.retry_at))
    return outcomes


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


def _extra(event: ConversionEvent, **overrides: Any) -> dict[str, Any]:
    return {
        "pjpixel_event": event.pk,
        "order_id": event.order_id,
        "status": event.status,
        "request_id": one_line(event.request_id) if event.request_id else None,
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
        market = market_of(event.pixel_id)
        logger.error(
            "pjpixel: Prisjakt refused the credentials of client id %r (HTTP %s) for order %s: "
            "%s: %s",
            market.client_id,
            result.status,
            order,
            _ROLE_HINT if result.status == 403 else market.credentials_hint,
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
