"""Helpers shared by the test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_pjpixel.api.payloads import purchase_payload

if TYPE_CHECKING:
    from django_pjpixel.models import ConversionEvent, PrisjaktSync

PIXEL_ID = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def earlier_today(count: int = 1, step: timedelta = timedelta(minutes=1)) -> list[datetime]:
    """``count`` distinct times ``step`` apart, the latest now, all in today's local day.

    Just after local midnight the step shrinks, so that "today" in a test stays
    today's whole range instead of reaching into yesterday.
    """
    from django.utils import timezone

    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    step = min(step, (now - midnight) / (count + 1))
    return [now - step * index for index in range(count)]


def connect(receivers: list[Any], signal: Any, receiver: Any) -> None:
    """Connect ``receiver`` for this test; the ``receivers`` fixture disconnects it."""
    signal.connect(receiver, weak=False)
    receivers.append((signal, receiver))


def make_event(order_id: str = "order-1", **fields: Any) -> ConversionEvent:
    """A pending purchase of 1,234 SEK, 2 items, with a click: ``fields`` override."""
    from django.utils import timezone

    from django_pjpixel.models import ConversionEvent

    values: dict[str, Any] = {
        "pixel_id": PIXEL_ID,
        "order_id": order_id,
        "event_time": timezone.now(),
        "amount": Decimal("1234.00"),
        "currency": "SEK",
        "number_of_items": 2,
        "click_id": CLICK,
        **fields,
    }
    return ConversionEvent.objects.create(**values)


def claim_due_one(**fields: Any) -> list[ConversionEvent]:
    """A new row (``make_event(**fields)``), claimed: a list of that one leased row."""
    from django_pjpixel.sending.outbox import claim_due

    make_event(**fields)
    claimed = claim_due(1)
    assert len(claimed) == 1
    return claimed


def seed_payload(**overrides: Any) -> dict[str, Any]:
    """The seed's create-event body (order-10045, 1234 SEK, 4 items); ``overrides`` change it."""
    kwargs: dict[str, Any] = {
        "external_event_id": "order-10045",
        "amount": 1234,
        "currency": "SEK",
        "number_of_items": 4,
        "event_time": datetime(
            2025, 3, 13, 11, 45, 46, 987654, tzinfo=ZoneInfo("Europe/Stockholm")
        ),
        "signed_click_id": CLICK,
    }
    kwargs.update(overrides)
    return purchase_payload(**kwargs)


def body_of(call: Any) -> bytes:
    """The body a ``responses`` call was sent with."""
    body = call.request.body
    assert isinstance(body, bytes)
    return body


def forked(child: Callable[[], object]) -> Callable[[float], str]:
    """Run ``child`` in a child of this process made by ``os.fork()``, as a pre-forking server does.

    Returns ``wait(timeout)``: the child's traceback, ``""`` when it returned.
    The child leaves by ``os._exit`` (no pytest teardown, no atexit); one that
    has not finished after ``timeout`` seconds is killed and reported as hung.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock: the
        # very case these tests make, as gunicorn --preload and Celery's prefork do.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            try:
                child()
                code = 0
            except BaseException:
                os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)

    def wait(timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(read_end)
                return f"the child (pid {pid}) hung for {timeout:g} s and was killed"
            time.sleep(0.02)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0 and not report:
            report = f"the child (pid {pid}) exited with status {status}"
        return report

    return wait


def api_settings(api_url: str, **extra: Any) -> dict[str, Any]:
    """``PJPIXEL`` for the test client (secret ``s3cr3t-never-shown``) against ``api_url``."""
    return {
        "PIXEL_ID": PIXEL_ID,
        "CLIENT_ID": "test-client",
        "CLIENT_SECRET": "s3cr3t-never-shown",
        "API_URL": api_url,
        **extra,
    }


def complete_sync(ago: timedelta | None = None, pixel_id: str = PIXEL_ID) -> PrisjaktSync:
    """The record of a complete sync of the last 7 days that finished ``ago`` (30 minutes),
    for the pixel ``pixel_id`` (the test pixel's)."""
    from datetime import timedelta

    from django.utils import timezone

    from django_pjpixel.models import PrisjaktSync

    when = timezone.now() - (ago if ago is not None else timedelta(minutes=30))
    run: PrisjaktSync = PrisjaktSync.objects.create(
        pixel_id=pixel_id,
        start=when - timedelta(days=7),
        end=when,
        started_at=when,
        finished_at=when,
        complete=True,
    )
    return run


# Three markets, each with a pixel and credentials of its own (tests of PJPIXEL["PIXELS"]).
MARKETS: dict[str, dict[str, str]] = {
    "se": {
        "PIXEL_ID": "11111111-1111-4111-8111-111111111111",
        "CLIENT_ID": "shop-se",
        "CLIENT_SECRET": "se-s3cr3t-never-shown",
    },
    "no": {
        "PIXEL_ID": "22222222-2222-4222-8222-222222222222",
        "CLIENT_ID": "shop-no",
        "CLIENT_SECRET": "no-s3cr3t-never-shown",
    },
    "dk": {
        "PIXEL_ID": "33333333-3333-4333-8333-333333333333",
        "CLIENT_ID": "shop-dk",
        "CLIENT_SECRET": "dk-s3cr3t-never-shown",
    },
}


def markets(*keys: str) -> dict[str, dict[str, str]]:
    """``PJPIXEL["PIXELS"]`` for these markets of ``MARKETS`` (fresh copies)."""
    return {key: dict(MARKETS[key]) for key in keys}


def check_command_output(expected: list[str]) -> str:
    """``manage.py check``'s report under the current settings; it fails when an error
    (``E...``) is among the ``expected`` ids, and only then."""
    stdout, stderr = StringIO(), StringIO()
    if any(code.startswith("E") for code in expected):
        with pytest.raises(SystemCheckError) as excinfo:
            call_command("check", stdout=stdout, stderr=stderr)
        return str(excinfo.value)
    call_command("check", stdout=stdout, stderr=stderr)
    return stderr.getvalue()
