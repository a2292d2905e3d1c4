"""``attach_click``: the visitor's click kept with an order; a skipped row completed by it.

A purchase reported before its click is known (a payment webhook that comes
first) is stored ``skipped``; ``attach_click`` at the checkout, or a later
report of the same order bringing a click, completes it with ``attribute``:
the row becomes ``pending`` and is sent once. Nothing here raises into the
checkout.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from django.db import router, transaction

from django_pjpixel import markets, publisher, times
from django_pjpixel.attribution import Click, keep_click_for_order
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.models import ConversionEvent, OrderClick
from django_pjpixel.payloads import EVENT_NAME_PURCHASE
from django_pjpixel.validation import OrderId, order_id_text

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger(__name__)


def attach_click(
    request: HttpRequest, order_id: OrderId, *, now: datetime | None = None
) -> Click | None:
    """At checkout: keep the visitor's click for ``order_id``; returns it, or None.

    Call it where the order is created, while the visitor's request is at
    hand, when the payment is confirmed later without it (a payment
    webhook). The click is the one in the click store (session or cookie),
    else the browser script's click the checkout form posted as
    ``pjpixel_click_id`` (``{% pjpixel_click_input %}``), checked like a
    ``?pjclid=``. ``order_id`` is the one the payment is reported with: a
    string, an int or a UUID. Nothing is attached without consent, without
    a click, or when the click is outside the attribution window. Never
    raises into the checkout: a bad order id or a database error is logged.
    """
    try:
        text = order_id_text(order_id)
    except InvalidInput as err:
        logger.error("pjpixel: no click attached to order %r: %s", order_id, err)
        return None
    alias = router.db_for_write(ConversionEvent)
    try:
        with transaction.atomic(using=router.db_for_write(OrderClick)):
            click = keep_click_for_order(request, text, now=now)
            event = _skipped_row(text, alias) if click else None
            if event is not None and click is not None and attribute(event, click, alias):
                logger.info("pjpixel: order %s, skipped before, now has a click", text)
                transaction.on_commit(partial(publisher.enqueue, event), using=alias, robust=True)
    except Exception:
        logger.exception("pjpixel: could not attach the click to order %s", text)
        return None
    return click


def attribute(event: ConversionEvent, click: Click, alias: str) -> bool:
    """A row skipped for want of a usable click takes ``click`` and is ``pending`` again.

    Only when the click is within the window of the recorded purchase. One
    conditional ``UPDATE``: of two reports racing here, one turns the row.
    A row sent, being sent, failed, or skipped by ``pre_send`` (it has a
    click) never changes.
    """
    Status = ConversionEvent.Status
    skipped = event.status == str(Status.SKIPPED)
    if not skipped or event.click_id or click.skip_reason_at(event.event_time):
        return False
    captured_at = click.captured_at
    updated = (
        ConversionEvent.objects.using(alias)
        .filter(pk=event.pk, status=Status.SKIPPED, click_id="")
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


def _skipped_row(order_id: str, alias: str) -> ConversionEvent | None:
    """``order_id``'s row if it was skipped for want of a usable click."""
    row: ConversionEvent | None = (
        ConversionEvent.objects.using(alias)
        .filter(
            pixel_id__in=markets.pixel_ids(),
            order_id=order_id,
            event_name=EVENT_NAME_PURCHASE,
            status=ConversionEvent.Status.SKIPPED,
            click_id="",
        )
        .first()
    )
    return row
