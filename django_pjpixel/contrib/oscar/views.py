"""The Prisjakt page of Oscar's dashboard: the outbox, read-only, with its health.

Access is Oscar's: ``apps.PjpixelOscarConfig`` maps the URL to its
permissions, and Oscar's ``post_process_urls`` guards the view with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import NoReverseMatch, reverse
from django.views.generic import ListView

from django_pjpixel.contrib.oscar.health import delivery_health
from django_pjpixel.models import ConversionEvent

if TYPE_CHECKING:
    EventListView = ListView[ConversionEvent]
else:  # ListView is generic for the type checker only
    EventListView = ListView

Status = ConversionEvent.Status
ADMIN_CHANGE = "admin:django_pjpixel_conversionevent_change"
ADMIN_CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
ORDER_DETAIL = "dashboard:order-detail"
# Bootstrap 4 (Oscar's dashboard) badge per status: good, waiting, bad, neutral.
BADGES: dict[str, str] = {
    "pending": "warning",
    "sending": "primary",
    "sent": "success",
    "duplicate": "info",
    "failed": "danger",
    "skipped": "secondary",
    "dead": "dark",
}
CLICK_ID_SHOWN = 12


@dataclass(frozen=True)
class Row:
    """One conversion event as the page shows it, with its links (None: not mounted)."""

    event: ConversionEvent
    badge: str
    order_url: str | None
    admin_url: str | None

    @property
    def click(self) -> str:
        click_id = self.event.click_id
        return click_id if len(click_id) <= CLICK_ID_SHOWN else f"{click_id[:CLICK_ID_SHOWN]}…"


def url_or_none(name: str, *args: Any, **kwargs: Any) -> str | None:
    """``reverse(name)``, or None where the shop's URLconf does not mount it."""
    try:
        return reverse(name, args=args or None, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


class ConversionEventListView(EventListView):
    """Every conversion event, newest first, filtered by ``?status=``, with the health summary."""

    model = ConversionEvent
    template_name = "oscar/dashboard/pjpixel/conversion_events.html"
    context_object_name = "events"

    def get_paginate_by(self, queryset: QuerySet[ConversionEvent]) -> int:
        return int(getattr(settings, "OSCAR_DASHBOARD_ITEMS_PER_PAGE", 20))

    def status_filter(self) -> str | None:
        status = self.request.GET.get("status")
        return status if status in Status.values else None

    def get_queryset(self) -> QuerySet[ConversionEvent]:
        events: QuerySet[ConversionEvent] = ConversionEvent.objects.order_by("-created_at", "-pk")
        status = self.status_filter()
        return events if status is None else events.filter(status=status)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        admin_changelist = url_or_none(ADMIN_CHANGELIST)
        context["rows"] = [
            Row(
                event=event,
                badge=BADGES.get(event.status, "secondary"),
                order_url=url_or_none(ORDER_DETAIL, number=event.order_id),
                admin_url=url_or_none(ADMIN_CHANGE, event.pk) if admin_changelist else None,
            )
            for event in context["events"]
        ]
        health = delivery_health()
        context["health"] = health
        context["status_counts"] = [
            {
                "status": value,
                "label": label,
                "count": health.counts[value],
                "badge": BADGES.get(value, "secondary"),
            }
            for value, label in Status.choices
        ]
        context["status"] = self.status_filter()
        context["admin_url"] = admin_changelist
        return context
