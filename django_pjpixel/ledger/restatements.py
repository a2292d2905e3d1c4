"""Refunds and cancellations: ``restate_purchase`` and ``connect_restatement_signal``.

``restate_purchase`` records a change to a reported purchase as a
``Restatement`` row in the caller's transaction (the refund's), and decides
there what can be done with it:

- the order's event was never tried: the event takes the new values and is
  sent with them (``applied``; no ``PATCH``);
- Prisjakt has the event, or may have it (sent, a 409, being sent, retried):
  the row is ``pending``, and ``deliver_due`` sends it as the many-events
  ``PATCH`` of the event once the event is delivered (``restating``); an
  older restatement of the order still waiting is ``superseded``;
- the order was never reported, was skipped, failed or given up, or its event
  is past Prisjakt's 30-day window: ``unsendable``, with the reason.

With several markets (``PJPIXEL["PIXELS"]``) the event restated is the
order's in the market ``pixel=`` names, else in whichever market has it; an
order id reported in several markets is not guessed at: without ``pixel=`` it
is a ``failed`` row naming ``pixel``.

Prisjakt documents no delete [open]: a cancellation is ``amount=0,
number_of_items=0``. Nothing here raises into the shop's refund, as in
``purchases``: a bad value is a ``failed`` row naming the field and an ERROR
log line; any other error is logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.dispatch import Signal

from django_pjpixel import markets, times
from django_pjpixel.api.payloads import EVENT_NAME_PURCHASE
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger import keyed
from django_pjpixel.ledger.purchases import Amount, OrderMapper, mapped_receiver
from django_pjpixel.ledger.validation import (
    OrderId,
    Restated,
    bad_call,
    check_restatement,
    invalid_values,
    reason_text,
)
from django_pjpixel.models import INVALID_RESTATEMENT, ConversionEvent, Restatement

logger = logging.getLogger("django_pjpixel.restatements")

Status = Restatement.Status
EventStatus = ConversionEvent.Status
APPLIED, PENDING, UNSENDABLE = str(Status.APPLIED), str(Status.PENDING), str(Status.UNSENDABLE)
RESTATEMENT_FIELDS = frozenset(
    {"order_id", "amount", "number_of_items", "currency", "reason", "pixel"}
)
REPORTED_FIELDS = ("order_id", "amount", "number_of_items", "currency")
# Prisjakt refuses a second event with an external_event_id it has "within the last 30
# days" [docs]; past that a PATCH may create a second event rather than change this one.
# Whether the 30 days run from the event's time or from when Prisjakt stored it is
# [open], so from the earlier of event_time and the moment the row was recorded (before
# Prisjakt could store it, so before sent_at), an hour short, for clocks and sends under way.
RESTATEMENT_WINDOW = timedelta(days=30) - timedelta(hours=1)
TOO_OLD = (
    "the purchase is older than 30 days: past Prisjakt's 30-day window a PATCH may create "
    "a second event instead of changing this one"
)
NEVER_REPORTED = "the order was never reported: Prisjakt has no event of it"
SUPERSEDED = "superseded by a later restatement of the order"
CONFLICTING = (
    "the order id was reported again as another purchase (a conflict): which purchase "
    "this refund is of cannot be told, so Prisjakt's is left as it is"
)
# The restatements that stand for the order's values when they are written (in the ledger).
STATED = (Status.APPLIED, Status.PENDING, Status.SENDING, Status.SENT, Status.SUPERSEDED)
_NOT_AT_PRISJAKT = {
    str(EventStatus.SKIPPED): "the purchase was not sent to Prisjakt (skipped: {})",
    str(EventStatus.FAILED): "the purchase was refused, not recorded by Prisjakt (failed)",
    str(EventStatus.DEAD): "sending the purchase was given up: Prisjakt may not have it",
}


def restate_purchase(
    *,
    order_id: OrderId,
    amount: Amount,
    number_of_items: int | None = None,
    currency: str | None = None,
    reason: str = "",
    pixel: str | None = None,
) -> Restatement | None:
    """Restate a reported purchase at Prisjakt after a refund; returns its ``Restatement``.

    Call it inside the refund's (or the cancellation's) transaction: the row
    is written there. ``amount`` is what the order counts at now (a partial
    refund: what is left; a cancellation: ``amount=0, number_of_items=0``);
    ``number_of_items`` and ``currency`` left out keep the values the order
    has. Validated as purchases are (``order_id`` a string, int or UUID).

    With several markets (``PJPIXEL["PIXELS"]``) ``pixel``, a market key as
    ``track_purchase`` takes it, names the market whose event of the order is
    restated; left out, the order's event in whichever market has it. An order
    id reported in several markets needs ``pixel``: without it, as with a key
    that is not a market (or ``pixel`` without ``PIXELS``), the restatement is
    a ``failed`` row naming ``pixel`` and nothing is sent.

    Never raises for what the shop passes: a bad value is recorded as a
    ``failed`` row naming the field and logged at ERROR. Returns None when
    ``PJPIXEL["ENABLED"]`` is false or the row could not be written (logged).
    """
    if not pjpixel_settings.ENABLED:
        return None
    reported = {
        "order_id": order_id,
        "amount": amount,
        "number_of_items": number_of_items,
        "currency": currency,
    }
    try:
        try:
            restated = check_restatement(**reported)
            return _record(restated, reason_text(reason), _scope(pixel))
        except InvalidInput as err:  # a bad value, a bad key, or an order in several markets
            return _record_invalid(err, reported, reason, pixel)
    except Exception:
        logger.exception("pjpixel: could not record the restatement of order %r", order_id)
        return None


def connect_restatement_signal(
    signal: Signal,
    mapper: OrderMapper,
    *,
    sender: object = None,
    dispatch_uid: str | None = None,
) -> Callable[..., Restatement | None]:
    """Restate a purchase whenever the shop's own refund or cancellation ``signal`` is sent.

    ``mapper(sender, **kwargs)`` returns the keyword arguments of
    ``restate_purchase`` (``order_id``, ``amount``, optionally
    ``number_of_items``, ``currency``, ``reason``, ``pixel``), or None to ignore this
    sending. The receiver never raises into the shop: a mapper that fails is
    logged at ERROR; fields missing, unknown or invalid make a ``failed`` row
    naming the field. Returns the connected receiver (kept strongly referenced).
    """
    receiver = mapped_receiver(mapper, _restate_fields, "refund")
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=dispatch_uid)
    return receiver


def not_at_prisjakt(event: ConversionEvent | None) -> str:
    """Why Prisjakt has no event to restate, by the purchase's status; "" if it may have one."""
    if event is None:
        return NEVER_REPORTED
    template = _NOT_AT_PRISJAKT.get(event.status, "")
    return template.format(event.skip_reason or "-")


def window_start(now: datetime) -> datetime:
    """The oldest event time (and recording time) an event restated at ``now`` may have."""
    return now - RESTATEMENT_WINDOW


def restated_values(row: Restatement, now: datetime) -> dict[str, Any]:
    """The fields of the event once ``row`` stands at Prisjakt (or before it is sent)."""
    return {
        "restated_amount": row.amount,
        "restated_api_amount": row.api_amount,
        "restated_number_of_items": row.number_of_items,
        "restated_currency": row.currency,
        "restated_at": times.as_django(now),
    }


@dataclass(frozen=True)
class _Scope:
    """The pixels the order's event is looked for in; ``pixel_id``: the row's if none has it."""

    pixel_ids: tuple[str, ...]
    pixel_id: str


def _scope(pixel: str | None) -> _Scope:
    """The market ``pixel`` names (``InvalidInput`` naming ``pixel`` if none), else every one."""
    if pixel is not None:
        market = markets.market_named(pixel)
        return _Scope((market.pixel_id,), market.pixel_id)
    if not markets.is_configured():
        single = markets.single().pixel_id
        return _Scope((single,), single)
    # Not UNROUTED's rows ("", no market's pixel): purchases Prisjakt never had.
    return _Scope(tuple(markets.pixel_ids()), markets.UNROUTED)


def _record(restated: Restated, reason: str, scope: _Scope) -> Restatement:
    alias = router.db_for_write(Restatement)
    now = times.now()
    with transaction.atomic(using=alias):  # a savepoint: an error leaves the refund's usable
        event = _event_of(restated.order_id, alias, scope)
        row = Restatement(
            event=event,
            pixel_id=event.pixel_id if event is not None else scope.pixel_id,
            order_id=restated.order_id,
            reason=reason,
            amount=restated.amount,
            api_amount=restated.api_amount,
            number_of_items=restated.number_of_items or 0,
            currency=restated.currency or pjpixel_settings.DEFAULT_CURRENCY,
            created_at=times.as_django(now),
        )
        if event is None:
            row.status, row.skip_reason = UNSENDABLE, not_at_prisjakt(event)
        else:
            _take_old_values(row, restated, event, alias)
            row.status, row.skip_reason = _decide(event, now)
            if row.status == APPLIED and not _apply(row, event, now, alias):
                row.status = PENDING  # claimed meanwhile: Prisjakt may get it first
        row.save(using=alias)
        if row.status in (APPLIED, PENDING):
            _supersede(event, row, alias)
    _log_recorded(row)
    return row


def _event_of(order_id: str, alias: str, scope: _Scope) -> ConversionEvent | None:
    """The order's event, locked; ``InvalidInput`` naming ``pixel`` when markets share it."""
    found = _events_of(order_id, alias, scope, lock=True)
    if len(found) > 1:
        pixel_ids = {event.pixel_id for event in found}
        keys = ", ".join(m.key for m in markets.all_markets() if m.pixel_id in pixel_ids)
        raise InvalidInput(
            "pixel",
            f"order {order_id} was reported in markets {keys}: pass pixel= to say which "
            "one is restated",
        )
    return found[0] if found else None


def _events_of(
    order_id: str, alias: str, scope: _Scope, *, lock: bool = False
) -> list[ConversionEvent]:
    """The order's purchase in each of the scope's pixels (one a market at most)."""
    rows = ConversionEvent.objects.using(alias).filter(
        pixel_id__in=scope.pixel_ids, order_id=order_id, event_name=EVENT_NAME_PURCHASE
    )
    # Locked until the refund commits: two restatements of one order are written in turn.
    return list((rows.select_for_update() if lock else rows).order_by("pk"))


def _take_old_values(
    row: Restatement, restated: Restated, event: ConversionEvent, alias: str
) -> None:
    """The order's values before this change: the last restatement's, else the event's."""
    last = (
        Restatement.objects.using(alias)
        .filter(event=event, status__in=STATED)
        .order_by("-pk")
        .first()
    )
    if last is not None:
        old = (last.amount, last.api_amount, last.number_of_items, last.currency)
    else:
        old = (
            event.current_amount,
            event.current_api_amount,
            event.current_number_of_items,
            event.current_currency,
        )
    row.old_amount, row.old_api_amount, row.old_number_of_items, row.old_currency = old
    if restated.number_of_items is None:
        row.number_of_items = old[2]
    if restated.currency is None:
        row.currency = old[3]


def _decide(event: ConversionEvent, now: datetime) -> tuple[str, str]:
    """The new row's status and why it is not sent, by what became of the event."""
    reason = not_at_prisjakt(event)
    if reason:
        return UNSENDABLE, reason
    if event.conflict is not None:  # an amount of two purchases is never sent together
        return UNSENDABLE, CONFLICTING
    if event.status == str(EventStatus.PENDING) and event.attempts == 0:
        return APPLIED, ""
    oldest = min(times.aware(event.event_time), times.aware(event.created_at))
    if oldest <= window_start(now):
        return UNSENDABLE, TOO_OLD
    return PENDING, ""


def _supersede(event: ConversionEvent | None, row: Restatement, alias: str) -> None:
    """Older restatements of the order still waiting are never sent after ``row``."""
    rows = Restatement.objects.using(alias)
    # Read first, then locked and updated by key alone: an UPDATE by status would lock
    # (InnoDB) every pending row, those other refunds insert and senders claim too.
    older = rows.filter(event=event, status=Status.PENDING, pk__lt=row.pk)
    state = keyed.lock(Restatement, older.values_list("pk", flat=True), "status", using=alias)
    pending = [pk for pk, (status,) in state.items() if status == Status.PENDING]
    rows.filter(pk__in=pending).update(status=Status.SUPERSEDED, skip_reason=SUPERSEDED)


def _apply(row: Restatement, event: ConversionEvent, now: datetime, alias: str) -> bool:
    """The event, never tried, takes the new values: it is sent with them."""
    updated = (
        ConversionEvent.objects.using(alias)
        .filter(pk=event.pk, status=EventStatus.PENDING, attempts=0)
        .update(**restated_values(row, now))
    )
    return bool(updated)


def _log_recorded(row: Restatement) -> None:
    extra = {"pjpixel_restatement": row.pk, "order_id": row.order_id, "status": row.status}
    if row.status == UNSENDABLE:
        logger.info(
            "pjpixel: the restatement of order %s is not sent: %s",
            row.order_id,
            row.skip_reason,
            extra=extra,
        )
    else:
        logger.info(
            "pjpixel: recorded the restatement of order %s (%s)",
            row.order_id,
            row.status,
            extra=extra,
        )


def _restate_fields(sender: object, fields: dict[Any, Any]) -> Restatement | None:
    """``restate_purchase(**fields)``; missing or unknown fields make a ``failed`` row."""
    err = bad_call(fields, ("order_id", "amount"), RESTATEMENT_FIELDS, "restate_purchase")
    if err is None:
        return restate_purchase(**fields)
    if not pjpixel_settings.ENABLED:
        return None
    reported = {name: fields[name] for name in REPORTED_FIELDS if name in fields}
    try:
        return _record_invalid(err, reported, fields.get("reason", ""), fields.get("pixel"))
    except Exception:
        logger.exception("pjpixel: could not record the invalid restatement from %r", sender)
        return None


def _record_invalid(
    err: InvalidInput, reported: Mapping[str, Any], reason: object, pixel: Any
) -> Restatement:
    """Log a restatement that cannot be sent, and keep it as a ``failed`` row naming the field.

    The row is the order's event's where one market's event is found (the
    market ``pixel`` names, else any), else of that market's pixel, else of
    no market's (``UNROUTED``; the single pixel's without ``PIXELS``).
    """
    logger.error(
        "pjpixel: invalid restatement of order %r, not sent to Prisjakt: %s",
        reported.get("order_id"),
        err,
    )
    values = {**invalid_values(err, reported, times.now()), "problem_title": INVALID_RESTATEMENT}
    del values["event_time"]
    try:
        scope = _scope(pixel)
    except InvalidInput:  # no market to look in: as track_purchase's, the row is of none
        scope = _Scope((), markets.UNROUTED)
    alias = router.db_for_write(Restatement)
    with transaction.atomic(using=alias):
        found = _events_of(values["order_id"], alias, scope)
        event = found[0] if len(found) == 1 else None
        row: Restatement = Restatement.objects.using(alias).create(
            **values,
            event=event,
            pixel_id=scope.pixel_id if event is None else event.pixel_id,
            reason=reason_text(reason),
            status=Status.FAILED,
        )
    return row
