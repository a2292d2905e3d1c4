"""Reporting a paid order: ``track_purchase``, ``connect_order_signal``, validation.

``track_purchase`` writes the order's ``ConversionEvent`` in the caller's
transaction (the outbox row) and hands it to the publisher once that commits.
``on_order_completed`` is the receiver of ``signals.order_completed``;
``connect_order_signal`` hooks a shop's own order-paid signal.

``track_purchase`` never breaks a paid checkout: with ``DEBUG = False`` a bad
value is logged and recorded as a ``failed`` row, and any other error is
logged; with ``DEBUG = True`` both are raised so the shop's developer sees
them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.dispatch import Signal
from django.utils import timezone

from django_pjpixel import publisher
from django_pjpixel.attribution import resolve_click
from django_pjpixel.client import EVENT_NAME_PURCHASE, purchase_payload
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

ORDER_COMPLETED_UID = "django_pjpixel.purchases.on_order_completed"
PURCHASE_FIELDS = frozenset(
    {
        "order_id",
        "amount",
        "currency",
        "number_of_items",
        "event_time",
        "request",
        "signed_click_id",
    }
)
REQUIRED_FIELDS = ("order_id", "amount", "number_of_items")
_CENT = Decimal("0.01")
_MAX_STORED_AMOUNT = Decimal("1e12")  # ConversionEvent.amount: 14 digits, 2 decimals
_MAX_STORED_ITEMS = 2_147_483_647  # PositiveIntegerField

Amount = Decimal | int | float | str
OrderMapper = Callable[..., Mapping[str, Any] | None]


@dataclass(frozen=True)
class _Purchase:
    order_id: str
    amount: Decimal
    api_amount: int  # data.amount, rounded once from the shop's value
    currency: str
    number_of_items: int
    event_time: datetime


def track_purchase(
    *,
    order_id: str,
    amount: Amount,
    currency: str | None = None,
    number_of_items: int,
    event_time: datetime | None = None,
    request: HttpRequest | None = None,
    signed_click_id: str | None = None,
    sender: object = None,
) -> ConversionEvent | None:
    """Record a paid order for delivery to Prisjakt; returns its ``ConversionEvent``.

    Call it inside the transaction that marks the order paid: the row is
    written there, and delivery is queued only once it commits. The click is
    ``signed_click_id``, else the click attached to ``order_id``, else the
    one in ``request``'s session; without one the row is stored ``skipped``
    with the reason. The same order tracked again returns the existing row.

    Returns None when ``PJPIXEL["ENABLED"]`` is false, and, with
    ``DEBUG = False``, when the purchase could not be recorded at all (an
    invalid order id, a database error: logged at ERROR). Other invalid
    values are recorded as a ``failed`` row. With ``DEBUG = True`` an invalid
    value raises ``InvalidInput`` (a ``ValueError`` naming the field).
    """
    if not pjpixel_settings.ENABLED:
        return None
    now = timezone.now()
    try:
        purchase = _validate(order_id, amount, currency, number_of_items, event_time, now)
    except InvalidInput as err:
        if settings.DEBUG:
            raise
        return _record_invalid(err, order_id, amount, currency, number_of_items, event_time, now)
    try:
        return _record(purchase, request, signed_click_id, now)
    except Exception:
        if settings.DEBUG:
            raise
        logger.exception(
            "pjpixel: could not record the purchase of order %s (sender %r)",
            purchase.order_id,
            sender,
            extra={"order_id": purchase.order_id},
        )
        return None


def on_order_completed(sender: object, **kwargs: Any) -> ConversionEvent | None:
    """The ``order_completed`` receiver (connected in ``AppConfig.ready``)."""
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
    ``request``, ``signed_click_id``), or None to ignore this sending::

        connect_order_signal(
            order_paid,
            lambda sender, order, **kw: {
                "order_id": str(order.pk),
                "amount": order.total,
                "number_of_items": order.lines.count(),
            },
            dispatch_uid="shop.pjpixel",
        )

    A mapper that fails is treated like an invalid value: raised with
    ``DEBUG = True``, else logged. Returns the connected receiver (kept
    strongly referenced by the signal).
    """

    def receiver(sender: object, **kwargs: Any) -> ConversionEvent | None:
        kwargs.pop("signal", None)
        try:
            fields = mapper(sender, **kwargs)
        except Exception:
            if settings.DEBUG:
                raise
            logger.exception("pjpixel: the order mapper %r failed; nothing tracked", mapper)
            return None
        if fields is None:
            return None
        return _track_fields(sender, dict(fields), strict=True)

    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=dispatch_uid)
    return receiver


def _track_fields(
    sender: object, fields: dict[str, Any], *, strict: bool = False
) -> ConversionEvent | None:
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    unknown = sorted(set(fields) - PURCHASE_FIELDS) if strict else []
    if missing or unknown:
        err = (
            InvalidInput(missing[0], "is required")
            if missing
            else InvalidInput(unknown[0], "is not an argument of track_purchase")
        )
        if settings.DEBUG:
            raise err
        logger.error("pjpixel: invalid purchase from %r, nothing tracked: %s", sender, err)
        return None
    return track_purchase(sender=sender, **fields)


def _validate(
    order_id: object,
    amount: object,
    currency: object,
    number_of_items: object,
    event_time: object,
    now: datetime,
) -> _Purchase:
    """The purchase as stored, checked by the same rules that build the payload."""
    when = now if event_time is None else event_time
    if not isinstance(when, datetime):
        raise InvalidInput("event_time", "must be an aware datetime (with a time zone)")
    code = pjpixel_settings.DEFAULT_CURRENCY if currency is None else currency
    try:
        payload = purchase_payload(
            external_event_id=order_id,  # type: ignore[arg-type]  # checked here
            amount=amount,
            currency=code,  # type: ignore[arg-type]
            number_of_items=number_of_items,  # type: ignore[arg-type]
            event_time=when,
            signed_click_id=None,
        )
    except InvalidInput as err:
        if err.field == "external_event_id":  # the shop calls it order_id
            raise InvalidInput("order_id", err.message) from None
        raise
    return _Purchase(
        order_id=payload["external_event_id"],
        amount=Decimal(str(amount)).quantize(_CENT, rounding=ROUND_HALF_UP),
        api_amount=payload["data"]["amount"],
        currency=payload["data"]["currency"],
        number_of_items=payload["data"]["number_of_items"],
        event_time=when,
    )


def _record(
    purchase: _Purchase,
    request: HttpRequest | None,
    signed_click_id: str | None,
    now: datetime,
) -> ConversionEvent:
    Status = ConversionEvent.Status
    alias = router.db_for_write(ConversionEvent)
    lookup = {
        "pixel_id": pjpixel_settings.PIXEL_ID,
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
                now=now,
            )
            click = resolution.click
            values: dict[str, Any] = {
                "event_time": purchase.event_time,
                "amount": purchase.amount,
                "api_amount": purchase.api_amount,
                "currency": purchase.currency,
                "number_of_items": purchase.number_of_items,
                "click_id": click.click_id if click else "",
                "click_captured_at": click.captured_at if click else None,
                "status": Status.PENDING if click else Status.SKIPPED,
                "skip_reason": "" if click else resolution.skip_reason[:200],
                "created_at": now,
            }
            event = ConversionEvent.objects.using(alias).create(**lookup, **values)
        created = True
    except IntegrityError:  # the same order reported again
        event = ConversionEvent.objects.using(alias).get(**lookup)
        created = _replaces_invalid(event, values)
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
    updated = ConversionEvent.objects.filter(
        pk=event.pk,
        status=ConversionEvent.Status.FAILED,
        problem_title=INVALID_PURCHASE,
        attempts=0,
    ).update(problem_title="", problem_detail="", field_errors={}, **values)
    if updated:
        event.refresh_from_db()
    return bool(updated)


def _record_invalid(
    err: InvalidInput,
    order_id: object,
    amount: object,
    currency: object,
    number_of_items: object,
    event_time: object,
    now: datetime,
) -> ConversionEvent | None:
    """Log an invalid purchase and keep it in the ledger (when its order id allows)."""
    logger.error(
        "pjpixel: invalid purchase for order %r, not sent to Prisjakt: %s",
        order_id,
        err,
        extra={"order_id": order_id if isinstance(order_id, str) else None},
    )
    if err.field == "order_id":
        return None
    assert isinstance(order_id, str)  # _validate checked it first
    try:
        return _store_invalid(err, order_id, amount, currency, number_of_items, event_time, now)
    except Exception:
        logger.exception("pjpixel: could not record the invalid purchase of order %s", order_id)
        return None


def _store_invalid(
    err: InvalidInput,
    order_id: str,
    amount: object,
    currency: object,
    number_of_items: object,
    event_time: object,
    now: datetime,
) -> ConversionEvent:
    event: ConversionEvent
    alias = router.db_for_write(ConversionEvent)
    with transaction.atomic(using=alias):
        event, _ = ConversionEvent.objects.get_or_create(
            pixel_id=pjpixel_settings.PIXEL_ID,
            order_id=order_id,
            event_name=EVENT_NAME_PURCHASE,
            defaults={
                "event_time": event_time if _is_aware(event_time) else now,
                "amount": _stored_amount(amount),
                "currency": currency[:3] if isinstance(currency, str) else "",
                "number_of_items": number_of_items
                if isinstance(number_of_items, int)
                and not isinstance(number_of_items, bool)
                and 0 <= number_of_items <= _MAX_STORED_ITEMS
                else 0,
                "status": ConversionEvent.Status.FAILED,
                "problem_title": INVALID_PURCHASE,
                "problem_detail": str(err),
                "field_errors": {err.field: {"message": err.message}},
                "created_at": now,
            },
        )
    return event


def _is_aware(value: object) -> bool:
    return isinstance(value, datetime) and timezone.is_aware(value)


def _stored_amount(value: object) -> Decimal:
    """The amount as far as it can be kept, else 0 (the row records the error)."""
    try:
        amount = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and abs(amount) < _MAX_STORED_AMOUNT else Decimal(0)
