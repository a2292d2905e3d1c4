"""Naive and aware datetimes where they cross into django-pjpixel, and back out.

Inside the package every datetime is aware. A naive one arrives only under
``USE_TZ = False`` (from the database, an old session, the shop's own
``timezone.now()``), and then, as Django reads it, it is in ``TIME_ZONE``.
Going back to the database, a form or a template, a datetime takes the form
Django uses under the current ``USE_TZ``. Prisjakt gets UTC (the client).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.utils import timezone

# How far two clocks may disagree (the shop's, its payment provider's, ours):
# an event time this far in the future, or this far before its click, is
# taken as it is rather than refused.
CLOCK_SKEW = timedelta(minutes=5)


def now() -> datetime:
    """The current time, aware, in UTC, whatever ``USE_TZ`` says."""
    return datetime.now(dt_timezone.utc)


def aware(value: datetime) -> datetime:
    """``value`` with its time zone; a naive one is in ``TIME_ZONE``, as Django stores it."""
    if timezone.is_aware(value):
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def as_django(value: datetime) -> datetime:
    """``value`` as Django keeps it: aware under ``USE_TZ``, else naive in ``TIME_ZONE``."""
    if settings.USE_TZ:
        return aware(value)
    return timezone.make_naive(aware(value), timezone.get_default_timezone())


def localdate() -> date:
    """Today in the current time zone (``timezone.localdate()`` refuses ``USE_TZ = False``)."""
    return timezone.localtime(now()).date()
