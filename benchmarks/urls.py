from __future__ import annotations

from django.contrib import admin
from django.urls import path

from benchmarks import views

urlpatterns = [
    path("", views.page),
    path("checkout/baseline/", views.checkout_baseline),
    path("checkout/pjpixel/", views.checkout_pjpixel),
    path("checkout/naive/", views.checkout_naive),
    path("admin/", admin.site.urls),  # the history benchmark's pages
]
