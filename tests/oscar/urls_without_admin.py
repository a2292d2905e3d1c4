"""A shop that does not mount the Django admin: the Prisjakt page links to nothing there."""

from __future__ import annotations

from django.apps import apps
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("dashboard/prisjakt/", apps.get_app_config("pjpixel_oscar").urls),
    path("", include(apps.get_app_config("oscar").urls[0])),
]
