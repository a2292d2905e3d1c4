"""The pixel filter and the market column of the outbox's, the restatements' and the
mirror's changelists: each pixel of the rows, its market's key beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_pjpixel.markets import UNROUTED, is_configured, label

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


class PixelFilter(admin.SimpleListFilter):
    """Rows by pixel; shown with several markets, or when the rows have several pixels."""

    title = _("pixel")
    parameter_name = "pixel_id"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        rows = model_admin.get_queryset(request)
        pixels = list(rows.order_by("pixel_id").values_list("pixel_id", flat=True).distinct())
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
