"""``attach_click``: the visitor's click kept with an order; a skipped row completed by it.

A purchase reported before its click is known (a payment webhook that comes
first) is stored ``skipped``; ``attach_click`` at the checkout, or a later
report of the same order bringing a click, completes it with ``attribute``:
the row becomes ``pending`` and is sent once. Nothing here raises into the
checkout.

With several markets (``PJPIXEL["PIXELS"]``) one order id may have a row in
each: ``attach_click(pixel=)`` keeps the click for that market and completes
that market's row only. A click attached naming no market completes the
order's row when the order is recorded in one market, and none when it is
recorded in several (logged): one click is one visit to one market's site,
and sent to two it would count twice, at least once in the wrong market.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from django.db import router, transaction
from django.db.models import Q

from django_pjpixel import markets, times
from django_pjpixel.api.clickids import is_well_formed
from django_pjpixel.api.payloads import EVENT_NAME_PURCHASE
from django_pjpixel.attribution import (
    SKIP_ODD_CLICK,
    UNNAMED,
    Click,
    keep_click_for_order,
    order_pixels,
)
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger import publisher
from django_pjpixel.ledger.conflicts import is_recent
from django_pjpixel.ledger.validation import OrderId, order_id_text
from django_pjpixel.models import ConversionEvent, OrderClick

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

logger = logging.getLogger("django_pjpixel.attaching")


def attach_click(
    request: HttpRequest,
    order_id: OrderId,
    *,
    pixel: str | None = None,
    now: datetime | None = None,
) -> Click | None:
    """At checkout: keep the visitor's click for ``order_id``; returns it, or None.

    Call it where the order is created, while the visitor's request is at
    hand, when the payment is confirmed later without it (a payment
    webhook). The click is the one in the click store (session or cookie),
    else the browser script's click the checkout form posted as
    ``pjpixel_click_id`` (``{% pjpixel_click_input %}``), checked like a
    ``?pjclid=``. ``order_id`` is the one the payment is reported with: a
    string, an int or a UUID. Nothing is attached without consent, without
    a click, or when the click is outside the attribution window.

    With several markets (``PJPIXEL["PIXELS"]``) ``pixel``, a market key as
    ``track_purchase`` takes it, names the market of the visitor's checkout:
    the click is kept for that market's purchase of the order only. Without
    it the click serves the order in one market, never in two: an order id
    recorded in several markets needs ``pixel``.

    Never raises into the checkout: a bad order id, a ``pixel`` that is not
    a market (or ``pixel`` without ``PIXELS``), or a database error is
    logged, and nothing is attached.
    """
    try:
        text = order_id_text(order_id)
        market = None if pixel is None else markets.market_named(pixel)
    except InvalidInput as err:
        logger.error("pjpixel: no click attached to order %r: %s", order_id, err)
        return None
    alias = router.db_for_write(ConversionEvent)
    try:
        with transaction.atomic(using=router.db_for_write(OrderClick)):
            pixel_id = UNNAMED if market is None else market.pixel_id
            click = keep_click_for_order(request, text, pixel_id=pixel_id, now=now)
            event = _skipped_row(text, alias, market, now) if click else None
            if event is not None and click is not None and attribute(event, click, alias):
                logger.info("pjpixel: order %s, skipped before, now has a click", text)
                transaction.on_commit(partial(publisher.enqueue, event), using=alias, robust=True)
    except Exception:
        logger.exception("pjpixel: could not attach the click to order %s", text)
        return None
    return click


def attribute(event: ConversionEvent, click: Click, alias: str) -> bool:
    """A row skipped for want of a usable click takes ``click`` and is ``pending`` again.

    Only a well-formed click (``clickids``), within the window of the
    recorded purchase; a row held for a click of an odd shape takes it too.
    One conditional ``UPDATE``: of two reports racing here, one turns the
    row. A row sent, being sent, failed, or skipped by ``pre_send`` (it has a
    click) never changes.
    """
    Status = ConversionEvent.Status
    skipped = event.status == str(Status.SKIPPED)
    held = event.skip_reason == SKIP_ODD_CLICK
    if not skipped or (event.click_id and not held) or not is_well_formed(click.click_id):
        return False
    if click.skip_reason_at(event.event_time):
        return False
    captured_at = click.captured_at
    updated = (
        ConversionEvent.objects.using(alias)
        .filter(Q(click_id="") | Q(skip_reason=SKIP_ODD_CLICK), pk=event.pk, status=Status.SKIPPED)
        .update(
            status=Status.PENDING,
            click_id=click.click_id,
            click_captured_at=times.as_django(captured_at) if captured_at else None,
            skip_reason="",
            next_attempt_at=None,
        )
    )
    if updated:
        event.refresh_from_db(using=alias)
    return bool(updated)


def release_held(rows: QuerySet[ConversionEvent]) -> int:
    """Of ``rows``, those held for a click of an odd shape that is now well-formed become
    ``pending`` (after ``CLICK_ID_PATTERN`` changed: the admin's *Send now*); how many."""
    Status = ConversionEvent.Status
    held = rows.filter(status=Status.SKIPPED, skip_reason=SKIP_ODD_CLICK)
    pks = [pk for pk, click_id in held.values_list("pk", "click_id") if is_well_formed(click_id)]
    released: int = ConversionEvent.objects.filter(
        pk__in=pks, status=Status.SKIPPED, skip_reason=SKIP_ODD_CLICK
    ).update(status=Status.PENDING, skip_reason="", next_attempt_at=None)
    return released


def _skipped_row(
    order_id: str, alias: str, market: markets.Market | None, now: datetime | None
) -> ConversionEvent | None:
    """``order_id``'s row in ``market`` if it was skipped for want of a usable click.

    ``market`` None: the order's row in the one market that has the order;
    none when the order is recorded in several (logged). A row whose purchase
    is older than a checkout's (``conflicts.is_recent``) is another purchase
    under a reused order id: none (logged).
    """
    pixel_ids = markets.pixel_ids() if market is None else [market.pixel_id]
    row: ConversionEvent | None = (
        ConversionEvent.objects.using(alias)
        .filter(
            pixel_id__in=pixel_ids,
            order_id=order_id,
            event_name=EVENT_NAME_PURCHASE,
            status=ConversionEvent.Status.SKIPPED,
        )
        .filter(Q(click_id="") | Q(skip_reason=SKIP_ODD_CLICK))
        .first()
    )
    if row is not None and not is_recent(row, times.now() if now is None else now):
        logger.warning(
            "pjpixel: order %s was recorded skipped at %s, too long ago to be this checkout's "
            "purchase: the click attached is not sent with it (is the order id used again?)",
            order_id,
            row.event_time.isoformat(),
        )
        return None
    if row is None or market is not None or not markets.is_configured():
        return row
    found = order_pixels(order_id)
    if found - {row.pixel_id}:
        keys = ", ".join(m.key for m in markets.all_markets() if m.pixel_id in found)
        logger.warning(
            "pjpixel: order %s is recorded in markets %s: a click attached without pixel= "
            "completes none of them; attach it with pixel= naming the visitor's market",
            order_id,
            keys,
        )
        return None
    return row
