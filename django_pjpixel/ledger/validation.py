"""What a shop reports about a paid order, checked where it enters django-pjpixel.

Values come as the shop's framework has them: django-oscar's ``order.number``
is an int when its signals fire, a model's key may be a UUID, ``event_time``
is naive under ``USE_TZ = False``. ``check_purchase`` accepts those and
returns the purchase as it is stored and sent (by the rules the payload is
built by), or raises ``InvalidInput`` naming the field; ``validate_purchase``
does it in one pass that yields either the purchase or a ``Refused``: the
error with the fields of the purchase's ``failed`` row. ``invalid_values``
keeps what can be kept of a report that fails, for that row: an order id
that cannot be sent is stored in a safe form that stays unique.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils import timezone

from django_pjpixel import times
from django_pjpixel.api.payloads import (
    MAX_EXTERNAL_EVENT_ID,
    purchase_payload,
    to_api_amount,
    validate_currency,
    validate_items,
)
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.models import INVALID_PURCHASE

_CENT = Decimal("0.01")
_MAX_STORED_AMOUNT = Decimal("1e12")  # ConversionEvent.amount: 14 digits, 2 decimals
_MAX_STORED_ITEMS = 2_147_483_647  # PositiveIntegerField
_MAX_ORDER_ID_BITS = 400  # an int this long has more digits than an order id may
_HASH = 12  # hex digits of the hash that keeps a stored invalid order id unique
_SHOWN = 200  # characters of a refused value kept with its field error
NO_ORDER_ID = "(no order id)"
# What the shop may report as an order id; Prisjakt gets its str.
OrderId = str | int | uuid.UUID


@dataclass(frozen=True)
class Purchase:
    """A purchase as stored and sent; ``event_time`` is aware."""

    order_id: str
    amount: Decimal  # as shown, to the cent
    api_amount: int  # data.amount as sent: rounded once, from the shop's own value
    currency: str
    number_of_items: int
    event_time: datetime


def check_purchase(
    *,
    order_id: object,
    amount: object,
    currency: object,
    number_of_items: object,
    event_time: object,
    now: datetime,
) -> Purchase:
    """The purchase the shop reported, or ``InvalidInput`` naming the first bad field."""
    text = order_id_text(order_id)
    when = now if event_time is None else event_time_of(event_time, now)
    code = pjpixel_settings.DEFAULT_CURRENCY if currency is None else currency
    payload = purchase_payload(
        external_event_id=text,
        amount=amount,
        currency=code,  # type: ignore[arg-type]  # checked by purchase_payload
        number_of_items=number_of_items,  # type: ignore[arg-type]
        event_time=when,
        signed_click_id=None,
    )
    return Purchase(
        order_id=text,
        amount=_cents(amount),
        api_amount=payload["data"]["amount"],
        currency=payload["data"]["currency"],
        number_of_items=payload["data"]["number_of_items"],
        event_time=when,
    )


@dataclass(frozen=True)
class Refused:
    """A reported purchase that cannot be sent: why, and the fields of its ``failed`` row."""

    error: InvalidInput
    values: dict[str, Any]  # ConversionEvent fields, order_id among them


def validate_purchase(*, reported: Mapping[str, Any], now: datetime) -> Purchase | Refused:
    """The purchase the shop reported, or what was wrong with it and the row that says so.

    ``reported`` holds ``check_purchase``'s keyword arguments (``now`` aside).
    """
    try:
        return check_purchase(now=now, **reported)
    except InvalidInput as err:
        return refused(err, reported, now)


def refused(err: InvalidInput, reported: Mapping[str, Any], now: datetime) -> Refused:
    """The ``Refused`` of a reported purchase that ``err`` stops (a bad value, no market)."""
    return Refused(err, invalid_values(err, reported, now))


@dataclass(frozen=True)
class Restated:
    """A refund or cancellation as stored and sent; None: the value is kept as it was."""

    order_id: str
    amount: Decimal
    api_amount: int
    number_of_items: int | None
    currency: str | None


def check_restatement(
    *, order_id: object, amount: object, number_of_items: object, currency: object
) -> Restated:
    """The restatement the shop reported, by the purchase's rules; ``InvalidInput`` if not."""
    text = order_id_text(order_id)
    api_amount = to_api_amount(amount)
    items = None if number_of_items is None else validate_items(number_of_items)
    code = None if currency is None else validate_currency(currency)
    return Restated(text, _cents(amount), api_amount, items, code)


def reason_text(value: object) -> str:
    """A reason the shop gave, as kept: text, control characters escaped, 200 at most."""
    return _escaped(value if isinstance(value, str) else _text(value))[:_SHOWN]


def bad_call(
    fields: Mapping[Any, Any], required: tuple[str, ...], known: frozenset[str] | None, name: str
) -> InvalidInput | None:
    """Arguments a shop's mapper gave ``name``: the first missing, else unknown, one; or None."""
    missing = [field for field in required if field not in fields]
    if missing:
        return InvalidInput(missing[0], "is required")
    unknown = sorted(map(str, set(fields) - known)) if known is not None else []
    return InvalidInput(unknown[0], f"is not an argument of {name}") if unknown else None


def order_id_text(value: object) -> str:
    """The order id as Prisjakt gets it: a string as it is, an int or a UUID through ``str``."""
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        raise InvalidInput(
            "order_id", f"must be a string, an int or a UUID, not {type(value).__name__}"
        )
    too_long = f"must be at most {MAX_EXTERNAL_EVENT_ID} characters"
    if isinstance(value, int) and value.bit_length() > _MAX_ORDER_ID_BITS:
        raise InvalidInput("order_id", too_long)  # before str(), which refuses huge ints
    text = str(value)
    if not text:
        raise InvalidInput("order_id", "must not be empty")
    if len(text) > MAX_EXTERNAL_EVENT_ID:
        raise InvalidInput("order_id", too_long)
    if any(_is_control(char) for char in text):
        raise InvalidInput("order_id", "must not contain control characters (such as NUL)")
    return text


def event_time_of(value: object, now: datetime) -> datetime:
    """The shop's ``event_time``, aware; naive only under ``USE_TZ = False``, in ``TIME_ZONE``."""
    if not isinstance(value, datetime):
        raise InvalidInput("event_time", "must be a datetime")
    if timezone.is_naive(value):
        if settings.USE_TZ:
            raise InvalidInput("event_time", "must be an aware datetime (with a time zone)")
        value = times.aware(value)
    if value > now + times.CLOCK_SKEW:
        raise InvalidInput("event_time", f"is in the future: {value.isoformat()}")
    return value


def stored_order_id(value: object) -> str:
    """The ``order_id`` column of a purchase whose order id ``order_id_text`` refuses.

    Readable (control characters escaped, cut to fit) and unique: a hash of
    the value follows ``#``, so two long ids sharing their first hundred
    characters stay two rows and the same one reported twice stays one. A
    purchase without an order id gets a row of its own each time.
    """
    text = _text(value)
    if not text:
        return f"{NO_ORDER_ID}#{uuid.uuid4().hex[:_HASH]}"
    # hex(): an int too long for str() still has its own hash.
    identity = hex(value) if isinstance(value, int) else f"{type(value).__name__}:{text}"
    digest = hashlib.sha256(identity.encode(errors="backslashreplace")).hexdigest()
    return f"{_escaped(text)[: MAX_EXTERNAL_EVENT_ID - _HASH - 1]}#{digest[:_HASH]}"


def invalid_values(err: InvalidInput, reported: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The fields of the ``failed`` row of a purchase ``check_purchase`` refused with ``err``."""
    order_id = reported.get("order_id")
    try:
        stored_id = order_id_text(order_id)
    except InvalidInput:
        stored_id = stored_order_id(order_id)
    try:
        when = event_time_of(reported.get("event_time"), now)
    except InvalidInput:
        when = now
    currency = reported.get("currency")
    error: dict[str, str] = {"message": err.message}
    if err.field in reported:
        error["value"] = _shown(reported[err.field])
    return {
        "order_id": stored_id,
        "event_time": times.as_django(when),
        "amount": _stored_amount(reported.get("amount")),
        "currency": currency[:3] if isinstance(currency, str) and currency.isprintable() else "",
        "number_of_items": _stored_items(reported.get("number_of_items")),
        "problem_title": INVALID_PURCHASE,
        "problem_detail": str(err),
        "field_errors": {err.field: error},
        "created_at": times.as_django(now),
    }


def _cents(amount: object) -> Decimal:
    """A valid amount to the cent, for display (``to_api_amount`` makes the one sent)."""
    return Decimal(str(amount)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _is_control(char: str) -> bool:
    # Cc: NUL and the other control characters; Cs: lone surrogates, which no
    # database or JSON encoder takes.
    return unicodedata.category(char) in ("Cc", "Cs")


def _escaped(text: str) -> str:
    return "".join(
        char.encode("unicode_escape").decode("ascii") if _is_control(char) else char
        for char in text
    )


def _text(value: object) -> str:
    """``value`` as text, whatever it is; "" for None."""
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:  # a huge int, a broken __str__
        return f"<{type(value).__name__}>"


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return _escaped(text[:_SHOWN])


def _stored_items(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_STORED_ITEMS:
        return value
    return 0


def _stored_amount(value: object) -> Decimal:
    """The amount as far as it can be kept, else 0 (the row records the error)."""
    try:
        amount = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and abs(amount) < _MAX_STORED_AMOUNT else Decimal(0)
