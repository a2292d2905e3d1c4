"""The example shop's project package; loads the Celery app with Django."""

from __future__ import annotations

from demo_site.celery import app as celery_app

__all__ = ["celery_app"]
