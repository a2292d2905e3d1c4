"""Is delivery to Prisjakt healthy? What ops watch, read in five indexed queries and one a market.

``delivery_health()`` summarises the outbox and the mirror: how long the
oldest due event has waited for a sender, how many events failed or were
given up in the last 24 hours, the last successful send, the last complete
sync of Prisjakt's events (of each market's pixel); and, against the
``HEALTH_MAX_*`` settings, what is wrong. A new install is "not synced yet",
not a problem, until a sync is due: ``HEALTH_MAX_SYNC_AGE`` after its first
migration. ``pixel_id`` narrows it to one
market's rows and sync. The outbox changelist shows it (a warning band when
unhealthy; a market's when its pixel filter names one), ``pjpixel_check
--health`` prints it with an exit status, and
``healthcheck.DeliveryHealthCheck`` gives it to django-health-check.

``failure_streak`` is a ``post_send`` receiver (connected in ``apps.py``):
after ``FAILURE_STREAK`` failed attempts in a row in one process it logs one
error, and again only after a success has ended the streak.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Case, Count, Max, Min, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_pjpixel import markets
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.models import ConversionEvent, PrisjaktSync
from django_pjpixel.record.sync import last_sync
from django_pjpixel.sending.outbox import due_filter

logger = logging.getLogger("django_pjpixel.health")

Status = ConversionEvent.Status
DAY = timedelta(hours=24)
DELIVERED = frozenset({str(Status.SENT), str(Status.DUPLICATE)})
GIVEN_UP = frozenset({str(Status.FAILED), str(Status.DEAD)})
RETRYING = str(Status.PENDING)


@dataclass(frozen=True)
class DeliveryHealth:
    """The summary at ``checked_at``; ``problems`` is empty when delivery is healthy.

    ``due``: events a sender may claim now; ``due_since``: since when the
    oldest of them has been due (its retry time, its lease's end, or its
    creation); ``failed`` and ``dead``: events that ended so in the last 24
    hours; ``last_sent_at``: the latest ``sent_at`` (``sent`` or
    ``duplicate``); ``syncs``: each market's label (its key and pixel; "" for
    the single pixel) and its latest complete ``PrisjaktSync`` (None: never);
    ``last_sync``: the oldest of those, None when a market was never synced;
    ``conflicts``: orders reported again as another purchase in the last 24
    hours (``conflicts``).
    """

    checked_at: datetime
    due: int
    due_since: datetime | None
    failed: int
    dead: int
    last_sent_at: datetime | None
    last_sync: PrisjaktSync | None
    syncs: list[tuple[str, PrisjaktSync | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    conflicts: int = 0
    installed_at: datetime | None = None

    @property
    def sync_due(self) -> bool:
        """Whether a first sync is due: ``HEALTH_MAX_SYNC_AGE`` after the install (its first
        migration; unknown: due). Until then a market never synced is "not synced yet"."""
        since = self.installed_at
        return since is None or self.checked_at - since > pjpixel_settings.HEALTH_MAX_SYNC_AGE

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def due_age(self) -> timedelta | None:
        return None if self.due_since is None else self.checked_at - self.due_since

    def lines(self) -> list[str]:
        """The summary as ``label: value`` lines, for a terminal (a sync line a market)."""
        never = _("never") if self.sync_due else _("not synced yet")
        lines = [
            _("Due events: %(count)d") % {"count": self.due},
            _("Oldest due for: %(age)s") % {"age": _age(self.due_since, self.checked_at)},
            _("Failed in the last 24 hours: %(count)d") % {"count": self.failed},
            _("Given up in the last 24 hours: %(count)d") % {"count": self.dead},
            _("Last successful send: %(when)s") % {"when": _when(self.last_sent_at) or _("never")},
        ]
        for market, run in self.syncs or [("", self.last_sync)]:
            when = _when(run.finished_at if run else None) or never
            if market:
                line = _("Last complete sync of Prisjakt's events, %(market)s: %(when)s")
                lines.append(line % {"market": market, "when": when})
            else:
                lines.append(
                    _("Last complete sync of Prisjakt's events: %(when)s") % {"when": when}
                )
        line = _("Orders reported again as another purchase in the last 24 hours: %(count)d")
        lines.append(line % {"count": self.conflicts})
        return lines


def delivery_health(now: datetime | None = None, *, pixel_id: str | None = None) -> DeliveryHealth:
    """The outbox's and the mirror's state now, and what is wrong with it.

    ``pixel_id``: one market's rows and sync; None: every row, and the sync of
    every market's pixel (each market never synced, or too long ago, is a
    problem naming it).
    """
    now = timezone.now() if now is None else now
    since = Case(
        When(status=Status.SENDING, then=Coalesce("leased_until", "created_at")),
        default=Coalesce("next_attempt_at", "created_at"),
    )
    rows = ConversionEvent.objects.all()
    if pixel_id is not None:
        rows = rows.filter(pixel_id=pixel_id)
    # Each figure in a query of its own that an index serves (docs/explanation/scale.md):
    # one aggregate with FILTER clauses would read the whole history of the outbox.
    totals: dict[str, Any] = rows.filter(due_filter(now)).aggregate(
        due=Count("pk"), due_since=Min(since)
    )
    totals.update(
        rows.filter(updated_at__gte=now - DAY, status__in=GIVEN_UP).aggregate(
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            dead=Count("pk", filter=Q(status=Status.DEAD)),
        )
    )
    totals["last_sent_at"] = max(
        (
            when
            for status in sorted(DELIVERED)
            if (when := rows.filter(status=status).aggregate(last=Max("sent_at"))["last"])
        ),
        default=None,
    )
    totals["conflicts"] = rows.filter(conflict_at__gte=now - DAY).count()
    several = markets.is_configured()
    pixels = markets.pixel_ids() if pixel_id is None else [pixel_id]
    syncs = [(markets.label(pixel) if several else "", last_sync(pixel)) for pixel in pixels]
    found = [run for _market, run in syncs if run is not None]
    complete = found and len(found) == len(syncs)
    oldest = min(found, key=lambda run: run.finished_at or run.started_at) if complete else None
    health = DeliveryHealth(
        checked_at=now, last_sync=oldest, syncs=syncs, installed_at=installed_at(), **totals
    )
    health.problems.extend(_problems(health))
    return health


def installed_at() -> datetime | None:
    """When django_pjpixel's first migration was applied to the outbox's database; None
    where it was not recorded (tables made from the models, as by ``--no-migrations``)."""
    recorder = MigrationRecorder(connections[router.db_for_write(ConversionEvent)])
    if not recorder.has_table():
        return None
    first: datetime | None = recorder.migration_qs.filter(app="django_pjpixel").aggregate(
        first=Min("applied")
    )["first"]
    return first


def _problems(health: DeliveryHealth) -> list[str]:
    conf = pjpixel_settings
    now = health.checked_at
    problems = []
    if health.due_age is not None and health.due_age > conf.HEALTH_MAX_DUE_AGE:
        problems.append(
            _(
                "An event has waited %(age)s for delivery (the limit is %(limit)s): "
                "is deliver_due running, and can Prisjakt be reached?"
            )
            % {
                "age": _age(health.due_since, now),
                "limit": _span(conf.HEALTH_MAX_DUE_AGE),
            }
        )
    if health.failed > conf.HEALTH_MAX_FAILED:
        problems.append(
            ngettext(
                "%(count)d event failed in the last 24 hours (the limit is %(limit)d).",
                "%(count)d events failed in the last 24 hours (the limit is %(limit)d).",
                health.failed,
            )
            % {"count": health.failed, "limit": conf.HEALTH_MAX_FAILED}
        )
    if health.dead > conf.HEALTH_MAX_DEAD:
        problems.append(
            ngettext(
                "%(count)d event was given up in the last 24 hours (the limit is %(limit)d).",
                "%(count)d events were given up in the last 24 hours (the limit is %(limit)d).",
                health.dead,
            )
            % {"count": health.dead, "limit": conf.HEALTH_MAX_DEAD}
        )
    if health.conflicts:
        problems.append(
            ngettext(
                "%(count)d order id was reported again as another purchase in the last 24 "
                "hours: see Conversion events (conflicting report).",
                "%(count)d order ids were reported again as another purchase in the last 24 "
                "hours: see Conversion events (conflicting report).",
                health.conflicts,
            )
            % {"count": health.conflicts}
        )
    for market, run in health.syncs:
        if run is None and not health.sync_due:
            continue  # a new install: not synced yet
        problem = _sync_problem(run.finished_at if run else None, now)
        if problem and market:
            problem = _("Market %(market)s: %(problem)s") % {"market": market, "problem": problem}
        if problem:
            problems.append(problem)
    return problems


def _sync_problem(synced: datetime | None, now: datetime) -> str:
    if synced is None:
        return _(
            "Prisjakt's events have never been synced completely: schedule "
            "django_pjpixel.tasks.sync_events, or run manage.py pjpixel_sync."
        )
    if now - synced > pjpixel_settings.HEALTH_MAX_SYNC_AGE:
        return _(
            "The last complete sync of Prisjakt's events was %(age)s ago (the limit is %(limit)s)."
        ) % {"age": _age(synced, now), "limit": _span(pjpixel_settings.HEALTH_MAX_SYNC_AGE)}
    return ""


def _age(since: datetime | None, now: datetime) -> str:
    return "-" if since is None else timesince(since, now)


def _span(length: timedelta) -> str:
    now = timezone.now()
    return timesince(now - length, now)


def _when(value: datetime | None) -> str | None:
    return None if value is None else f"{timezone.localtime(value):%Y-%m-%d %H:%M}"


class FailureStreak:
    """``post_send`` receiver: one error after ``FAILURE_STREAK`` failed attempts in a row.

    A failed attempt is one that ended ``failed`` or ``dead``, or back to
    ``pending`` with an error (a transient answer); ``sent`` or ``duplicate``
    ends the streak; a ``skipped`` event is neither. Counted per process.
    It also stamps ``updated_at`` on an event that ended ``failed`` or
    ``dead``, which the outbox's own writes leave as it was, so the health
    summary can count the last 24 hours.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(
        self, sender: Any, event: ConversionEvent, status: str, error: Any = None, **kwargs: Any
    ) -> None:
        if status in DELIVERED:
            with self._lock:
                self.count = 0
            return
        if status not in GIVEN_UP and not (status == RETRYING and error is not None):
            return
        if status in GIVEN_UP:
            ConversionEvent.objects.filter(pk=event.pk).update(updated_at=timezone.now())
        with self._lock:
            self.count += 1
            reached = self.count == pjpixel_settings.FAILURE_STREAK
        if reached:
            logger.error(
                "pjpixel: %d deliveries to Prisjakt failed in a row; the last, order %s (%s): %s",
                pjpixel_settings.FAILURE_STREAK,
                event.order_id,
                status,
                error if error is not None else event.problem_title,
                extra={"pjpixel_event": event.pk, "order_id": event.order_id, "status": status},
            )


failure_streak = FailureStreak()
FAILURE_STREAK_UID = "django_pjpixel.health.failure_streak"
