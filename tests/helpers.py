"""Helpers shared by the test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import timedelta

    from django_pjpixel.models import ConversionEvent, PrisjaktSync

PIXEL_ID = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def connect(receivers: list[Any], signal: Any, receiver: Any) -> None:
    """Connect ``receiver`` for this test; the ``receivers`` fixture disconnects it."""
    signal.connect(receiver, weak=False)
    receivers.append((signal, receiver))


def make_event(order_id: str = "order-1", **fields: Any) -> ConversionEvent:
    """A pending purchase of 1,234 SEK, 2 items, with a click: ``fields`` override."""
    from django.utils import timezone

    from django_pjpixel.models import ConversionEvent

    values: dict[str, Any] = {
        "pixel_id": PIXEL_ID,
        "order_id": order_id,
        "event_time": timezone.now(),
        "amount": Decimal("1234.00"),
        "currency": "SEK",
        "number_of_items": 2,
        "click_id": CLICK,
        **fields,
    }
    return ConversionEvent.objects.create(**values)


def claim_due_one(**fields: Any) -> list[ConversionEvent]:
    """A new row (``make_event(**fields)``), claimed: a list of that one leased row."""
    from django_pjpixel.outbox import claim_due

    make_event(**fields)
    claimed = claim_due(1)
    assert len(claimed) == 1
    return claimed


def complete_sync(ago: timedelta | None = None) -> PrisjaktSync:
    """The record of a complete sync of the last 7 days that finished ``ago`` (30 minutes)."""
    from datetime import timedelta

    from django.utils import timezone

    from django_pjpixel.models import PrisjaktSync

    when = timezone.now() - (ago if ago is not None else timedelta(minutes=30))
    run: PrisjaktSync = PrisjaktSync.objects.create(
        pixel_id=PIXEL_ID,
        start=when - timedelta(days=7),
        end=when,
        started_at=when,
        finished_at=when,
        complete=True,
    )
    return run
