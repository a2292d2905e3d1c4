"""Restatements in the admin: on their event's page, a filter, the "Restate…" action, a list.

Restatements are records, never edited: staff with the permission to add
one (``django_pjpixel.add_restatement``) restate selected events through an
intermediate form, which calls ``restate_purchase`` as a shop's refund does,
naming the selected event's market.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_pjpixel import markets
from django_pjpixel.admin.filters import MarketColumn, PixelFilter
from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement

if TYPE_CHECKING:
    EventAdmin = admin.ModelAdmin[ConversionEvent]
    Inline = admin.TabularInline[Restatement, ConversionEvent]
    ModelAdmin = admin.ModelAdmin[Restatement]
else:  # generic for the type checker only
    EventAdmin = ModelAdmin = admin.ModelAdmin
    Inline = admin.TabularInline

Status = Restatement.Status
RESTATE_PERMISSION = "django_pjpixel.add_restatement"
UNSENDABLE = str(Status.UNSENDABLE)


SHOWN = (
    "created_at",
    "reason",
    "change",
    "status",
    "skip_reason",
    "attempts",
    "last_answer",
    "sent_at",
    "request_id",
)


class Columns:
    """The columns a restatement is shown with, in its list and on its event's page."""

    @admin.display(description=_("amount, items: before → after"))
    def change(self, row: Restatement) -> str:
        """``1,234.00 SEK, 2 → 0.00 SEK, 0``: the order's amount and items before and after."""
        new = f"{formats.localize(row.amount)} {row.currency}, {row.number_of_items}"
        if row.old_amount is None:
            return f"→ {new}"
        old = f"{formats.localize(row.old_amount)} {row.old_currency}, {row.old_number_of_items}"
        return f"{old} → {new}"

    @admin.display(description=_("last answer"), ordering="last_status_code")
    def last_answer(self, row: Restatement) -> str:
        code = "" if row.last_status_code is None else str(row.last_status_code)
        return " ".join(part for part in (code, row.problem_title) if part) or "-"

    @admin.display(description=_("order"), ordering="order_id")
    def order(self, row: Restatement) -> str | SafeString:
        if row.event_id is None:
            return row.order_id
        url = reverse("admin:django_pjpixel_conversionevent_change", args=(row.event_id,))
        return format_html('<a href="{}">{}</a>', url, row.order_id)


class RestatementInline(Columns, Inline):
    """The restatements of an event, oldest first, on its page (read-only)."""

    model = Restatement
    fk_name = "event"
    fields = readonly_fields = SHOWN
    ordering = ("pk",)
    extra = 0
    can_delete = False
    verbose_name_plural = _("restatements (refunds and cancellations)")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Part of the event's ledger: whoever may see the event sees them.
        opts = ConversionEvent._meta
        return any(
            request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
            for action in ("view", "change")
        )


class RestatedFilter(admin.SimpleListFilter):
    title = _("restated")
    parameter_name = "restated"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Restated (refunded or cancelled)")), ("no", _("Not restated"))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ConversionEvent]
    ) -> QuerySet[ConversionEvent]:
        restated = Exists(Restatement.objects.filter(event=OuterRef("pk")))
        chosen: QuerySet[ConversionEvent] = queryset
        if self.value() == "yes":
            chosen = queryset.filter(restated)
        elif self.value() == "no":
            chosen = queryset.exclude(restated)
        return chosen


class RestateForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount now"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        help_text=_("What the order counts at after the refund: 0 for a cancellation."),
    )
    number_of_items = forms.IntegerField(
        label=_("Number of items now"),
        min_value=0,
        required=False,
        help_text=_("Left empty, the number of items stays as it is."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, required=False)


def restate_view(
    model_admin: EventAdmin, request: HttpRequest, queryset: QuerySet[ConversionEvent]
) -> TemplateResponse | None:
    """The "Restate…" action: its form, then ``restate_purchase`` for each selected event."""
    if not request.user.has_perm(RESTATE_PERMISSION):
        raise PermissionDenied
    form = RestateForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        with transaction.atomic():
            rows = [
                _restate(model_admin, request, event, form.cleaned_data)
                for event in queryset.order_by("pk")
            ]
        _report(model_admin, request, [row for row in rows if row is not None])
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Restate conversion events"),
        "opts": model_admin.opts,
        "form": form,
        "events": queryset.order_by("pk"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    template = "admin/django_pjpixel/conversionevent/restate.html"
    return TemplateResponse(request, template, context)


def _restate(
    model_admin: EventAdmin, request: HttpRequest, event: ConversionEvent, values: dict[str, Any]
) -> Restatement | None:
    """The selected event restated, not the order's event in another market."""
    key = markets.key_of(event.pixel_id)
    if key is None and markets.is_configured():
        model_admin.message_user(
            request,
            _('Order %(order)s is not restated: no market of PJPIXEL["PIXELS"] has its pixel.')
            % {"order": event.order_id},
            messages.WARNING,
        )
        return None
    return restate_purchase(order_id=event.order_id, pixel=key, **values)


def _report(model_admin: EventAdmin, request: HttpRequest, rows: list[Restatement]) -> None:
    counts = Counter(row.get_status_display() for row in rows if row.status != UNSENDABLE)
    if counts:
        summary = ", ".join(f"{count} {label.lower()}" for label, count in sorted(counts.items()))
        model_admin.message_user(
            request,
            ngettext(
                "%(count)d restatement recorded (%(summary)s).",
                "%(count)d restatements recorded (%(summary)s).",
                counts.total(),
            )
            % {"count": counts.total(), "summary": summary},
            messages.SUCCESS,
        )
    for row in rows:
        if row.status == UNSENDABLE:
            model_admin.message_user(
                request,
                _("Order %(order)s is not restated at Prisjakt: %(why)s.")
                % {"order": row.order_id, "why": row.skip_reason},
                messages.WARNING,
            )


@admin.register(Restatement)
class RestatementAdmin(MarketColumn, Columns, ModelAdmin):
    """Every restatement, newest first: what is waiting, what failed, what Prisjakt has."""

    list_display = (
        "order",
        "change",
        "status",
        "skip_reason",
        "attempts",
        "last_answer",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", PixelFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("order_id", "request_id")
    fields = readonly_fields = ("order", "pixel_id", *SHOWN, "problem_detail", "field_errors")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # through "Restate…" on the conversion events, or restate_purchase

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
