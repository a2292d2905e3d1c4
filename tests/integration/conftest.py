"""Fixtures of the integration tests: the emulator over HTTP and real Celery workers.

Every test gets its own emulator, its own HTTP server on loopback and its own
broker queue, so a message left over by an earlier test (a retry with a
countdown, a killed worker's task) can never reach this test's worker. Workers
read the test database that pytest-django created; the tests use transactional
databases so the worker sees committed rows.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from kombu.exceptions import OperationalError

from django_pjpixel.testing.server import EmulatorServer
from tests import services
from tests.celery_app import app as celery_app
from tests.integration.harness import (
    CeleryWorker,
    RecordingEmulator,
    delete_queue,
    publishing_to,
    unique_name,
    worker_env,
)

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings

# Fast schedules so retries and expired leases happen within a test's seconds.
FAST_SETTINGS: dict[str, Any] = {
    "RETRY_BASE_DELAY": 0.5,
    "RETRY_MAX_DELAY": 2.0,
    "LEASE_SECONDS": 30.0,
    "MAX_COUNTDOWN": 60.0,
    "PUBLISH_RETRIES": 1,
    "PUBLISH_TIMEOUT": 1.0,
}

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(report.failed for report in reports.values())


@pytest.fixture
def emulator() -> RecordingEmulator:
    """The API as the test settings' pixel and client know it; 503s ask for a 1 s wait."""
    conf = django_settings.PJPIXEL
    return RecordingEmulator(
        pixels=[conf["PIXEL_ID"]],
        clients={
            conf["CLIENT_ID"]: {
                "secret": conf["CLIENT_SECRET"],
                "roles": ["event_publisher", "shop_user"],
            }
        },
        scripted_retry_after=1,
    )


@pytest.fixture
def emulator_server(emulator: RecordingEmulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def pjpixel_settings(settings: Settings, emulator_server: EmulatorServer) -> dict[str, Any]:
    """This process's PJPIXEL: the emulator's URL and the fast schedules."""
    value = {**settings.PJPIXEL, **FAST_SETTINGS, "API_URL": emulator_server.url}
    settings.PJPIXEL = value
    return value


class Workers:
    """Starts Celery workers for one test, all consuming this test's queue."""

    def __init__(
        self, *, broker_url: str, queue: str, api_url: str, pjpixel: dict[str, Any], logs: Path
    ) -> None:
        self.broker_url = broker_url
        self.queue = queue
        self.api_url = api_url
        self.pjpixel = pjpixel
        self.logs = logs
        self.started: list[CeleryWorker] = []

    def start(
        self,
        *,
        concurrency: int = 4,
        broker_url: str | None = None,
        **pjpixel: Any,
    ) -> CeleryWorker:
        settings = {
            key: value for key, value in self.pjpixel.items() if key in FAST_SETTINGS
        } | pjpixel
        worker = CeleryWorker(
            broker_url=broker_url or self.broker_url,
            queue=self.queue,
            log_path=self.logs / f"worker-{len(self.started) + 1}.log",
            env=worker_env(
                db_name=str(connection.settings_dict["NAME"]),
                api_url=self.api_url,
                pjpixel=settings,
            ),
            concurrency=concurrency,
        )
        self.started.append(worker)
        worker.start()
        print(f"\n[harness] worker pid {worker.pid} ready in {worker.startup_seconds:.2f} s")
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            # A threads-pool worker on RabbitMQ takes ~9 s to shut down warm; nothing
            # is in flight by then, so it gets a short grace before SIGKILL.
            worker.stop(timeout=3.0 if worker.broker_url.startswith("amqp") else 10.0)


@pytest.fixture
def workers(
    request: pytest.FixtureRequest,
    transactional_db: None,
    pjpixel_settings: dict[str, Any],
    emulator_server: EmulatorServer,
    tmp_path: Path,
) -> Iterator[Workers]:
    """Real Celery workers on the shared Redis, on a queue of this test's own.

    This process publishes to the same queue while the test runs. Workers stop
    before the database is flushed; their logs are printed when the test fails.
    """
    services.require_redis()
    services.require_postgres()
    queue = unique_name("pjpixel-it")
    pool = Workers(
        broker_url=services.REDIS_URL,
        queue=queue,
        api_url=emulator_server.url,
        pjpixel=pjpixel_settings,
        logs=tmp_path,
    )
    try:
        with publishing_to(celery_app, services.REDIS_URL, queue):
            yield pool
    finally:
        pool.stop_all()
        if _failed(request):
            for worker in pool.started:
                print(f"\n===== log of worker pid {worker.pid} ({worker.log_path}) =====")
                print(worker.log()[-20_000:])
        for broker_url in {worker.broker_url for worker in pool.started}:
            parts = urlsplit(broker_url)
            if not services.port_open(parts.hostname or "127.0.0.1", parts.port or 0, timeout=0.5):
                continue  # a private broker, stopped with its queue
            with suppress(OSError, OperationalError):
                delete_queue(broker_url, queue)
