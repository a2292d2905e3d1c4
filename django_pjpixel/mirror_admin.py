"""The mirror of Prisjakt's events in the admin, read-only, and the reconciliation page beside it.

``PrisjaktEventAdmin`` lists what the last syncs copied from Prisjakt's
listing; nobody edits it by hand (it is rewritten by each sync). Its
``get_urls()`` adds the "Reconciliation" page and its CSV export, served
through ``admin_site.admin_view`` and allowed by
``has_reconciliation_permission``: to see both the shop's conversion events
and Prisjakt's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from django_pjpixel import reconciliation_views
from django_pjpixel.admin_history import CurrencyFilter, EventNameFilter, HistoryAdmin
from django_pjpixel.models import ConversionEvent, PrisjaktEvent
from django_pjpixel.pixel_filter import MarketColumn, PixelFilter

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[PrisjaktEvent]
else:  # ModelAdmin is generic for the type checker only
    ModelAdmin = admin.ModelAdmin


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
class PrisjaktEventAdmin(MarketColumn, HistoryAdmin, ModelAdmin):
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
        CurrencyFilter,
        EventNameFilter,
        ("event_time", admin.DateFieldListFilter),
    )
    search_fields = ("external_event_id__exact", "id__exact", "click_id__exact")
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

    def reconciliation_view(self, request: HttpRequest) -> HttpResponseBase:
        return reconciliation_views.reconciliation_view(self, request)

    def reconciliation_csv(self, request: HttpRequest) -> HttpResponseBase:
        return reconciliation_views.reconciliation_csv(self, request)
