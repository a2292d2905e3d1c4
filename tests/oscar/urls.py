"""The shop's URLconf as Oscar documents it, with the Prisjakt dashboard page mounted."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("dashboard/prisjakt/", apps.get_app_config("pjpixel_oscar").urls),
    path("", include(apps.get_app_config("oscar").urls[0])),
]
