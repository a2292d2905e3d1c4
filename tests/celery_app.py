"""The Celery app of the test project (a shop defines its own the same way)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_pjpixel"])
app.set_default()


def reset_publisher(app: Celery = app) -> None:
    """Make the app look its broker connections up again from the current conf.

    kombu keeps one pool per broker URL for the whole process; they are left
    open (closing one breaks every later publish to that URL in the process),
    so switching back to a URL finds its pool as it was. What this process
    still has to publish goes out first, to the broker it was queued for.
    """
    from django_pjpixel.ledger.publisher import flush_publishes

    flush_publishes(10)
    app._pool = None  # type: ignore[attr-defined]  # Celery's private connection pool
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
