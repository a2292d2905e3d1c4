"""Delivery health as a django-health-check check: unhealthy exactly when the admin warns.

``DeliveryHealthCheck`` raises ``ServiceUnavailable`` with the problems of
``health.delivery_health()``. It works with both lines of django-health-check:

- 3.x (the line for Django 4.2): ``apps.py`` registers it in the plugin
  registry when ``"health_check"`` is in ``INSTALLED_APPS``, so its view
  shows it without more wiring;
- 4.x (Django 5.2+) has no registry: name it in the view's checks, e.g.
  ``HealthCheckView.as_view(checks=[..., "django_pjpixel.healthcheck.DeliveryHealthCheck"])``.

Imported only where django-health-check is installed.
"""

from __future__ import annotations

import dataclasses

from django.db import connections
from health_check.exceptions import ServiceUnavailable

from django_pjpixel.health import delivery_health

# The base class moved twice; the Django 4.2 test environment runs the 3.x ones.
try:
    from health_check.base import HealthCheck as Base  # 4.x
except ImportError:  # pragma: no cover
    try:
        from health_check.backends import HealthCheck as Base  # 3.22+
    except ImportError:
        from health_check.backends import BaseHealthCheckBackend as Base  # up to 3.21


@dataclasses.dataclass
class DeliveryHealthCheck(Base):  # type: ignore[misc]
    """Delivery to Prisjakt (``pjpixel_check --health``), as one check."""

    def run(self) -> None:
        """4.x: raise when unhealthy. 4.x runs it in a worker thread of its own, whose
        database connection is closed afterwards, as its own database check does."""
        try:
            self.check_status()
        finally:
            connections.close_all()

    def check_status(self) -> None:
        """3.x (which closes the thread's connections itself): raise when unhealthy."""
        health = delivery_health()
        if not health.healthy:
            raise ServiceUnavailable(" ".join(health.problems))


def register() -> None:
    """Add the check to django-health-check 3.x's registry (4.x has none)."""
    try:
        from health_check.plugins import plugin_dir
    except ImportError:
        return
    plugin_dir.register(DeliveryHealthCheck)  # pragma: no cover - 3.x
