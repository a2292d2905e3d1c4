"""The admin's "Reconciliation" page and its CSV export.

Served by ``PrisjaktEventAdmin.get_urls()`` (``mirror_admin.py``) through
``admin_site.admin_view``, allowed by its ``has_reconciliation_permission``.
A range of whole days (by default the last ``SYNC_DAYS``, what the periodic
sync keeps), the orders per category, and the differences, each linked to
the shop's conversion event; the page shows the first ``SHOWN`` of them, the
CSV export all of them.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exports import csv_lines
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
from django_pjpixel.views import DATE_FORMAT, EventRangeForm, day_range

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


class ReconciliationForm(EventRangeForm):
    """``from`` and ``to`` (``YYYY-MM-DD``, whole local days), of any length."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["page"]

    @classmethod
    def from_query(cls, query: Any, today: date | None = None) -> ReconciliationForm:
        """The form bound to the query string, the last ``SYNC_DAYS`` days where it is silent."""
        today = today or timezone.localdate()
        first = today - timedelta(days=pjpixel_settings.SYNC_DAYS - 1)
        data = {"from": first.strftime(DATE_FORMAT), "to": today.strftime(DATE_FORMAT)}
        data.update({name: query[name] for name in ("from", "to") if query.get(name)})
        return cls(data)

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        first, last = cleaned.get("from"), cleaned.get("to")
        if isinstance(first, date) and isinstance(last, date):
            if last < first:
                self.add_error("to", gettext("The end date must not be before the start date."))
            else:
                cleaned["start"], cleaned["end"] = day_range(first, last)
        return cleaned


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
        query = urlencode({name: form.data[name] for name in ("from", "to")})
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
    name = f"pjpixel-reconciliation-{form.data['from']}-{form.data['to']}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _allowed_form(model_admin: PrisjaktEventAdmin, request: HttpRequest) -> ReconciliationForm:
    if not model_admin.has_reconciliation_permission(request):
        raise PermissionDenied
    return ReconciliationForm.from_query(request.GET)


def _report(request: HttpRequest, form: ReconciliationForm) -> Report | None:
    """The comparison for the form's range, or None with a message saying why not."""
    if not form.is_valid():
        messages.error(request, gettext("Nothing was compared: correct the dates below."))
        return None
    try:
        return reconcile(form.cleaned_data["start"], form.cleaned_data["end"])
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
