"""The "Prisjakt events" admin view: what Prisjakt has recorded for the pixel.

Served by ``ConversionEventAdmin.get_urls()`` through ``admin_site.admin_view``;
this module holds the form, the one-page fetch and what the template shows.
One API request per page shown: only page numbers travel in the admin's own
URLs, never the API's, and the summary covers the shown page only (a whole
range could take up to ``MAX_PAGES`` requests per view).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_pjpixel import times
from django_pjpixel.admin.charts import range_context
from django_pjpixel.api.client import get_client
from django_pjpixel.api.pagination import EventPage, readable_events
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktConnectionError,
    PrisjaktTimeout,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.record.ranges import MARKET_PARAMETER, MAX_DAYS, EventRangeForm

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

# The chart's geometry, in SVG user units.
CHART_HEIGHT = 120
CHART_BAR = 12
CHART_GAP = 4
CHART_LABEL = 18


@dataclass
class EventRow:
    """One listed event as the table shows it (``time`` as Django shows datetimes)."""

    id: str
    click_id: str
    order_id: str
    event_name: str
    time: datetime | None
    amount: Decimal | None
    currency: str
    items: int | None
    local_url: str | None = None


@dataclass
class ChartBar:
    day: date
    count: int
    x: int
    y: int
    height: int
    label: str


@dataclass
class Summary:
    """Purchases and amount per currency, and purchases per day, of the shown page."""

    purchases: int = 0
    amounts: list[tuple[str, Decimal]] = field(default_factory=list)
    bars: list[ChartBar] = field(default_factory=list)
    width: int = 0
    height: int = CHART_HEIGHT + CHART_LABEL
    max_count: int = 0


def event_rows(events: list[dict[str, Any]]) -> list[EventRow]:
    """The page's events as rows, each id once (pages are not stable)."""
    rows: list[EventRow] = []
    seen: set[str] = set()
    for event in events:
        event_id = _text(event.get("id"))
        if event_id:
            if event_id in seen:
                continue
            seen.add(event_id)
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        when = parse_datetime(_text(event.get("event_time")))
        rows.append(
            EventRow(
                id=event_id,
                click_id=_text(event.get("click_id")),
                order_id=_text(event.get("external_event_id")),
                event_name=_text(event.get("event_name")),
                time=times.as_django(when) if when and timezone.is_aware(when) else None,
                amount=_amount(data.get("amount")),
                currency=_text(data.get("currency")),
                items=_number(data.get("number_of_items")),
            )
        )
    return rows


def link_local(rows: list[EventRow], pixel_id: str) -> None:
    """Link each row to its ``ConversionEvent`` with one query for the whole page."""
    order_ids = {row.order_id for row in rows if row.order_id}
    if not order_ids:
        return
    local = {
        (order_id, name): pk
        for order_id, name, pk in ConversionEvent.objects.filter(
            pixel_id=pixel_id, order_id__in=order_ids
        ).values_list("order_id", "event_name", "pk")
    }
    for row in rows:
        pk = local.get((row.order_id, row.event_name))
        if pk is not None:
            row.local_url = reverse("admin:django_pjpixel_conversionevent_change", args=(pk,))


def summarize(rows: list[EventRow], first: date, last: date) -> Summary:
    """Totals of the shown page, and an SVG bar per day of the range."""
    summary = Summary()
    per_day: Counter[date] = Counter()
    amounts: dict[str, Decimal] = {}
    for row in rows:
        if row.event_name != "purchase":
            continue
        summary.purchases += 1
        if row.amount is not None and row.currency:
            amounts[row.currency] = amounts.get(row.currency, Decimal(0)) + row.amount
        if row.time is not None:
            per_day[timezone.localtime(times.aware(row.time)).date()] += 1
    summary.amounts = sorted(amounts.items())
    days = (last - first).days + 1
    summary.max_count = max(per_day.values(), default=0)
    scale = CHART_HEIGHT / summary.max_count if summary.max_count else 0.0
    for index in range(days):
        day = first + timedelta(days=index)
        count = per_day.get(day, 0)
        height = round(count * scale)
        summary.bars.append(
            ChartBar(
                day=day,
                count=count,
                x=index * (CHART_BAR + CHART_GAP),
                y=CHART_HEIGHT - height,
                height=height,
                label=day.strftime("%d") if days <= 31 or day.day in (1, 15) else "",
            )
        )
    summary.width = days * (CHART_BAR + CHART_GAP)
    return summary


def describe_error(err: PrisjaktAPIError) -> str:
    """The admin message for a failed listing: what, why, and the id to quote."""
    if isinstance(err, PrisjaktTimeout):
        text = gettext("The request to Prisjakt timed out; try again in a moment.")
    elif isinstance(err, PrisjaktConnectionError):
        text = gettext("Prisjakt could not be reached; try again in a moment.")
    elif err.status is not None:
        text = gettext("Prisjakt answered HTTP %(status)d: %(title)s") % {
            "status": err.status,
            "title": err.title or _reason(err.status) or gettext("no problem title"),
        }
    else:
        text = gettext("Prisjakt answered something the listing cannot use.")
    parts = [text]
    if err.detail:
        parts.append(err.detail)
    if err.status == 429 and err.retry_after is not None:
        parts.append(
            gettext("Try again in %(seconds)d seconds.") % {"seconds": round(err.retry_after)}
        )
    if err.request_id:
        parts.append(
            gettext("Request id to quote to Prisjakt: %(request_id)s")
            % {"request_id": err.request_id}
        )
    return " — ".join(parts)


def page_url(form: EventRangeForm, page: int) -> str:
    """The admin's own URL for another page: the dates, the market and a page number."""
    cleaned = form.cleaned_data
    query = form.query(
        **{
            "from": cleaned["from"].isoformat(),  # strftime("%Y") writes the year 1 as "1"
            "to": cleaned["to"].isoformat(),
            "page": str(page),
        }
    )
    return reverse("admin:django_pjpixel_prisjakt_events") + "?" + urlencode(query)


def navigation(form: EventRangeForm, page: EventPage) -> list[dict[str, Any]]:
    labels = (
        ("first", _("First")),
        ("prev", _("Previous")),
        ("next", _("Next")),
        ("last", _("Last")),
    )
    links = []
    for rel, label in labels:
        number = getattr(page, rel)
        links.append(
            {
                "rel": rel,
                "label": label,
                "page": number,
                "url": page_url(form, number) if number and number != page.page else None,
            }
        )
    return links


def prisjakt_events_view(model_admin: ModelAdmin[Any], request: HttpRequest) -> TemplateResponse:
    """The admin view: a from/to form, one page of events, its summary and chart."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = EventRangeForm.from_query(request.GET)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": _("Prisjakt events"),
        "opts": model_admin.model._meta,
        "form": form,
        "pixel_id": None,
        "max_days": MAX_DAYS,
        "rows": None,
    }
    if not form.is_valid():
        if form.has_error(MARKET_PARAMETER):
            refused = gettext("No events were fetched: choose one of the markets below.")
        elif form.has_error("page"):
            refused = gettext("No events were fetched: a page is a whole number from 1.")
        else:
            refused = gettext("No events were fetched: correct the dates below.")
        messages.error(request, refused)
        return _render(model_admin, request, context)
    cleaned = form.cleaned_data
    pixel_id = context["pixel_id"] = cleaned["market"].pixel_id
    # The mirror's totals: no API call.
    context.update(range_context(cleaned["from"], cleaned["to"], pixel_id))
    number = cleaned.get("page") or 1
    try:
        page = get_client(pixel_id).list_events(
            start=cleaned["start"], end=cleaned["end"], page=number
        )
    except PrisjaktAPIError as err:
        messages.error(request, describe_error(err))
        return _render(model_admin, request, context)
    except (PjpixelConfigurationError, InvalidInput) as err:
        messages.error(request, gettext("Prisjakt events cannot be listed: %s") % err)
        return _render(model_admin, request, context)
    events, skipped = readable_events(page.events)
    if skipped:
        messages.warning(
            request,
            gettext("%(count)d events were left out: their event_time is not a time (%(ids)s).")
            % {"count": len(skipped), "ids": ", ".join(skipped)},
        )
    rows = event_rows(events)
    link_local(rows, pixel_id)
    context.update(
        {
            "rows": rows,
            "page": page,
            "navigation": navigation(form, page),
            "summary": summarize(rows, cleaned["from"], cleaned["to"]),
            "request_id": page.request_id,
        }
    )
    return _render(model_admin, request, context)


def _render(
    model_admin: ModelAdmin[Any], request: HttpRequest, context: dict[str, Any]
) -> TemplateResponse:
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_pjpixel/prisjakt_events.html", context)


def _reason(status: int) -> str | None:
    """The HTTP reason phrase, for an error without a problem (a proxy's HTML page)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    if not amount.is_finite():
        return None
    if pjpixel_settings.AMOUNT_UNITS == "minor":
        amount = amount / 100
    return amount
