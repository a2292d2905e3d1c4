from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PjpixelConfig(AppConfig):
    name = "django_pjpixel"
    label = "django_pjpixel"
    verbose_name = _("Prisjakt conversion tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_pjpixel import checks  # noqa: F401  (registers the checks)
        from django_pjpixel.signals import (
            ORDER_COMPLETED_UID,
            on_order_completed,
            order_completed,
        )

        order_completed.connect(on_order_completed, dispatch_uid=ORDER_COMPLETED_UID)
