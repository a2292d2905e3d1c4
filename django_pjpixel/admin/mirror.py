"""The mirror of Prisjakt's events in the admin, read-only, and the reconciliation page beside it.

``PrisjaktEventAdmin`` lists what the last syncs copied from Prisjakt's
listing; nobody edits it by hand (it is rewritten by each sync). Its
``get_urls()`` adds the "Reconciliation" page and its CSV export, served
through ``admin_site.admin_view`` and allowed by
``has_reconciliation_permission``: to see both the shop's conversion events
and Prisjakt's. The page covers a range of whole days (by default the last
``SYNC_DAYS``, what the periodic sync keeps): the orders per category and the
differences, each linked to the shop's conversion event; the page shows the
first ``SHOWN`` of them, the CSV export all of them.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_pjpixel.admin.filters import MarketColumn, PixelFilter
from django_pjpixel.models import ConversionEvent, PrisjaktEvent
from django_pjpixel.record.exports import csv_lines
from django_pjpixel.record.ranges import MARKET_PARAMETER, ReconciliationForm
from django_pjpixel.record.reconciliation import (
    CATEGORIES,
    CSV_HEADER,
    DIFFERENCES,
    Difference,
    NotSynced,
    Report,
    describe,
    reconcile,
)

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[PrisjaktEvent]
else:  # ModelAdmin is generic for the type checker only
    ModelAdmin = admin.ModelAdmin

SHOWN = 500
LABELS = {
    "matched": _("Matched"),
    "amount_differs": _("Amount differs"),
    "missing_at_prisjakt": _("Missing at Prisjakt"),
    "unknown_to_shop": _("Unknown to the shop"),
    "pending": _("Pending"),
}
HELP = {
    "matched": _("Sent, and listed by Prisjakt with the same amount, items and currency."),
    "amount_differs": _("Listed by Prisjakt with another amount, items or currency, or twice."),
    "missing_at_prisjakt": _("Sent, but not in Prisjakt's listing."),
    "unknown_to_shop": _("Listed by Prisjakt, never sent by the shop (a browser pixel?)."),
    "pending": _("Not final yet, or sent too recently for the last sync."),
}


def may_reconcile(request: HttpRequest) -> bool:
    """Whether the user may view (or change) both ``ConversionEvent`` and ``PrisjaktEvent``."""
    return all(
        any(
            request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
            for action in ("view", "change")
        )
        for opts in (ConversionEvent._meta, PrisjaktEvent._meta)
    )


@admin.register(PrisjaktEvent)
class PrisjaktEventAdmin(MarketColumn, ModelAdmin):
    list_display = (
        "external_event_id",
        "event_time",
        "amount_with_currency",
        "number_of_items",
        "event_name",
        "id",
        "last_seen",
    )
    list_filter = (
        PixelFilter,
        "currency",
        "event_name",
        ("event_time", admin.DateFieldListFilter),
    )
    search_fields = ("external_event_id", "id", "click_id")
    readonly_fields = tuple(field.name for field in PrisjaktEvent._meta.fields)
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("amount (as listed)"), ordering="amount")
    def amount_with_currency(self, obj: PrisjaktEvent) -> str:
        if obj.amount is None:
            return self.get_empty_value_display()
        return f"{obj.amount.normalize():f} {obj.currency}"

    # -- the reconciliation page ---------------------------------------------------

    def has_reconciliation_permission(self, request: HttpRequest) -> bool:
        """Whoever may see both sides: Prisjakt's events and the shop's conversion events."""
        return may_reconcile(request)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label
        return [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name=f"{info}_reconciliation",
            ),
            path(
                "reconciliation/export.csv",
                self.admin_site.admin_view(self.reconciliation_csv),
                name=f"{info}_reconciliation_csv",
            ),
            *super().get_urls(),
        ]

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        """The page: the range form, the counts per category, the differences."""
        form = self._allowed_form(request)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": _("Reconciliation"),
            "opts": self.model._meta,
            "form": form,
            "report": None,
        }
        report = _report(request, form)
        if report is not None:
            rows = [_row(difference) for difference in report.differences(limit=SHOWN + 1)]
            query = urlencode(form.query())
            context.update(
                {
                    "report": report,
                    "counts": [
                        {
                            "category": category,
                            "label": LABELS[category],
                            "help": HELP[category],
                            "count": report.counts[category],
                            "differs": category in DIFFERENCES and report.counts[category] > 0,
                        }
                        for category in CATEGORIES
                    ],
                    "rows": rows[:SHOWN],
                    "more": len(rows) > SHOWN,
                    "shown": SHOWN,
                    "csv_url": f"{reverse('admin:django_pjpixel_reconciliation_csv')}?{query}",
                }
            )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_pjpixel/reconciliation.html", context)

    def reconciliation_csv(self, request: HttpRequest) -> HttpResponseBase:
        """Every difference of the range as CSV, streamed (cells neutralised for spreadsheets)."""
        form = self._allowed_form(request)
        report = _report(request, form)
        if report is None:
            text = "; ".join(str(m) for m in messages.get_messages(request))
            return HttpResponse(text, status=409, content_type="text/plain; charset=utf-8")
        rows = (difference.as_row() for difference in report.differences())
        response = StreamingHttpResponse(
            csv_lines(chain([CSV_HEADER], rows)), content_type="text/csv; charset=utf-8"
        )
        # From the cleaned values: the query's own text may hold a CR or LF (a header
        # holding one is refused, a 500), the dates and the market's key cannot.
        cleaned = form.cleaned_data
        market = f"{cleaned['market'].key}-" if cleaned["market"].key else ""
        days = f"{cleaned['from']:%Y-%m-%d}-{cleaned['to']:%Y-%m-%d}"
        name = f"pjpixel-reconciliation-{market}{days}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def _allowed_form(self, request: HttpRequest) -> ReconciliationForm:
        if not self.has_reconciliation_permission(request):
            raise PermissionDenied
        return ReconciliationForm.from_query(request.GET)


def _report(request: HttpRequest, form: ReconciliationForm) -> Report | None:
    """The comparison for the form's range, or None with a message saying why not."""
    if not form.is_valid():
        messages.error(
            request,
            gettext("Nothing was compared: choose one of the markets below.")
            if form.has_error(MARKET_PARAMETER)
            else gettext("Nothing was compared: correct the dates below."),
        )
        return None
    cleaned = form.cleaned_data
    try:
        return reconcile(cleaned["start"], cleaned["end"], pixel_id=cleaned["market"].pixel_id)
    except NotSynced as err:
        messages.warning(request, str(err))
        return None


def _row(difference: Difference) -> dict[str, Any]:
    ours = difference.ours
    return {
        "category": difference.category,
        "label": LABELS[difference.category],
        "order_id": difference.order_id,
        "url": reverse("admin:django_pjpixel_conversionevent_change", args=(ours["id"],))
        if ours
        else None,
        "ours": describe(ours),
        "prisjakt": describe(difference.prisjakt),
        "prisjakt_id": (difference.prisjakt or {}).get("id"),
    }
