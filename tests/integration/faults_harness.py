"""Helpers of the fault suite (``test_faults.py``) beyond ``harness.py``.

``FaultEmulator`` is the recording emulator with two more knobs: the
``Retry-After`` value of the next 429/503 answers (a number, an HTTP date or
garbage), and a reseed of its random faults. ``ledger_figures`` is the check
every fault scenario ends with: every paid event is ``sent``, ``duplicate``
or ``failed`` (none lost), and Prisjakt holds each order once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from django_pjpixel import track_purchase
from django_pjpixel.models import FINAL_STATUSES, ConversionEvent
from django_pjpixel.testing.emulator import EmulatorResponse
from tests.integration.harness import RecordingEmulator, click_id, event_counts, times_sent

Status = ConversionEvent.Status
DELIVERED = (Status.SENT, Status.DUPLICATE, Status.FAILED)


class FaultEmulator(RecordingEmulator):
    """The recording emulator; ``retry_after(...)`` sets the next 429/503 ``Retry-After``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._retry_after: list[str] = []
        self._retry_after_lock = threading.Lock()

    def retry_after(self, *values: str) -> None:
        with self._retry_after_lock:
            self._retry_after.extend(values)

    def reseed(self, seed: int) -> None:
        """Restart the random faults (``fail_ratio``) from ``seed``."""
        self._random = random.Random(seed)  # fault injection, not security

    def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> EmulatorResponse:
        response = super().handle(method, url, headers, body)
        if response.status in (429, 503) and "Retry-After" in response.headers:
            with self._retry_after_lock:
                value = self._retry_after.pop(0) if self._retry_after else None
            if value is not None:
                response = replace(response, headers={**response.headers, "Retry-After": value})
        return response


def due_rows(count: int, prefix: str) -> list[ConversionEvent]:
    """``count`` purchases due now, as a backlog leaves them."""
    now = timezone.now()
    return ConversionEvent.objects.bulk_create(
        ConversionEvent(
            pixel_id=settings.PJPIXEL["PIXEL_ID"],
            order_id=f"{prefix}-{index:05d}",
            event_time=now - timedelta(minutes=5),
            amount=Decimal("100.00") + index,
            currency="SEK",
            number_of_items=1 + index % 5,
            click_id=click_id(),
            click_captured_at=now - timedelta(hours=1),
            status=Status.PENDING,
            next_attempt_at=now - timedelta(seconds=1),
        )
        for index in range(count)
    )


def pay(order_id: str) -> float:
    """One checkout reporting its purchase; its duration in seconds."""
    started = time.monotonic()
    with transaction.atomic():
        track_purchase(
            order_id=order_id,
            amount=Decimal("499.00"),
            currency="SEK",
            number_of_items=1,
            signed_click_id=click_id(),
        )
    return time.monotonic() - started


def statuses(prefix: str) -> dict[str, int]:
    rows = ConversionEvent.objects.filter(order_id__startswith=prefix)
    return dict(Counter(rows.values_list("status", flat=True)))


def all_final(prefix: str, expected: int) -> bool:
    counts = statuses(prefix)
    return sum(counts.values()) == expected and set(counts) <= FINAL_STATUSES


def drive(step: Callable[[], object], done: Callable[[], bool], *, timeout: float) -> int:
    """Call ``step`` until ``done()``; fail after ``timeout`` seconds. Returns the calls made."""
    deadline = time.monotonic() + timeout
    calls = 0
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not all final after {timeout:.0f} s and {calls} calls")
        step()
        calls += 1
    return calls


def ledger_figures(
    name: str, emulator: RecordingEmulator, prefix: str, paid: int, **extra: Any
) -> dict[str, Any]:
    """Assert none lost and none counted twice; print the figures of scenario ``name``."""
    counts = statuses(prefix)
    at_api = {k: n for k, n in event_counts(emulator).items() if k.startswith(prefix)}
    events_at_api = sum(at_api.values())
    sent_twice = sum(1 for n in times_sent(emulator).values() if n > 1)
    calls = emulator.calls
    figures: dict[str, Any] = {
        "paid": paid,
        "sent": counts.get(Status.SENT, 0),
        "duplicate": counts.get(Status.DUPLICATE, 0),
        "failed": counts.get(Status.FAILED, 0),
        "other": {k: n for k, n in counts.items() if k not in DELIVERED},
        "events_at_api": events_at_api,
        "distinct_at_api": len(at_api),
        "double_counted": events_at_api - len(at_api),
        "resent_but_counted_once": sent_twice,
        "calls": dict(Counter(f"{c.method} {c.status}" for c in calls)),
        **extra,
    }
    print(f"\n[faults: {name}] " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    delivered = figures["sent"] + figures["duplicate"] + figures["failed"]
    assert delivered == paid, f"lost: {paid - delivered} ({counts})"
    assert figures["double_counted"] == 0
    assert figures["distinct_at_api"] == figures["sent"] + figures["duplicate"]
    return figures
