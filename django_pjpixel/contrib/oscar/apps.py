"""The adapter as an Oscar dashboard app: its receivers, checks, URL and permissions."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _
from oscar.apps.checkout.signals import pre_payment
from oscar.apps.order.signals import order_placed, order_status_changed
from oscar.core.application import OscarDashboardConfig
from oscar.core.loading import get_class


class PjpixelOscarConfig(OscarDashboardConfig):  # type: ignore[misc]  # Oscar is untyped
    """``django_pjpixel.contrib.oscar``: wires django-pjpixel into a django-oscar shop.

    Its page in Oscar's dashboard is mounted by the shop's URLconf
    (``path("dashboard/prisjakt/", apps.get_app_config("pjpixel_oscar").urls)``)
    and guarded by Oscar's permission machinery: staff who may view
    conversion events (``django_pjpixel.view_conversionevent``).
    """

    # The app's config when INSTALLED_APPS names the package (apps.py imports Oscar's too).
    default = True
    name = "django_pjpixel.contrib.oscar"
    label = "pjpixel_oscar"
    verbose_name = _("Prisjakt conversion tracking for django-oscar")
    namespace = "pjpixel_dashboard"
    default_permissions = ["is_staff"]

    def ready(self) -> None:
        # Registers the checks; connects the receivers once, however often ready() runs.
        from django_pjpixel.contrib.oscar import checks, receivers  # noqa: F401
        from django_pjpixel.contrib.oscar.views import ConversionEventListView

        pre_payment.connect(receivers.attach_checkout_click, dispatch_uid=receivers.PRE_PAYMENT_UID)
        order_placed.connect(receivers.report_placed_order, dispatch_uid=receivers.ORDER_PLACED_UID)
        order_status_changed.connect(
            receivers.report_status_change, dispatch_uid=receivers.STATUS_CHANGED_UID
        )
        self.events_view = ConversionEventListView
        self.configure_permissions()

    def configure_permissions(self) -> None:
        DashboardPermission: Any = get_class("dashboard.permissions", "DashboardPermission")
        self.permissions_map = {
            "pjpixel-conversion-events": [
                *DashboardPermission.staff,
                *DashboardPermission.get("django_pjpixel", "view_conversionevent"),
            ],
        }

    def get_urls(self) -> list[URLPattern]:
        urls = [
            path("", self.events_view.as_view(), name="pjpixel-conversion-events"),
        ]
        return self.post_process_urls(urls)  # type: ignore[no-any-return]
