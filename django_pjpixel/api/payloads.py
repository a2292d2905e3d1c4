"""The API's field formats: what an event body and a listing query may hold.

Pure functions over values, no I/O: the create-event body in the seed's shape,
the time and amount formats, the limits Prisjakt documents, checked before any
request so a bad order fails here with the field's name (``InvalidInput``)
rather than as a 400 from the API. Each fact is marked as in the project's API
notes: [seed] the conversion-tracking page, [docs] Prisjakt's developer docs,
[open] unsaid, so the project's choice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from django_pjpixel.api.clickids import is_valid_click_id
from django_pjpixel.conf import SUPPORTED_CURRENCIES, pjpixel_settings
from django_pjpixel.exceptions import MAX_HEADER_WAIT, InvalidInput

EVENT_NAME_PURCHASE = "purchase"
# The only documented event name [seed][docs].
EVENT_NAMES = (EVENT_NAME_PURCHASE,)
# The pixel's eventId, which external_event_id is [docs].
MAX_EXTERNAL_EVENT_ID = 100
# The bound of amount and of number_of_items [docs].
MAX_VALUE = 999_999_999
# The widest from..to of one listing [docs].
MAX_LIST_RANGE = timedelta(days=60)
_MAX_DIGITS = 18


def format_time(value: datetime) -> str:
    """``event_time`` and the listing's ``from``/``to``: ISO-8601 in UTC [seed].

    Milliseconds (truncated) and ``Z``: ``2025-03-13T10:45:46.987Z``, as in the
    seed's body; the year always has four digits (``0999-…``), as ISO 8601
    wants. Raises ``InvalidInput("event_time")`` for a naive datetime, and for
    one whose UTC time is outside the years 1 to 9999.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("event_time", "must be an aware datetime (with a time zone)")
    utc = _in_utc(value, "event_time")
    # Not strftime("%Y"): on glibc it writes the year 1 as "1".
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _in_utc(value: datetime, name: str) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as err:  # 0001-01-01 00:00 in UTC+1 is in the year 0
        raise InvalidInput(name, "is outside the years 1 to 9999 in UTC") from err


def to_api_amount(amount: object, units: str | None = None) -> int:
    """``data.amount``: an integer from 0 to 999,999,999 [docs].

    ``amount`` is an int, float, Decimal or numeric string in the currency's
    whole units; ``units`` ("major" or "minor", default
    ``PJPIXEL["AMOUNT_UNITS"]``) says whether the API gets whole units or minor
    units (öre, cents) [open]. Rounded half-up, once, from ``amount`` exactly as
    given: a float is read as its shortest repr (``996.396 * 1.25`` is
    ``1245.495``, so 1245), the decimal a person would read it as, not the
    binary value behind it. Raises ``InvalidInput("amount")``
    for a non-number, NaN, infinity, or a value outside the range (a refund's
    negative amount included).
    """
    if isinstance(amount, bool) or not isinstance(amount, (int, float, Decimal, str)):
        raise InvalidInput("amount", f"must be a number, not {type(amount).__name__}")
    try:
        value = Decimal(repr(amount) if isinstance(amount, float) else str(amount))
    except InvalidOperation as err:
        raise InvalidInput("amount", f"{amount!r} is not a number") from err
    if not value.is_finite():
        raise InvalidInput("amount", "must be a finite number")
    scale = 100 if (units or pjpixel_settings.AMOUNT_UNITS) == "minor" else 1
    # Checked before scaling and rounding: -0.4 is a refund, not 0, and huge values
    # make Decimal arithmetic raise.
    if not 0 <= value < (MAX_VALUE + Decimal("0.5")) / scale:
        raise InvalidInput("amount", f"must be between 0 and {MAX_VALUE}, got {amount!r}")
    return int((value * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def validate_api_amount(value: object) -> int:
    """``data.amount`` already in the API's units: a whole number from 0 to 999,999,999."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VALUE:
        raise InvalidInput("amount", f"must be a whole number between 0 and {MAX_VALUE}")
    return value


def purchase_payload(
    *,
    external_event_id: str,
    amount: object,
    currency: str,
    number_of_items: int,
    event_time: datetime,
    signed_click_id: str | None,
    event_name: str = EVENT_NAME_PURCHASE,
    amount_units: str | None = None,
    api_amount: int | None = None,
) -> dict[str, Any]:
    """The create-event body, exactly in the seed's shape and key order [seed]::

        {"event_name": "purchase", "event_time": "2025-03-13T10:45:46.987Z",
         "external_event_id": "order-10045",
         "data": {"amount": 1234, "currency": "SEK", "number_of_items": 4},
         "signed_click_id": "<pjclid>"}

    ``signed_click_id`` None leaves the key out. ``api_amount``, when given, is
    ``data.amount`` as ``to_api_amount`` made it earlier, sent as it is (not
    rounded again) in place of ``amount``. Raises ``InvalidInput``, naming the
    field, for anything the API would refuse.
    """
    validate_external_event_id(external_event_id)
    if event_name not in EVENT_NAMES:
        raise InvalidInput("event_name", f"must be one of {', '.join(EVENT_NAMES)}")
    payload: dict[str, Any] = {
        "event_name": event_name,
        "event_time": format_time(event_time),
        "external_event_id": external_event_id,
        "data": {
            "amount": to_api_amount(amount, amount_units)
            if api_amount is None
            else validate_api_amount(api_amount),
            "currency": validate_currency(currency),
            "number_of_items": validate_items(number_of_items),
        },
    }
    if signed_click_id is not None:
        if not is_valid_click_id(signed_click_id):
            raise InvalidInput(
                "signed_click_id", "is not a Prisjakt click id (a placeholder, or junk)"
            )
        payload["signed_click_id"] = signed_click_id
    return payload


def validate_external_event_id(value: object) -> str:
    """``external_event_id`` (the order id): 1 to 100 characters [docs].

    Optional to the API [seed], required here: it is what makes a resend
    harmless (409 within 30 days [docs]). Raises ``InvalidInput``.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput("external_event_id", "must be a non-empty string (the order id)")
    if len(value) > MAX_EXTERNAL_EVENT_ID:
        raise InvalidInput(
            "external_event_id", f"must be at most {MAX_EXTERNAL_EVENT_ID} characters"
        )
    return value


def validate_currency(value: object) -> str:
    """``data.currency``: an ISO 4217 code of DKK, EUR, GBP, NOK, NZD, SEK [docs].

    Returned upper-cased (``"eur"`` is ``"EUR"``). Raises ``InvalidInput``.
    """
    code = value.upper() if isinstance(value, str) else None
    if code not in SUPPORTED_CURRENCIES:
        raise InvalidInput("currency", f"{value!r} is not one of {', '.join(SUPPORTED_CURRENCIES)}")
    return code


def validate_items(value: object) -> int:
    """``data.number_of_items``: a whole number from 0 to 999,999,999 [docs].

    A bool, a float or a string is refused, not converted. Raises ``InvalidInput``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("number_of_items", "must be a whole number")
    if not 0 <= value <= MAX_VALUE:
        raise InvalidInput("number_of_items", f"must be between 0 and {MAX_VALUE}")
    return value


def check_range(start: datetime, end: datetime) -> None:
    """Refuse a listing range the API would refuse, before any request.

    ``from`` and ``to`` are aware datetimes, ``to`` not before ``from``, at most
    60 days apart in real (UTC) time [docs]. Raises ``InvalidInput("from")`` or
    ``InvalidInput("to")``.
    """
    for name, value in (("from", start), ("to", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidInput(name, "must be an aware datetime")
    # In UTC: within one zone, aware subtraction ignores a daylight-saving change.
    start_utc, end_utc = _in_utc(start, "from"), _in_utc(end, "to")
    if end_utc < start_utc:
        raise InvalidInput("to", "must not be before from")
    if end_utc - start_utc > MAX_LIST_RANGE:
        raise InvalidInput("to", "the range may span at most 60 days")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110).

    Delay-seconds (ASCII digits) or an HTTP date, counted from ``now`` (default:
    the current UTC time); a date in the past is 0.0, and no wait is longer than
    the API's one-hour rate-limit window (``MAX_HEADER_WAIT``). None when the
    header is absent or garbage: never raises.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_HEADER_WAIT) if len(value) <= _MAX_DIGITS else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(delta, 0.0), MAX_HEADER_WAIT)
