"""The admin's "Reconciliation" page and its CSV export.

Served by ``PrisjaktEventAdmin.get_urls()`` (``mirror_admin.py``) through
``admin_site.admin_view``, allowed by its ``has_reconciliation_permission``.
A range of whole days (by default the last ``SYNC_DAYS``, what the periodic
sync keeps), the orders per category, and the differences, each linked to
the shop's conversion event; the page shows the first ``SHOWN`` of them, the
CSV export all of them.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_pjpixel.exports import csv_lines
from django_pjpixel.range_forms import MARKET_PARAMETER, ReconciliationForm
from django_pjpixel.reconciliation import (
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
    from django_pjpixel.mirror_admin import PrisjaktEventAdmin

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


def reconciliation_view(model_admin: PrisjaktEventAdmin, request: HttpRequest) -> HttpResponse:
    """The page: the range form, the counts per category, the differences."""
    form = _allowed_form(model_admin, request)
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": _("Reconciliation"),
        "opts": model_admin.model._meta,
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
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_pjpixel/reconciliation.html", context)


def reconciliation_csv(model_admin: PrisjaktEventAdmin, request: HttpRequest) -> HttpResponseBase:
    """Every difference of the range as CSV, streamed (cells neutralised for spreadsheets)."""
    form = _allowed_form(model_admin, request)
    report = _report(request, form)
    if report is None:
        text = "; ".join(str(m) for m in messages.get_messages(request))
        return HttpResponse(text, status=409, content_type="text/plain; charset=utf-8")
    rows = (difference.as_row() for difference in report.differences())
    response = StreamingHttpResponse(
        csv_lines(chain([CSV_HEADER], rows)), content_type="text/csv; charset=utf-8"
    )
    key = form.cleaned_data["market"].key
    market = f"{key}-" if key else ""
    name = f"pjpixel-reconciliation-{market}{form.data['from']}-{form.data['to']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _allowed_form(model_admin: PrisjaktEventAdmin, request: HttpRequest) -> ReconciliationForm:
    if not model_admin.has_reconciliation_permission(request):
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
