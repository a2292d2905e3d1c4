"""The visitor's click, the attribution window, consent, the click kept for an order.

A click is kept in the store ``PJPIXEL["CLICK_STORE"]`` names (``stores``:
the session, or a signed cookie) as its id and capture time. At checkout
``keep_click_for_order`` (behind ``purchases.attach_click``) copies it, or
else the browser script's click the checkout form posted
(``{% pjpixel_click_input %}``), to an ``OrderClick`` row, so a payment
confirmed later without the visitor (a payment provider's webhook) is still
attributed. ``resolve_click`` picks the click for an order: an explicit
``signed_click_id``, else the click attached to the order, else the
request's store. The window runs from the click to the purchase.

With several markets (``PJPIXEL["PIXELS"]``) one order id may be an order in
each, so a click is kept with the market ``attach_click(pixel=)`` names, and
serves that market's purchase of the order only. A click attached naming no
market serves the order's purchase in one market, and none when the order id
is recorded in several: a click is one visit to one market's site, and which
one is not guessed.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import SuspiciousOperation
from django.db import router
from django.utils.module_loading import import_string

from django_pjpixel import markets, stores, times
from django_pjpixel.api.clickids import best, is_valid_click_id, is_well_formed, replaces
from django_pjpixel.api.payloads import EVENT_NAME_PURCHASE
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.models import ConversionEvent, OrderClick

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("django_pjpixel.attribution")

SESSION_KEY = stores.SESSION_KEY
# The checkout form's field for the browser script's click ({% pjpixel_click_input %}).
POST_FIELD = "pjpixel_click_id"
MAX_ORDER_ID = 100  # OrderClick.order_id.max_length
# OrderClick.pixel_id of a click attached naming no market (every click without PIXELS).
UNNAMED = ""

# Why an order is not attributed (ConversionEvent.skip_reason).
SKIP_NO_CLICK = "no click"
SKIP_OUTSIDE_WINDOW = "click outside the attribution window"
SKIP_NO_CONSENT = "no consent"
SKIP_INVALID_CLICK_ID = "invalid click id"
SKIP_CLICK_AFTER_PURCHASE = "click after the purchase"
SKIP_MARKET_NOT_NAMED = "click attached without pixel=, and the order is in several markets"
# Held, not sent: the only click is of another shape than PJPIXEL["CLICK_ID_PATTERN"].
SKIP_ODD_CLICK = "click id of an unexpected shape: held"


@dataclass(frozen=True)
class Click:
    """A Prisjakt click id and when the shop captured it (aware; None: unknown)."""

    click_id: str
    captured_at: datetime | None

    def skip_reason_at(self, purchased_at: datetime) -> str:
        """Why a purchase made at ``purchased_at`` is not attributed to this click; "" if it is.

        The window runs from the capture to the purchase, however late the
        purchase is reported. A purchase more than ``times.CLOCK_SKEW``
        before the capture was not made through this click. A click whose
        capture time is unknown (a ``signed_click_id`` the shop gives) counts
        as within: Prisjakt applies its own window.
        """
        if self.captured_at is None:
            return ""
        age = times.aware(purchased_at) - times.aware(self.captured_at)
        if age < -times.CLOCK_SKEW:
            return SKIP_CLICK_AFTER_PURCHASE
        if age > pjpixel_settings.ATTRIBUTION_WINDOW:
            return SKIP_OUTSIDE_WINDOW
        return ""

    def is_within_window(self, now: datetime | None = None) -> bool:
        """Whether a purchase at ``now`` (default: the current time) is attributed to it."""
        return not self.skip_reason_at(times.now() if now is None else now)


@dataclass(frozen=True)
class Resolution:
    """The click an order is attributed to, or why it is not (``skip_reason``)."""

    click: Click | None
    skip_reason: str = ""

    @property
    def is_attributable(self) -> bool:
        return self.click is not None


def has_consent(request: HttpRequest) -> bool:
    """Whether the visitor allows the click id to be stored and sent.

    Asks ``PJPIXEL["CONSENT"]`` (a callable or its dotted path, ``request ->
    bool``); without one, consent is assumed. The shop and Prisjakt are joint
    controllers (GDPR Art. 26): obtaining consent is the shop's legal
    responsibility, and this hook is where the shop says whether it has it.
    A hook that fails (raises, cannot be imported, returns an awaitable)
    counts as no consent and is logged.
    """
    hook: Any = pjpixel_settings.get("CONSENT")
    if not hook:
        return True
    try:
        func = import_string(hook) if isinstance(hook, str) else hook
        answer = func(request)
    except Exception:
        logger.exception("PJPIXEL['CONSENT'] hook failed; treating it as no consent")
        return False
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()  # never awaited: close it rather than warn
        logger.error("PJPIXEL['CONSENT'] hook must be synchronous; treating it as no consent")
        return False
    return bool(answer)


def store_click(request: HttpRequest, click_id: str, now: datetime | None = None) -> Click:
    """Keep ``click_id`` in the store as captured at ``now``; it replaces an older click.

    Does not ask for consent: the caller has (``PjclidMiddleware`` does). The
    same click id landing again keeps its first capture time, so reloading
    the landing page neither extends the window nor rewrites the store. A
    click of an odd shape never replaces a well-formed one (``clickids``):
    the kept click is returned.
    """
    if not is_valid_click_id(click_id):
        raise InvalidInput("click_id", "is not a Prisjakt click id")
    current = get_click(request)
    if current is not None and (
        current.click_id == click_id or not replaces(click_id, current.click_id)
    ):
        return current
    captured_at = times.aware(now) if now is not None else times.now()
    stores.current().save(request, click_id, captured_at)
    return Click(click_id, captured_at)


def get_click(request: HttpRequest) -> Click | None:
    """The click in the request's store, or None (also for corrupt or forged data)."""
    stored = stores.current().load(request)
    return None if stored is None else Click(*stored)


def forget_click(request: HttpRequest) -> None:
    """Withdrawn consent: drop the visitor's click from every store, and every order row holding it.

    Both stores, whichever ``CLICK_STORE`` says now: a shop that switched
    stores may still hold the click in the other. The cookie store deletes its
    cookie on this request's response (``PjclidMiddleware``).
    """
    kept = [store.load(request) for store in stores.STORES.values()]
    for store in stores.STORES.values():
        store.forget(request)
    click_ids = {stored[0] for stored in kept if stored is not None}
    if click_ids:
        OrderClick.objects.filter(click_id__in=click_ids).delete()


def posted_click(request: HttpRequest, now: datetime | None = None) -> Click | None:
    """The browser script's click, posted by the checkout form as ``pjpixel_click_id``.

    Checked like a ``?pjclid=``; a value that cannot be one is no click. The
    shop learns of it now, so it counts as captured now (default: the
    current time): the browser script let it expire after its own window.
    """
    try:
        value = request.POST.get(POST_FIELD) if request.method == "POST" else None
    except SuspiciousOperation:  # too large, too many fields
        return None
    if not isinstance(value, str) or not is_valid_click_id(value):
        return None
    return Click(value, times.aware(now) if now is not None else times.now())


def keep_click_for_order(
    request: HttpRequest, order_id: str, *, pixel_id: str = UNNAMED, now: datetime | None = None
) -> Click | None:
    """Keep the visitor's click for ``order_id`` (``attaching.attach_click``); returns it.

    The store's click, else the browser script's click the checkout form
    posted, kept for the market of ``pixel_id`` (``UNNAMED``: for none named);
    a well-formed click wins over an odd one, and a click attached before is
    never replaced by an odd one (``clickids``).
    Nothing is kept without consent, without a click, or when a purchase at
    ``now`` (default: the current time) would not be attributed to it.
    """
    if not has_consent(request):
        return None
    kept = get_click(request)
    found = [kept] if kept is not None and kept.is_within_window(now) else []
    posted = posted_click(request, now)  # captured now: within the window
    found += [posted] if posted is not None else []
    chosen = best([found_click.click_id for found_click in found])
    click = next((found_click for found_click in found if found_click.click_id == chosen), None)
    if click is None:
        return None
    assert click.captured_at is not None  # a kept or posted click has its capture time
    attached = OrderClick.objects.filter(order_id=order_id, pixel_id=pixel_id).first()
    if attached is not None and not replaces(click.click_id, attached.click_id):
        return Click(attached.click_id, times.aware(attached.captured_at))
    OrderClick.objects.update_or_create(
        order_id=order_id,
        pixel_id=pixel_id,
        defaults={"click_id": click.click_id, "captured_at": times.as_django(click.captured_at)},
    )
    return click


def click_for_order(order_id: str, pixel_id: str | None = None) -> Click | None:
    """The click ``attach_click`` kept for ``order_id`` in the market of ``pixel_id``, or None.

    See ``attached_click``.
    """
    return attached_click(order_id, pixel_id).click


def attached_click(order_id: str, pixel_id: str | None = None) -> Resolution:
    """The click kept for ``order_id``'s purchase in the market of ``pixel_id`` (a row's).

    Without ``PIXELS``, the order's click, as always. With several markets,
    the click attached naming that market, else one attached naming none
    (``pixel_id`` None: only that one), unless the order id is recorded in
    another market too (``SKIP_MARKET_NOT_NAMED``): used there, one click
    would count in two markets, or in the wrong one.
    """
    if not isinstance(order_id, str) or not order_id or len(order_id) > MAX_ORDER_ID:
        return Resolution(None, SKIP_NO_CLICK)  # no query: it cannot have been attached
    rows = OrderClick.objects.filter(order_id=order_id)
    if markets.is_configured():
        named = (UNNAMED,) if pixel_id is None else (pixel_id, UNNAMED)
        rows = rows.filter(pixel_id__in=named).order_by("-pixel_id")  # the market's own first
    row = rows.first()
    if row is None or not is_valid_click_id(row.click_id):  # junk kept by an older version
        return Resolution(None, SKIP_NO_CLICK)
    unnamed = row.pixel_id == UNNAMED and markets.is_configured()
    if unnamed and pixel_id is not None and order_pixels(order_id) - {pixel_id}:
        return Resolution(None, SKIP_MARKET_NOT_NAMED)
    return Resolution(Click(row.click_id, times.aware(row.captured_at)))


def order_pixels(order_id: str) -> set[str]:
    """The pixels of the markets in which a purchase of ``order_id`` is recorded."""
    alias = router.db_for_write(ConversionEvent)  # the ledger, as the caller's transaction sees it
    rows = ConversionEvent.objects.using(alias).filter(
        order_id=order_id, event_name=EVENT_NAME_PURCHASE, pixel_id__in=markets.pixel_ids()
    )
    return set(rows.values_list("pixel_id", flat=True).distinct())


def resolve_click(
    *,
    order_id: str,
    request: HttpRequest | None = None,
    signed_click_id: str | None = None,
    at: datetime | None = None,
    pixel_id: str | None = None,
) -> Resolution:
    """The click of ``order_id``'s purchase, made at ``at`` (default: the current time).

    Sources, in order: ``signed_click_id`` (None or "" means not given), the
    click attached to ``order_id`` for the market of ``pixel_id`` (the
    purchase's; ``attached_click``), ``request``'s store (only with consent).
    The first well-formed click wins (``clickids``); junk is no click; a
    click of an odd shape is used only when no source has a well-formed one.
    """
    given = Click(signed_click_id, None) if signed_click_id else None
    if given is not None and is_well_formed(given.click_id):
        return Resolution(given)
    attached = attached_click(order_id, pixel_id)
    click = attached.click
    if (click is None or not is_well_formed(click.click_id)) and request is not None:
        if has_consent(request):
            click = _better(click, get_click(request))
        elif click is None:
            return _odd_or(given, SKIP_NO_CONSENT)
    if click is None:
        return _odd_or(given, SKIP_INVALID_CLICK_ID if given else attached.skip_reason)
    reason = click.skip_reason_at(times.now() if at is None else at)
    if reason:
        return _odd_or(given, reason)
    if given is not None and not is_well_formed(click.click_id):
        return _odd_or(given, "")
    return Resolution(click)


def _better(kept: Click | None, other: Click | None) -> Click | None:
    """Of the attached click and the store's, the well-formed one; the attached one first."""
    if kept is None or (other is not None and is_well_formed(other.click_id)):
        return other if other is not None else kept
    return kept


def _odd_or(given: Click | None, reason: str) -> Resolution:
    """The given click if it may be one at all (odd: held by the caller), else ``reason``."""
    if given is not None and is_valid_click_id(given.click_id):
        return Resolution(given)
    return Resolution(None, reason or SKIP_INVALID_CLICK_ID)
