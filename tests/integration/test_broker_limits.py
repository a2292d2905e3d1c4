"""A long ``Retry-After`` on RabbitMQ: no task waits in the worker past the broker's patience.

A Celery task retried with a countdown is a message the worker receives at
once and holds unacknowledged until its ETA. RabbitMQ closes the channel of a
consumer that holds a delivery longer than ``consumer_timeout`` (30 minutes
by default), and the worker stops consuming. Here a private RabbitMQ node
enforces a consumer timeout of a few seconds, which stands for the default
30 minutes: what must not happen within them in the test must not happen
within 30 minutes in a shop. The worker runs with the default
``PJPIXEL["MAX_COUNTDOWN"]``; the API asks for a wait far beyond it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from django_pjpixel import track_purchase
from django_pjpixel.conf import DEFAULTS
from django_pjpixel.models import ConversionEvent
from tests.celery_app import app as celery_app
from tests.integration.brokers import RabbitMQServer
from tests.integration.conftest import Workers
from tests.integration.harness import RecordingEmulator, click_id, publishing_to, wait_until

pytestmark = [
    pytest.mark.services,
    pytest.mark.celery_worker,
    pytest.mark.postgres,
    pytest.mark.slow,
]

Status = ConversionEvent.Status
CONSUMER_TIMEOUT_MS = 3000
# 40 minutes: past RabbitMQ's default consumer timeout (30 min), below Redis' visibility (1 h).
RETRY_AFTER = 2400


@pytest.fixture
def private_rabbitmq(tmp_path: Path) -> Iterator[RabbitMQServer]:
    """A RabbitMQ node of this test's own with a short consumer timeout; the shared one
    is never touched. Asked for before ``workers``, so the workers stop first."""
    server = RabbitMQServer(tmp_path / "rabbitmq", consumer_timeout_ms=CONSUMER_TIMEOUT_MS)
    try:
        server.start()
        yield server
    except BaseException:
        print(f"\n===== log of the private RabbitMQ node =====\n{server.log()[-10_000:]}")
        raise
    finally:
        server.stop()


def pay(order_id: str) -> None:
    with transaction.atomic():
        Group.objects.create(name=f"order {order_id}")  # stands in for the shop's order
        track_purchase(
            order_id=order_id,
            amount=Decimal("990"),
            currency="SEK",
            number_of_items=1,
            signed_click_id=click_id(),
        )


def row(order_id: str) -> ConversionEvent:
    return ConversionEvent.objects.get(order_id=order_id)


def test_a_retry_after_past_the_consumer_timeout_is_left_to_deliver_due(
    private_rabbitmq: RabbitMQServer, workers: Workers, emulator: RecordingEmulator
) -> None:
    emulator.scripted_retry_after = RETRY_AFTER
    emulator.script([503], method="POST")
    worker = workers.start(broker_url=private_rabbitmq.url, MAX_COUNTDOWN=DEFAULTS["MAX_COUNTDOWN"])
    with publishing_to(celery_app, private_rabbitmq.url, workers.queue):
        pay("busy-1")
        waiting = wait_until(
            lambda: (r := row("busy-1")).attempts == 1 and r.status == Status.PENDING and r,
            timeout=30,
            what="the first attempt to be answered 503",
        )
        # Past the consumer timeout and a few of the broker's checks of it.
        time.sleep(CONSUMER_TIMEOUT_MS / 1000 * 2)
        unacked = private_rabbitmq.unacknowledged(workers.queue)
        pay("after-1")
        wait_until(
            lambda: row("after-1").status == Status.SENT,
            timeout=30,
            what="the worker to deliver the next order",
        )

    # The row keeps the API's wait; deliver_due sends it then.
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at >= timezone.now() + timedelta(seconds=RETRY_AFTER - 120)
    assert row("busy-1").status == Status.PENDING
    # Nothing was held for it, and the broker never closed the worker's channel.
    assert unacked == 0
    assert "PRECONDITION_FAILED" not in worker.log()
    assert worker.alive()
