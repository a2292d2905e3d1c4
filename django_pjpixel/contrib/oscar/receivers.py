"""What django-pjpixel does on Oscar's signals (connected in ``apps.ready``).

- ``pre_payment`` (the checkout view, before payment): the visitor's click is
  attached to the order number Oscar has chosen, so an order placed later by a
  payment provider's redirect or webhook is attributed too.
- ``order_placed``: the order is reported, unless ``OSCAR_PAID_STATUSES`` says
  orders are paid later and the order is not placed in one of them.
- ``order_status_changed``: an order reaching a "paid" status is reported; one
  reaching a "cancelled" status goes to ``order_cancelled``.

Nothing here raises into Oscar: an order is placed, or a status changed,
whatever happens to its report. Errors are logged.
"""

from __future__ import annotations

import logging
from typing import Any

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.ledger.purchases import attach_click, track_purchase
from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement

logger = logging.getLogger("django_pjpixel.contrib.oscar.receivers")

PRE_PAYMENT_UID = "django_pjpixel.contrib.oscar.attach_checkout_click"
ORDER_PLACED_UID = "django_pjpixel.contrib.oscar.report_placed_order"
STATUS_CHANGED_UID = "django_pjpixel.contrib.oscar.report_status_change"


def attach_checkout_click(sender: object, view: Any = None, **kwargs: Any) -> None:
    """Oscar's ``pre_payment``: keep the visitor's click with the order number Oscar chose.

    Oscar sends this signal robustly, so an error would vanish: it is logged.
    """
    number = None
    try:
        number = view.checkout_session.get_order_number()
        if number is None:  # a checkout view of the shop's that chose no number
            logger.warning("pjpixel: Oscar's pre_payment came without an order number")
            return
        attach_click(view.request, str(number))
    except Exception:
        logger.exception("pjpixel: could not attach the visitor's click to Oscar order %s", number)


def report_placed_order(sender: object, order: Any, **kwargs: Any) -> None:
    """Oscar's ``order_placed``: report the order, unless it is paid later."""
    paid = pjpixel_settings.OSCAR_PAID_STATUSES
    if paid and order.status not in paid:
        logger.info(
            "pjpixel: Oscar order %s is placed as %r; it is reported when it is paid (%s)",
            order.number,
            order.status,
            ", ".join(sorted(paid)),
        )
        return
    report_order(order)


def report_status_change(
    sender: object, order: Any, old_status: str = "", new_status: str = "", **kwargs: Any
) -> None:
    """Oscar's ``order_status_changed``: report a paid order, restate a cancelled one."""
    if new_status in pjpixel_settings.OSCAR_PAID_STATUSES:
        report_order(order)
    elif new_status in pjpixel_settings.OSCAR_CANCELLED_STATUSES:
        order_cancelled(order)


def purchase_of(order: Any) -> dict[str, Any]:
    """The arguments of ``track_purchase`` for an Oscar order."""
    return {
        "order_id": str(order.number),
        "amount": getattr(order, pjpixel_settings.OSCAR_AMOUNT),
        "currency": order.currency,
        # Items, not lines: two of one product and one of another are three.
        "number_of_items": order.num_items,
        "event_time": order.date_placed,
    }


def report_order(order: Any) -> ConversionEvent | None:
    """Report an Oscar order as paid; the same order reported again keeps its one row."""
    try:
        return track_purchase(sender=type(order), **purchase_of(order))
    except Exception:
        logger.exception("pjpixel: could not report Oscar order %s", order.number)
        return None


def order_cancelled(order: Any) -> Restatement | None:
    """A cancelled Oscar order: restate its purchase at Prisjakt as nothing.

    Calls ``django_pjpixel.restate_purchase(order_id=..., amount=0,
    number_of_items=0, reason=...)`` for an order that was reported with a
    click (an order never reported, or skipped, Prisjakt never had). Returns
    the ``Restatement``, or None.
    """
    order_id = str(order.number)
    reported = (
        ConversionEvent.objects.filter(order_id=order_id)
        .exclude(status=ConversionEvent.Status.SKIPPED)
        .exists()
    )
    if not reported:
        return None
    try:
        return restate_purchase(
            order_id=order_id,
            amount=0,
            number_of_items=0,
            reason=f"Oscar order status {order.status!r}",
        )
    except Exception:
        logger.exception("pjpixel: could not restate cancelled Oscar order %s", order_id)
        return None
