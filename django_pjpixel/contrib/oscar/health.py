"""How delivery is doing, in three figures staff can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.outbox import due_filter

Status = ConversionEvent.Status
DELIVERED = (Status.SENT, Status.DUPLICATE)


@dataclass(frozen=True)
class DeliveryHealth:
    """Rows per status (every status, zeros included), and two signs of a stall, at ``now``.

    ``oldest_due_at``: when the oldest row that could be sent now was
    recorded (None: nothing is due); hours ago mean that no worker or no
    ``deliver_due`` is running. ``last_sent_at``: when Prisjakt last
    accepted an event.
    """

    now: datetime
    counts: dict[str, int]
    oldest_due_at: datetime | None
    last_sent_at: datetime | None

    @property
    def oldest_due_age(self) -> timedelta | None:
        """How long the oldest due row has waited (None: nothing is due)."""
        if self.oldest_due_at is None:
            return None
        return max(self.now - self.oldest_due_at, timedelta(0))


def delivery_health(now: datetime | None = None) -> DeliveryHealth:
    """The outbox's health at ``now`` (default: the current time), in two queries."""
    now = timezone.now() if now is None else now
    totals = ConversionEvent.objects.aggregate(
        last_sent_at=Max("sent_at", filter=Q(status__in=DELIVERED)),
        **{value: Count("pk", filter=Q(status=value)) for value in Status.values},
    )
    oldest = ConversionEvent.objects.filter(due_filter(now)).aggregate(at=Min("created_at"))["at"]
    return DeliveryHealth(
        now=now,
        counts={value: totals[value] for value in Status.values},
        oldest_due_at=oldest,
        last_sent_at=totals["last_sent_at"],
    )
