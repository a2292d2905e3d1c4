"""The outbox's filters: the pixel filter and the market column of the outbox's, the
restatements' and the mirror's changelists (each pixel of the rows, its market's key
beside it); the outbox's click and conflict filters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_pjpixel.admin.history import distinct_values
from django_pjpixel.attribution import SKIP_ODD_CLICK
from django_pjpixel.markets import UNROUTED, is_configured, label

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


class PixelFilter(admin.SimpleListFilter):
    """Rows by pixel; shown with several markets, or when the rows have several pixels."""

    title = _("pixel")
    parameter_name = "pixel_id"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        # Through an index that starts with pixel_id: one probe per pixel, however long the
        # history (``history.distinct_values``).
        pixels = distinct_values(model_admin.model, "pixel_id")
        # One pixel: nothing to choose (a row of no market, "", is not a second one).
        if len([pixel for pixel in pixels if pixel != UNROUTED]) < 2 and not is_configured():
            return []
        return [(pixel, label(pixel)) for pixel in pixels]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(pixel_id=value)


class MarketColumn:
    """A *market* column after the first (the row's market key and pixel), with several
    markets (``PJPIXEL["PIXELS"]``): one order id may have a row in each."""

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        columns = tuple(super().get_list_display(request))  # type: ignore[misc]
        return (columns[0], "market", *columns[1:]) if is_configured() else columns

    @admin.display(description=_("market"), ordering="pixel_id")
    def market(self, obj: Any) -> str:
        return label(obj.pixel_id)


class ClickFilter(admin.SimpleListFilter):
    """Rows by their click: held for a click of an unexpected shape (``clickids``), or none."""

    title = _("click")
    parameter_name = "click"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, Any]]:
        return [
            ("odd", _("Held: a click id of an unexpected shape")),
            ("none", _("No click")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen: QuerySet[Any] = queryset
        if self.value() == "odd":
            chosen = queryset.filter(status="skipped", skip_reason=SKIP_ODD_CLICK)
        elif self.value() == "none":
            chosen = queryset.filter(click_id="")
        return chosen


class ConflictFilter(admin.SimpleListFilter):
    """Rows whose order id was reported again as another purchase (``conflicts``)."""

    title = _("conflicting report")
    parameter_name = "conflict"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, Any]]:
        return [
            ("yes", _("Order id reported again as another purchase")),
            ("no", _("No conflicting report")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        chosen: QuerySet[Any] = queryset
        if self.value() in ("yes", "no"):
            chosen = queryset.filter(conflict_at__isnull=self.value() == "no")
        return chosen
