"""Reporting a paid order: ``track_purchase``, the order signals.

``track_purchase`` writes the order's ``ConversionEvent`` in the caller's
transaction (the outbox row) and hands it to the publisher once that commits.
``on_order_completed`` is the receiver of ``signals.order_completed``;
``connect_order_signal`` hooks a shop's own order-paid signal. A row skipped
for want of a click is completed by a later one (``attaching``).

Nothing here raises into the shop's checkout, whatever the shop passes and
whatever ``DEBUG`` says: the order is paid by then. A purchase with a bad
value is kept as a ``failed`` row naming the field (its order id in a safe
form where that is the bad value) and logged at ERROR; any other error is
logged with its traceback. Only a wrong call (a required keyword argument of
``track_purchase`` left out) raises, a ``TypeError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, router, transaction
from django.dispatch import Signal

from django_pjpixel import markets, times
from django_pjpixel.api.clickids import is_well_formed
from django_pjpixel.api.payloads import EVENT_NAME_PURCHASE
from django_pjpixel.attribution import SKIP_ODD_CLICK, resolve_click
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger import publisher
from django_pjpixel.ledger.attaching import attach_click as attach_click  # where it always was
from django_pjpixel.ledger.attaching import attribute
from django_pjpixel.ledger.conflicts import record_conflict
from django_pjpixel.ledger.validation import (
    OrderId,
    Purchase,
    Refused,
    bad_call,
    refused,
    validate_purchase,
)
from django_pjpixel.models import REPORTED_INVALID, ConversionEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("django_pjpixel.purchases")

ORDER_COMPLETED_UID = "django_pjpixel.ledger.purchases.on_order_completed"
PURCHASE_FIELDS = frozenset(
    {
        "order_id",
        "amount",
        "currency",
        "number_of_items",
        "event_time",
        "request",
        "signed_click_id",
        "pixel",
    }
)
REQUIRED_FIELDS = ("order_id", "amount", "number_of_items")
REPORTED_FIELDS = ("order_id", "amount", "currency", "number_of_items", "event_time")

Amount = Decimal | int | float | str
OrderMapper = Callable[..., Mapping[str, Any] | None]
Recorded = TypeVar("Recorded")


def track_purchase(
    *,
    order_id: OrderId,
    amount: Amount,
    currency: str | None = None,
    number_of_items: int,
    event_time: datetime | None = None,
    request: HttpRequest | None = None,
    signed_click_id: str | None = None,
    pixel: str | None = None,
    sender: object = None,
) -> ConversionEvent | None:
    """Record a paid order for delivery to Prisjakt; returns its ``ConversionEvent``.

    Call it inside the transaction that marks the order paid: the row is
    written there, and delivery is queued only once it commits. The click is
    ``signed_click_id``, else the click attached to ``order_id``, else the
    one in ``request``'s click store; without one the row is stored ``skipped``
    with the reason. The same order tracked again returns the existing row;
    a ``skipped`` one becomes ``pending`` if this report brings a usable click.
    A report of the order that is another purchase (a different amount,
    currency, number of items, or given time) is a conflict: logged at
    WARNING and kept on the row, never sent (``conflicts``). With several
    markets (``PJPIXEL["PIXELS"]``) the row is the market's ``pixel`` (a
    market key) names, else the one ``PIXEL_ROUTER`` chooses; one per
    (pixel, order).

    ``order_id`` is a string, an int or a UUID (sent as its ``str``);
    ``event_time`` (default: now) is aware, or naive in ``TIME_ZONE`` under
    ``USE_TZ = False``. An invalid value is logged at ERROR and recorded as a
    ``failed`` row whose ``field_errors`` name the field. Never raises for
    what the shop passes, in either ``DEBUG`` mode; returns None when
    ``PJPIXEL["ENABLED"]`` is false or the row could not be written (logged).
    """
    if not pjpixel_settings.ENABLED:
        return None
    now = times.now()
    reported = {
        "order_id": order_id,
        "amount": amount,
        "currency": currency,
        "number_of_items": number_of_items,
        "event_time": event_time,
    }
    try:
        purchase = validate_purchase(reported=reported, now=now)
        if isinstance(purchase, Refused):
            pixel_id = markets.pixel_of_invalid(reported, request, pixel)
            return _record_invalid(purchase, reported, sender, pixel_id)
        try:
            pixel_id = markets.route(asdict(purchase), request, pixel).pixel_id
        except InvalidInput as err:
            return _record_invalid(refused(err, reported, now), reported, sender, markets.UNROUTED)
        time_given = event_time is not None
        return _record(purchase, request, signed_click_id, now, pixel_id, time_given)
    except Exception:
        logger.exception(
            "pjpixel: could not record the purchase of order %r (sender %r)", order_id, sender
        )
        return None


def on_order_completed(sender: object, **kwargs: Any) -> ConversionEvent | None:
    """The ``order_completed`` receiver (connected in ``AppConfig.ready``); never raises."""
    fields = {name: value for name, value in kwargs.items() if name in PURCHASE_FIELDS}
    return _track_fields(sender, fields)


def connect_order_signal(
    signal: Signal,
    mapper: OrderMapper,
    *,
    sender: object = None,
    dispatch_uid: str | None = None,
) -> Callable[..., ConversionEvent | None]:
    """Track a purchase whenever the shop's own order-paid ``signal`` is sent.

    ``mapper(sender, **kwargs)`` gets the signal's arguments and returns the
    keyword arguments of ``track_purchase`` (``order_id``, ``amount``,
    ``number_of_items``, optionally ``currency``, ``event_time``,
    ``request``, ``signed_click_id``, ``pixel``), or None to ignore this sending::

        connect_order_signal(
            order_paid,
            lambda sender, order, **kw: {
                "order_id": order.number,
                "amount": order.total,
                "number_of_items": order.lines.count(),
            },
            dispatch_uid="shop.pjpixel",
        )

    The receiver never raises into the shop, in either ``DEBUG`` mode: a
    mapper that fails or returns something other than a mapping is logged
    at ERROR; fields that are missing, unknown or invalid are recorded as a
    ``failed`` row naming the field. Returns the connected receiver (kept
    strongly referenced by the signal).
    """

    receiver = mapped_receiver(mapper, partial(_track_fields, strict=True), "order")
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=dispatch_uid)
    return receiver


def mapped_receiver(
    mapper: OrderMapper, record: Callable[[object, dict[Any, Any]], Recorded], what: str
) -> Callable[..., Recorded | None]:
    """A receiver recording ``mapper(sender, **kwargs)`` with ``record(sender, fields)``.

    Never raises into the shop: a mapper that fails or returns something
    other than a mapping (or None: ignore this sending) is logged at ERROR.
    """

    def receiver(sender: object, **kwargs: Any) -> Recorded | None:
        kwargs.pop("signal", None)
        try:
            fields = mapper(sender, **kwargs)
        except Exception:
            logger.exception("pjpixel: the %s mapper %r failed; nothing recorded", what, mapper)
            return None
        if fields is None:
            return None
        if not isinstance(fields, Mapping):
            logger.error(
                "pjpixel: the %s mapper %r returned %s, not a mapping; nothing recorded",
                what,
                mapper,
                type(fields).__name__,
            )
            return None
        return record(sender, dict(fields))

    return receiver


def _track_fields(
    sender: object, fields: dict[Any, Any], *, strict: bool = False
) -> ConversionEvent | None:
    """``track_purchase(**fields)``; missing or unknown fields make a ``failed`` row."""
    known = PURCHASE_FIELDS if strict else None
    err = bad_call(fields, REQUIRED_FIELDS, known, "track_purchase")
    if err is None:
        return track_purchase(sender=sender, **fields)
    if not pjpixel_settings.ENABLED:
        return None
    reported = {name: fields[name] for name in REPORTED_FIELDS if name in fields}
    try:
        pixel_id = markets.pixel_of_invalid(reported, None, fields.get("pixel"))
        return _record_invalid(refused(err, reported, times.now()), reported, sender, pixel_id)
    except Exception:
        logger.exception("pjpixel: could not record the invalid purchase from %r", sender)
        return None


def _record(
    purchase: Purchase,
    request: HttpRequest | None,
    signed_click_id: str | None,
    now: datetime,
    pixel_id: str,
    time_given: bool,
) -> ConversionEvent:
    Status = ConversionEvent.Status
    alias = router.db_for_write(ConversionEvent)
    lookup = {
        "pixel_id": pixel_id,
        "order_id": purchase.order_id,
        "event_name": EVENT_NAME_PURCHASE,
    }
    event: ConversionEvent
    try:
        # One savepoint: a database error here leaves the shop's transaction
        # usable. A new order is the common case, so the row is INSERTed at
        # once and looked up only when the order is already recorded.
        with transaction.atomic(using=alias):
            resolution = resolve_click(
                order_id=purchase.order_id,
                request=request,
                signed_click_id=signed_click_id,
                at=purchase.event_time,
                pixel_id=pixel_id,
            )
            click = resolution.click
            captured_at = click.captured_at if click else None
            # A click of an odd shape is kept on the row, which is held (clickids).
            held = click is not None and not is_well_formed(click.click_id)
            reason = SKIP_ODD_CLICK if held else resolution.skip_reason[:200]
            values: dict[str, Any] = {
                "event_time": times.as_django(purchase.event_time),
                "amount": purchase.amount,
                "api_amount": purchase.api_amount,
                "currency": purchase.currency,
                "number_of_items": purchase.number_of_items,
                "click_id": click.click_id if click else "",
                "click_captured_at": times.as_django(captured_at) if captured_at else None,
                "status": Status.PENDING if click and not held else Status.SKIPPED,
                "skip_reason": "" if click and not held else reason,
                "created_at": times.as_django(now),
            }
            event = ConversionEvent.objects.using(alias).create(**lookup, **values)
        created = True
    except IntegrityError:  # the same order reported again
        event = ConversionEvent.objects.using(alias).get(**lookup)
        created = _replaces_invalid(event, values)
        if not created and record_conflict(
            event, purchase, time_given=time_given, alias=alias, now=now
        ):
            return event  # another purchase under this order id: told, never mixed with it
        created = created or (click is not None and attribute(event, click, alias))
    extra = {"pjpixel_event": event.pk, "order_id": event.order_id, "status": event.status}
    if not created:
        logger.info(
            "pjpixel: order %s is already recorded (%s); not recorded again",
            event.order_id,
            event.status,
            extra=extra,
        )
    elif event.status == str(Status.PENDING):
        logger.info("pjpixel: recorded the purchase of order %s", event.order_id, extra=extra)
        transaction.on_commit(partial(publisher.enqueue, event), using=alias, robust=True)
    else:
        logger.info(
            "pjpixel: order %s is not attributed to a Prisjakt click: %s",
            event.order_id,
            event.skip_reason,
            extra=extra,
        )
    return event


def _replaces_invalid(event: ConversionEvent, values: dict[str, Any]) -> bool:
    """A row recorded as an invalid purchase and never sent takes the valid values."""
    updated = ConversionEvent.objects.filter(REPORTED_INVALID, pk=event.pk).update(
        problem_title="", problem_detail="", field_errors={}, **values
    )
    if updated:
        event.refresh_from_db()
    return bool(updated)


def _record_invalid(
    refusal: Refused, reported: Mapping[str, Any], sender: object, pixel_id: str
) -> ConversionEvent:
    """Log a purchase that cannot be sent, and keep it as a ``failed`` row the admin shows."""
    logger.error(
        "pjpixel: invalid purchase for order %r (sender %r), not sent to Prisjakt: %s",
        reported.get("order_id"),
        sender,
        refusal.error,
    )
    values = dict(refusal.values)
    alias = router.db_for_write(ConversionEvent)
    event: ConversionEvent
    with transaction.atomic(using=alias):
        event, _ = ConversionEvent.objects.using(alias).get_or_create(
            pixel_id=pixel_id,
            order_id=values.pop("order_id"),
            event_name=EVENT_NAME_PURCHASE,
            defaults={**values, "status": ConversionEvent.Status.FAILED},
        )
    return event
