from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PjpixelConfig(AppConfig):
    name = "django_pjpixel"
    label = "django_pjpixel"
    verbose_name = _("Prisjakt conversion tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the checks, and the tasks the publisher sends by name.
        from django_pjpixel import checks, market_checks, tasks  # noqa: F401
        from django_pjpixel.purchases import ORDER_COMPLETED_UID, on_order_completed
        from django_pjpixel.signals import order_completed

        order_completed.connect(on_order_completed, dispatch_uid=ORDER_COMPLETED_UID)
