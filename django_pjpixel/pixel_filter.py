"""The pixel filter of the outbox's and the mirror's changelists: each pixel of the rows,
its market's key beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_pjpixel.markets import is_configured, label

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin


class PixelFilter(admin.SimpleListFilter):
    """Rows by pixel; shown with several markets, or when the rows have several pixels."""

    title = _("pixel")
    parameter_name = "pixel_id"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        rows = model_admin.get_queryset(request)
        pixels = list(rows.order_by("pixel_id").values_list("pixel_id", flat=True).distinct())
        if len(pixels) < 2 and not is_configured():
            return []  # one pixel: nothing to choose
        return [(pixel, label(pixel)) for pixel in pixels]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(pixel_id=value)
