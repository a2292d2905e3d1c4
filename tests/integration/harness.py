"""Real processes for the integration tests: a Celery worker, a private Redis, a broker swap.

The worker is a subprocess of ``.venv``'s ``celery`` on its own queue, reading
the pytest-django test database, the emulator's URL and extra ``PJPIXEL``
settings from environment hooks in ``tests/settings.py``. Everything here is
started and stopped by the id of the process it started, never by name.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kombu
from celery import Celery

from django_pjpixel.testing.emulator import EmulatorResponse, PrisjaktEmulator
from tests.celery_app import reset_publisher
from tests.services import port_open

ROOT = Path(__file__).resolve().parents[2]
CELERY_BIN = Path(sys.executable).with_name("celery")

T = TypeVar("T")


def free_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class CeleryWorker:
    """``celery -A tests.celery_app worker`` as a subprocess, logging to a file.

    ``pool`` is Celery's ``--pool`` (``threads``, ``prefork``, ``solo``);
    ``app`` the module of the Celery app, whose settings ``env`` may name.
    """

    def __init__(
        self,
        *,
        broker_url: str,
        queue: str,
        log_path: Path,
        env: Mapping[str, str],
        concurrency: int = 4,
        pool: str = "threads",
        app: str = "tests.celery_app",
    ) -> None:
        self.broker_url = broker_url
        self.queue = queue
        self.log_path = log_path
        self.hostname = f"{unique_name('it')}@%h"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CELERY_BROKER_URL": broker_url,
            "PJPIXEL_TEST_CELERY_QUEUE": queue,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.concurrency = concurrency
        self.pool = pool
        self.app = app
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout: float = 30.0) -> CeleryWorker:
        self.launch()
        return self.ready(ready_timeout)

    def launch(self) -> None:
        """Start the process; ``ready()`` waits until it consumes."""
        purge_queue(self.broker_url, self.queue)
        argv = [
            str(CELERY_BIN),
            "-A",
            self.app,
            "worker",
            "--pool",
            self.pool,
            "--concurrency",
            str(self.concurrency),
            "-Q",
            self.queue,
            "-n",
            self.hostname,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self._launched = time.monotonic()

    def ready(self, ready_timeout: float = 30.0) -> CeleryWorker:
        assert self.proc is not None
        started = self._launched
        deadline = started + ready_timeout
        while " ready." not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Celery worker was not ready in time:\n{self.log()}")
            time.sleep(0.05)
        self.startup_seconds = time.monotonic() - started
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as on an OOM kill or a lost machine."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown (SIGTERM); SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        else:
            self.proc.wait()


def worker_env(*, db_name: str, api_url: str, pjpixel: Mapping[str, Any]) -> dict[str, str]:
    return {
        "PJPIXEL_TEST_DB_NAME": db_name,
        "PJPIXEL_TEST_API_URL": api_url,
        "PJPIXEL_TEST_SETTINGS": json.dumps(dict(pjpixel)),
    }


def _celery_queue(name: str) -> kombu.Queue:
    # The shape Celery gives its default queue: a direct exchange of the same name.
    return kombu.Queue(name, kombu.Exchange(name, type="direct"), routing_key=name)


def purge_queue(broker_url: str, queue: str) -> int:
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        bound = _celery_queue(queue)(conn.default_channel)
        bound.declare()
        return int(bound.purge() or 0)


def delete_queue(broker_url: str, queue: str) -> None:
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        _celery_queue(queue)(conn.default_channel).delete()


class RedisServer:
    """A private ``redis-server`` on a free loopback port: safe to stop and restart."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(
            lambda: port_open("127.0.0.1", self.port, timeout=0.5),
            timeout=10,
            what=f"redis-server :{self.port}",
        )
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        wait_until(
            lambda: not port_open("127.0.0.1", self.port, timeout=0.5),
            timeout=10,
            what="the port to close",
        )


@contextmanager
def publishing_to(app: Celery, broker_url: str, queue: str) -> Iterator[None]:
    """Publish from this (the test) process to ``broker_url``/``queue``, then restore."""
    names = ("broker_url", "broker_write_url", "task_default_queue")
    saved = {name: app.conf[name] for name in names}
    app.conf.update(broker_url=broker_url, broker_write_url=None, task_default_queue=queue)
    reset_publisher(app)
    try:
        yield
    finally:
        app.conf.update(saved)
        reset_publisher(app)


def click_id() -> str:
    """A click id of the observed shape: a UUID, ``_`` and 16 hex digits."""
    return f"{uuid.uuid4()}_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Call:
    """One event-creating request as the emulator received it."""

    method: str
    status: int | None
    ids: tuple[str, ...]  # the external_event_id of each event in the body
    at: float  # time.monotonic() on receipt
    wall: float  # time.time() on receipt


class RecordingEmulator(PrisjaktEmulator):
    """The emulator, also logging when each ``POST``/``PATCH`` of events arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()

    def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> EmulatorResponse:
        at, wall = time.monotonic(), time.time()
        response = super().handle(method, url, headers, body)
        if method.upper() in ("POST", "PATCH") and url.rstrip("/").endswith("/events"):
            call = Call(method.upper(), response.status, _external_ids(body), at, wall)
            with self._calls_lock:
                self._calls.append(call)
        return response

    @property
    def calls(self) -> list[Call]:
        with self._calls_lock:
            return list(self._calls)


def _external_ids(body: bytes | None) -> tuple[str, ...]:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return ()
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        payload = payload["events"]
    items = payload if isinstance(payload, list) else [payload]
    return tuple(
        str(item["external_event_id"])
        for item in items
        if isinstance(item, dict) and item.get("external_event_id") is not None
    )


def send_log(emulator: RecordingEmulator) -> list[Call]:
    return emulator.calls


def event_counts(emulator: PrisjaktEmulator) -> dict[str, int]:
    """How many events the API holds per external_event_id."""
    return dict(Counter(str(event["external_event_id"]) for event in emulator.events))


def times_sent(emulator: RecordingEmulator) -> Counter[str]:
    """How many accepted requests (2xx) carried each external_event_id."""
    return Counter(
        ident
        for call in emulator.calls
        if call.status is not None and 200 <= call.status < 300
        for ident in call.ids
    )
