"""Fork safety of the per-process state outside the client: a child of ``os.fork()``.

gunicorn ``--preload``, uWSGI and Celery's prefork pool fork a process that
may already have used django-pjpixel; only the forking thread lives on in
the child. A lock another thread held at that moment would stay held in the
child for good, so every module-level lock is replaced there. (The client's
own fork safety is tested over HTTP in ``test_client_fork.py``;
the publisher's in ``test_publisher.py``.)
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from django_pjpixel import markets
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending import backlog
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import forked, make_event

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only"),
    # The child opens its own database connection: it sees committed rows only.
    pytest.mark.django_db(transaction=True),
]


def test_a_pause_lock_held_by_another_thread_at_fork_is_free_in_the_child(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    event = make_event()
    held, release = threading.Event(), threading.Event()
    backlog._pauses[markets.single().pause_key] = timezone.now() - timedelta(seconds=1)

    def hold() -> None:  # a deliver_due run of another thread, mid-way through its pace check
        with backlog._pauses_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    try:
        wait = forked(lambda: deliver_due())  # the child's pjpixel_deliver, at once
        report = wait(10)
    finally:
        release.set()
        holder.join(5)
        backlog._pauses.clear()
    assert report == ""
    assert ConversionEvent.objects.get(pk=event.pk).status == ConversionEvent.Status.SENT
