"""The Prisjakt API emulator served over loopback HTTP from a process of its own.

A process of its own so that the emulator's Python does not share the
benchmarked process's interpreter lock, as the real API would not. The
benchmark drives it through a pipe: ``set_latency``, ``reset``, ``stats``,
``configure`` (its listing's page size, unstable pages) and ``seed`` (events
stored without a request, for the sync benchmark).
``EmulatorServer`` keeps HTTP/1.1 connections alive, as the real API's front
end does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import Counter
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer


def _serve(
    conn: Connection,
    pixel_id: str,
    client_id: str,
    secret: str,
    latency: float,
    rate_limit: int,
) -> None:
    emulator = PrisjaktEmulator(
        base_url="http://127.0.0.1/click-conversion",
        token_url=None,
        pixels=[pixel_id],
        clients={client_id: {"secret": secret, "roles": ["event_publisher", "shop_user"]}},
        rate_limit=rate_limit,
        latency=latency,
    )
    with EmulatorServer(emulator, "127.0.0.1", 0) as server:
        conn.send(server.url)
        while True:
            command, argument = conn.recv()
            if command == "stop":
                break
            if command == "set_latency":
                emulator.latency = float(argument)
                conn.send(None)
            elif command == "reset":
                emulator.reset()
                conn.send(None)
            elif command == "configure":
                for name, value in dict(argument).items():
                    setattr(emulator, name, value)
                conn.send(None)
            elif command == "seed":
                conn.send(_seed(emulator, pixel_id, *argument))
            elif command == "stats":
                requests = emulator.requests
                pages = Counter(
                    tuple(sorted(r.query.items())) for r in requests if r.method == "GET"
                )
                conn.send(
                    {
                        "requests": len(requests),
                        "by_method": dict(Counter(r.method for r in requests)),
                        "by_status": dict(Counter(str(r.status) for r in requests)),
                        "events": len(emulator.events),
                        "most_fetches_of_one_page": max(pages.values(), default=0),
                    }
                )
    conn.close()


def _seed(emulator: PrisjaktEmulator, pixel_id: str, count: int, days: float) -> int:
    """``count`` purchases spread evenly over the last ``days`` days, newest a minute ago."""
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    step = timedelta(days=days) / max(count, 1)
    for index in range(count):
        emulator.add_event(
            pixel_id,
            event_time=now - index * step,
            external_event_id=f"sync-{index}",
            amount=100 + index % 900,
            number_of_items=1 + index % 4,
            signed_click_id=f"239cd31f-9d43-4cb4-b8dc-{index:012x}_1b05fa7f1c34d125",
        )
    return len(emulator.events)


class EmulatorProcess:
    """``with EmulatorProcess(...) as api:`` serves the emulator; ``api.url`` is its base URL."""

    def __init__(
        self,
        *,
        pixel_id: str,
        client_id: str,
        secret: str,
        latency: float = 0.0,
        rate_limit: int = 10_000,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, pixel_id, client_id, secret, latency, rate_limit),
            name="pjpixel-bench-emulator",
            daemon=True,
        )
        self._child = child
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        self._process.start()
        self._child.close()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the emulator process did not start within 60 s")
        self.url = str(self._conn.recv())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("stop", None))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def _ask(self, command: str, argument: object = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def set_latency(self, seconds: float) -> None:
        self._ask("set_latency", seconds)

    def reset(self) -> None:
        self._ask("reset")

    def configure(self, **settings: object) -> None:
        """Set attributes of the emulator (``page_size``, ``unstable_pages``, ...)."""
        self._ask("configure", settings)

    def seed(self, count: int, days: float) -> int:
        """Store ``count`` events over the last ``days`` days; the events it now holds."""
        return int(self._ask("seed", (count, days)))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ask("stats")
        return result
