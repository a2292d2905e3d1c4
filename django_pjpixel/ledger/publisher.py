"""The per-process publisher: ``deliver_event`` messages off the request path.

``enqueue`` runs from ``transaction.on_commit`` in the checkout and hands the
committed row's key to one daemon thread per process, which publishes the
``django_pjpixel.tasks.deliver_event`` task. The committed row is the durable
record, so a message that is never published costs only time:
``deliver_due`` sends the row. A ``pending`` row is due from the moment it is
written, so a failed publish writes nothing: the thread never touches the
database, where its write could collide with the next checkout's
transaction (SQLite: "database is locked") or push the row past the start
of a ``deliver_due`` run that should have sent it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time

from celery import current_app
from django.db import connections

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.models import ConversionEvent

logger = logging.getLogger("django_pjpixel.publisher")

Status = ConversionEvent.Status
# Published by name: ``tasks`` imports this module's callers, not the other way round.
DELIVER_EVENT_TASK = "django_pjpixel.tasks.deliver_event"


class PublishTimeout(Exception):
    """A message was not queued for publishing: the broker is blocked, or the queue is full."""


def enqueue(event: ConversionEvent) -> bool:
    """Queue ``deliver_event(event.pk)``; never raises. False: left to ``deliver_due``.

    Runs from ``transaction.on_commit`` in the checkout, so it does not wait
    for the broker: the row's key goes to this process's publisher thread,
    which publishes it (kombu retries ``PUBLISH_RETRIES`` times, at once,
    then 0.2 s apart). The committed row is the durable record, so a message
    that is never published (the broker is down, the process ends) costs
    only time: ``deliver_due`` sends the row. While a publish has been
    blocked for longer than ``PUBLISH_TIMEOUT`` seconds (a Redis broker that
    accepts connections but never answers), or ``PUBLISH_QUEUE_SIZE`` keys
    are waiting, new rows are left to ``deliver_due`` at once. Run eagerly
    (``CELERY_TASK_ALWAYS_EAGER``) the task runs right here, in the caller's
    thread. The message carries the row's key only.
    """
    try:
        if current_app.conf.task_always_eager:
            _publish(event.pk)
        else:
            _publisher.submit(event.pk, event.order_id)
    except Exception as err:
        _publish_failed(event.pk, event.order_id, err)
        return False
    return True


def flush_publishes(timeout: float | None = None) -> bool:
    """Wait until this process has published what it queued; False if ``timeout`` ran out.

    Called at interpreter exit with ``PUBLISH_TIMEOUT``. Tests that look at
    the broker right after a commit call it first.
    """
    return _publisher.flush(timeout)


def _publish(event_pk: int) -> None:
    # By name: the task module sits above this one (apps.ready() imports it).
    deliver_event = current_app.tasks[DELIVER_EVENT_TASK]
    retries = pjpixel_settings.PUBLISH_RETRIES
    deliver_event.apply_async(
        args=(event_pk,),
        retry=retries > 0,
        retry_policy={
            "max_retries": retries,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )


def _publish_failed(event_pk: int, order_id: str, err: Exception) -> None:
    logger.warning(
        "pjpixel: could not queue order %s (%s: %s); deliver_due will send it",
        order_id,
        type(err).__name__,
        err,
        extra={"pjpixel_event": event_pk, "order_id": order_id, "status": str(Status.PENDING)},
    )


class _Publisher:
    """One daemon thread per process publishing ``deliver_event`` off the request path.

    Started on first use, and again in a forked child (a pre-forking server
    that imported the shop before forking). Keys still queued at interpreter
    exit get ``PUBLISH_TIMEOUT`` seconds to go out; what does not is sent by
    ``deliver_due``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, str]] | None = None
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None

    def submit(self, event_pk: int, order_id: str) -> None:
        keys = self._started()
        busy_since = self._busy_since
        timeout = pjpixel_settings.PUBLISH_TIMEOUT
        if busy_since is not None and time.monotonic() - busy_since > timeout:
            raise PublishTimeout(f"the broker has not taken a message for over {timeout:g} s")
        try:
            keys.put_nowait((event_pk, order_id))
        except queue.Full:
            raise PublishTimeout(
                f"{keys.maxsize} events are already waiting to be published"
            ) from None

    def flush(self, timeout: float | None) -> bool:
        keys = self._queue
        if keys is None or not keys.unfinished_tasks:
            return True
        if timeout is None:
            timeout = pjpixel_settings.PUBLISH_TIMEOUT
        deadline = time.monotonic() + timeout
        with keys.all_tasks_done:
            while keys.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                keys.all_tasks_done.wait(left)
        return True

    def forget(self) -> None:
        """In a forked child: the parent's thread and queue are not ours."""
        self._lock = threading.Lock()
        self._queue = self._thread = self._busy_since = None

    def _started(self) -> queue.Queue[tuple[int, str]]:
        with self._lock:
            if self._queue is None or self._thread is None or not self._thread.is_alive():
                self._queue = queue.Queue(maxsize=pjpixel_settings.PUBLISH_QUEUE_SIZE)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="pjpixel-publisher", daemon=True
                )
                self._thread.start()
            return self._queue

    def _run(self, keys: queue.Queue[tuple[int, str]]) -> None:
        while True:
            event_pk, order_id = keys.get()
            if keys is self._queue:  # not a thread left behind by forget()
                self._busy_since = time.monotonic()
            try:
                _publish(event_pk)
            except Exception as err:
                _publish_failed(event_pk, order_id, err)
            finally:
                if keys is self._queue:
                    self._busy_since = None
                if keys.empty():
                    connections.close_all()  # any a shop's publish hook opened in this thread
                keys.task_done()


_publisher = _Publisher()
if hasattr(os, "register_at_fork"):  # POSIX; Windows does not fork
    os.register_at_fork(after_in_child=_publisher.forget)
atexit.register(flush_publishes)
