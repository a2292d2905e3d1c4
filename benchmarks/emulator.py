"""The Prisjakt API emulator served over loopback HTTP from a process of its own.

A process of its own so that the emulator's Python does not share the
benchmarked process's interpreter lock, as the real API would not. The
benchmark drives it through a pipe: ``set_latency``, ``reset``, ``stats``.

``keep_alive=True`` serves the same emulator (``EmulatorServer``, its
handler taught HTTP/1.1 persistent connections): the stock server speaks
HTTP/1.0 and closes every connection, so no client can reuse one there.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import Counter
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler

from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer

MAX_REQUEST_LINE = 65536


class _ServerHandler11(ServerHandler):
    http_version = "1.1"


class KeepAliveHandler(WSGIRequestHandler):
    """``WSGIRequestHandler`` answering any number of HTTP/1.1 requests per connection."""

    protocol_version = "HTTP/1.1"
    # wsgiref writes the head and the body apart: with Nagle's algorithm the body
    # would wait for the client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self) -> None:
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if not self.raw_requestline or len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        handler = _ServerHandler11(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]  # a socket writer, as in WSGIRequestHandler
            self.get_stderr(),
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self  # type: ignore[attr-defined]  # as WSGIRequestHandler does
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(
    conn: Connection,
    pixel_id: str,
    client_id: str,
    secret: str,
    latency: float,
    rate_limit: int,
    keep_alive: bool,
) -> None:
    emulator = PrisjaktEmulator(
        base_url="http://127.0.0.1/click-conversion",
        token_url=None,
        pixels=[pixel_id],
        clients={client_id: {"secret": secret, "roles": ["event_publisher", "shop_user"]}},
        rate_limit=rate_limit,
        latency=latency,
    )
    server = EmulatorServer(emulator, "127.0.0.1", 0)
    if keep_alive:
        server.httpd.RequestHandlerClass = KeepAliveHandler
    with server:
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
            elif command == "stats":
                requests = emulator.requests
                conn.send(
                    {
                        "requests": len(requests),
                        "by_method": dict(Counter(r.method for r in requests)),
                        "by_status": dict(Counter(str(r.status) for r in requests)),
                        "events": len(emulator.events),
                    }
                )
    conn.close()


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
        keep_alive: bool = False,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, pixel_id, client_id, secret, latency, rate_limit, keep_alive),
            name="pjpixel-bench-emulator",
            daemon=True,
        )
        self._child = child
        self.keep_alive = keep_alive
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

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ask("stats")
        return result
