"""Celery tasks: thin wrappers over ``delivery``, ``backlog``, ``sync`` and ``retention``.

``deliver_event(event_pk)`` is queued when an order's transaction commits; its
message carries the row's primary key only. A transient failure is retried
through Celery (``self.retry``) at the time the ledger recorded in
``next_attempt_at``, when that is at most ``PJPIXEL["MAX_COUNTDOWN"]`` seconds
away (600 by default). The worker holds a retried task's message
unacknowledged until it has run: RabbitMQ closes the channel of a consumer that
holds one past ``consumer_timeout`` (30 minutes by default), after which the
worker consumes nothing, and Redis hands it to another worker after its
``visibility_timeout`` (one hour). A longer wait (a ``Retry-After: 2400``),
and everything whose publish failed, is left to the periodic ``deliver_due``:
the row stays ``pending`` with its ``next_attempt_at``. Schedule it with Celery beat::

    CELERY_BEAT_SCHEDULE = {
        "pjpixel-deliver-due": {
            "task": "django_pjpixel.tasks.deliver_due",
            "schedule": 60.0,
        },
    }

or run ``manage.py pjpixel_deliver`` from cron instead. ``sync_events`` mirrors
Prisjakt's events of the last ``SYNC_DAYS`` days; beat it every hour. ``purge`` erases
click ids past ``PJPIXEL["RETENTION"]``; run it daily.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, current_app, shared_task
from celery.exceptions import MaxRetriesExceededError
from django.core.checks import CheckMessage, Error, Tags, register
from django.utils import timezone

from django_pjpixel.conf import DEFAULTS, pjpixel_settings
from django_pjpixel.ledger import retention
from django_pjpixel.ledger.publisher import DELIVER_EVENT_TASK
from django_pjpixel.record import sync
from django_pjpixel.sending import backlog, delivery

logger = logging.getLogger("django_pjpixel.delivery")


# Pinned, so that moving this module never renames a task that shops schedule with
# Celery beat, or that messages already queued name.
DELIVER_DUE_TASK = "django_pjpixel.tasks.deliver_due"
SYNC_EVENTS_TASK = "django_pjpixel.tasks.sync_events"
PURGE_TASK = "django_pjpixel.tasks.purge"
TASK_NAMES = (DELIVER_EVENT_TASK, DELIVER_DUE_TASK, SYNC_EVENTS_TASK, PURGE_TASK)


@shared_task(
    name=DELIVER_EVENT_TASK,
    bind=True,
    acks_late=True,
    ignore_result=True,
    # Re-read from the settings at each retry; the ledger stops retries at MAX_ATTEMPTS.
    max_retries=DEFAULTS["MAX_ATTEMPTS"],
)
def deliver_event(self: Task[[int], str], event_pk: int) -> str:
    """Deliver one ``ConversionEvent``; returns its new status (or ``"not_due"``)."""
    outcome = delivery.deliver_event(event_pk)
    if outcome.retry_at is None or self.request.is_eager:
        # Eagerly run (tests, CELERY_TASK_ALWAYS_EAGER): a retry would run at once
        # rather than later, so deliver_due sends it when it is due.
        return outcome.status
    countdown = max((outcome.retry_at - timezone.now()).total_seconds(), 0.0)
    if countdown > pjpixel_settings.MAX_COUNTDOWN:
        return outcome.status
    try:
        raise self.retry(countdown=countdown, max_retries=pjpixel_settings.MAX_ATTEMPTS)
    except MaxRetriesExceededError:
        logger.warning(
            "pjpixel: no more Celery retries for event %s; deliver_due sends it when due",
            event_pk,
            extra={"pjpixel_event": event_pk},
        )
        return outcome.status


@shared_task(name=DELIVER_DUE_TASK, ignore_result=True)
def deliver_due(limit: int | None = None) -> dict[str, int]:
    """Send every ``ConversionEvent`` that is due; counts per outcome."""
    return backlog.deliver_due(limit)


@shared_task(name=SYNC_EVENTS_TASK, ignore_result=True)
def sync_events(days: int | None = None) -> dict[str, Any]:
    """Mirror Prisjakt's events of the last ``days`` (default ``SYNC_DAYS``), each market's
    pixel with its own credentials; what it did, in all and per pixel.

    A run the API refused is logged and reported, not raised: the next run tries again.
    """
    per_pixel: dict[str, dict[str, Any]] = {}
    for pixel_id, run in sync.sync_every_market(days).items():
        if isinstance(run, Exception):
            per_pixel[pixel_id] = {"complete": False, "pages": 0, "events": 0, "error": str(run)}
        else:
            per_pixel[pixel_id] = {
                "complete": run.complete,
                "pages": run.pages,
                "events": run.events,
                "error": run.error,
            }
    results = per_pixel.values()
    return {
        "complete": all(result["complete"] for result in results),
        "pages": sum(result["pages"] for result in results),
        "events": sum(result["events"] for result in results),
        "error": "; ".join(result["error"] for result in results if result["error"]),
        "pixels": per_pixel,
    }


@shared_task(name=PURGE_TASK, ignore_result=True)
def purge() -> dict[str, int]:
    """Erase click ids older than ``PJPIXEL["RETENTION"]`` from rows done with; counts per table."""
    return retention.purge()


@register(Tags.compatibility)
def check_tasks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``django_pjpixel.E016``: a task of this module is not registered with the Celery app.

    The publisher sends ``deliver_event`` by its name; were it missing, every
    checkout's message would fail to publish and wait for ``deliver_due``.
    """
    registered = current_app.tasks
    return [
        Error(
            f"The Celery task {name!r} is not registered with the Celery app {current_app.main!r}.",
            hint="Keep 'django_pjpixel' in INSTALLED_APPS and let the Celery app load "
            "Django's settings (app.config_from_object('django.conf:settings', "
            "namespace='CELERY')) before its tasks are used.",
            id="django_pjpixel.E016",
        )
        for name in TASK_NAMES
        if name not in registered
    ]
