from __future__ import annotations

from django.apps import AppConfig, apps
from django.contrib.auth.signals import user_logged_out
from django.utils.translation import gettext_lazy as _


class PjpixelConfig(AppConfig):
    name = "django_pjpixel"
    label = "django_pjpixel"
    verbose_name = _("Prisjakt conversion tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the checks, and the tasks the publisher sends by name.
        from django_pjpixel import checks, credential_checks, market_checks, tasks  # noqa: F401
        from django_pjpixel.health import FAILURE_STREAK_UID, failure_streak
        from django_pjpixel.ledger.purchases import ORDER_COMPLETED_UID, on_order_completed
        from django_pjpixel.signals import order_completed, post_send
        from django_pjpixel.stores import KEEP_AT_LOGOUT_UID, keep_at_logout

        order_completed.connect(on_order_completed, dispatch_uid=ORDER_COMPLETED_UID)
        user_logged_out.connect(keep_at_logout, dispatch_uid=KEEP_AT_LOGOUT_UID)
        post_send.connect(failure_streak, dispatch_uid=FAILURE_STREAK_UID)
        if apps.is_installed("health_check"):
            from django_pjpixel.healthcheck import register

            register()
