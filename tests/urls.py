from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # django-cookie-consent (installed for the consent hooks) reverses its own
    # URLs in its settings; a shop using it mounts them, and so do the tests.
    path("cookies/", include("cookie_consent.urls")),
]
