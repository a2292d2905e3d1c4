"""An order id reported again for another purchase: a conflict, kept and told, never sent.

An order id may be used again for a new purchase (a database restored from a
backup, a reset sequence, an import). A report of a recorded order whose
amount, currency, number of items or time differ from the recorded purchase
is such a *conflict*: the recorded row keeps its values; the report's are
kept beside them (``ConversionEvent.conflict``, ``conflict_at``), logged at
WARNING with both sets, shown and filtered in the admin, and counted by
``pjpixel_check`` and the health summary. The report is never sent, nor does
its click complete the recorded row: a click and an amount of two purchases
are never sent together.

The time counts only when the report names one (``event_time=``; without it
the time is the moment of the report, which a late webhook makes differ) and
differs by more than ``TIME_TOLERANCE``. ``attach_click``, which names no
purchase, completes a skipped row only when its purchase is at most
``ATTACH_AFTER`` old.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext, ngettext

from django_pjpixel import times
from django_pjpixel.models import ConversionEvent

if TYPE_CHECKING:
    from django_pjpixel.ledger.validation import Purchase

logger = logging.getLogger("django_pjpixel.purchases")

# Two reports of one purchase whose given times differ more than this are two purchases.
TIME_TOLERANCE = timedelta(hours=1)
# A skipped row older than this is not the purchase of the checkout attaching a click.
ATTACH_AFTER = timedelta(days=1)


def differences(event: ConversionEvent, purchase: Purchase, *, time_given: bool) -> list[str]:
    """The fields in which ``purchase`` is not the purchase ``event`` recorded."""
    found = [
        name
        for name in ("amount", "currency", "number_of_items")
        if getattr(event, name) != getattr(purchase, name)
    ]
    if time_given:
        apart = abs(times.aware(event.event_time) - times.aware(purchase.event_time))
        if apart > TIME_TOLERANCE:
            found.append("event_time")
    return found


def record_conflict(
    event: ConversionEvent, purchase: Purchase, *, time_given: bool, alias: str, now: datetime
) -> bool:
    """Keep and tell a report of ``event``'s order that is another purchase; whether it is."""
    differ = differences(event, purchase, time_given=time_given)
    if not differ:
        return False
    reported: dict[str, Any] = {
        "amount": str(purchase.amount),
        "currency": purchase.currency,
        "number_of_items": purchase.number_of_items,
        "event_time": times.aware(purchase.event_time).isoformat(),
        "differs": differ,
    }
    at = times.as_django(now)
    ConversionEvent.objects.using(alias).filter(pk=event.pk).update(
        conflict=reported, conflict_at=at
    )
    event.conflict, event.conflict_at = reported, at
    logger.warning(
        "pjpixel: order %s was reported again as another purchase (%s differ): recorded %s, "
        "reported %s. The recorded purchase is kept and this report is not sent: is the "
        "order id used again (a restored backup, a reset sequence, an import)?",
        event.order_id,
        ", ".join(differ),
        describe(event.amount, event.currency, event.number_of_items, event.event_time),
        describe(purchase.amount, purchase.currency, purchase.number_of_items, purchase.event_time),
        extra={"pjpixel_event": event.pk, "order_id": event.order_id, "status": event.status},
    )
    return True


def describe(
    amount: object, currency: str, items: int, when: datetime, *, translated: bool = False
) -> str:
    """``100.00 SEK, 1 item, at 2026-12-04T10:00:00+00:00``: a purchase, for a log line
    (English), or ``translated`` for a page."""
    at = times.aware(when).isoformat()
    if translated:
        counted = ngettext("%d item", "%d items", items) % items
        return gettext("%(amount)s %(currency)s, %(items)s, at %(time)s") % {
            "amount": amount,
            "currency": currency,
            "items": counted,
            "time": at,
        }
    return f"{amount} {currency}, {items} item{'' if items == 1 else 's'}, at {at}"


def is_recent(event: ConversionEvent, now: datetime) -> bool:
    """Whether ``event``'s purchase may be the one a checkout at ``now`` attaches a click to."""
    return times.aware(now) - times.aware(event.event_time) <= ATTACH_AFTER


def reported_text(event: ConversionEvent) -> str:
    """The conflicting report kept on ``event``, as ``describe`` says it; "" for none."""
    reported = event.conflict if isinstance(event.conflict, dict) else None
    if not reported:
        return ""
    try:
        when = datetime.fromisoformat(str(reported["event_time"]))
        items = int(reported["number_of_items"])
        currency = str(reported["currency"])
        return describe(reported["amount"], currency, items, when, translated=True)
    except (KeyError, TypeError, ValueError):  # not written by this module
        return str(reported)
