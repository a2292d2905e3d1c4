"""The emulator's HTTP plumbing: its WSGI app, and a threaded HTTP/1.1 server that keeps
connections alive between requests (``server.EmulatorServer`` runs them).

Faults: a ``"timeout"`` step holds the answer for ``timeout_sleep`` seconds
(then answers 504); a ``"reset"`` step resets the TCP connection; latency is
slept before answering. All sleeps end early when the server stops. The admin
path ``/_emulator`` (``admin_path.py``) and the stand-in browser script
(``browser_script.py``) are answered here too.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer
from wsgiref.util import request_uri

from django_pjpixel.testing.admin_path import ADMIN_PREFIX, answer_admin
from django_pjpixel.testing.browser_script import HEADERS, SCRIPT_PATH, standin_script
from django_pjpixel.testing.emulator import PrisjaktEmulator

RESET_KEY = "django_pjpixel.emulator.reset_connection"
MAX_REQUEST_LINE = 65536

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_LENGTH"):  # wsgiref fills in a CONTENT_TYPE of its own
        headers["content-length"] = str(environ["CONTENT_LENGTH"])
        headers["content-type"] = str(environ.get("CONTENT_TYPE", ""))
    return headers


def make_wsgi_app(
    emulator: PrisjaktEmulator,
    *,
    timeout_sleep: float = 30.0,
    wait: Callable[[float], object] | None = None,
) -> WSGIApp:
    """A WSGI app answering with ``emulator``; ``wait`` sleeps (default ``emulator.sleep``)."""

    def sleep(seconds: float) -> None:
        (wait or emulator.sleep)(seconds)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        path = environ.get("PATH_INFO", "")
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            status, headers, payload = answer_admin(emulator, environ["REQUEST_METHOD"], path, body)
        elif path == SCRIPT_PATH:
            status, headers, payload = 200, HEADERS, standin_script()
        else:
            answer = emulator.handle(
                environ["REQUEST_METHOD"], request_uri(environ), _request_headers(environ), body
            )
            if answer.fault == "reset" and RESET_KEY in environ:
                environ[RESET_KEY]()
                raise ConnectionResetError("emulated connection reset")
            if answer.fault in ("timeout", "connect_timeout"):
                sleep(timeout_sleep)
            elif answer.delay > 0:
                sleep(answer.delay)
            status, headers, payload = answer.status, answer.headers, answer.body
        start_response(_status_line(status), list(headers.items()))
        return [payload]

    return app


class _ServerHandler11(ServerHandler):
    http_version = "1.1"

    def cleanup_headers(self) -> None:
        """Say ``Connection: close`` when the connection ends after this answer.

        Without it an HTTP/1.1 client takes the connection for reusable and may
        send its next request into a socket that is being closed.
        """
        super().cleanup_headers()
        handler: Handler = self.request_handler  # type: ignore[attr-defined]
        if handler.close_connection or handler.server.stopping:
            self.headers["Connection"] = "close"  # type: ignore[attr-defined]  # set by start_response


class Handler(WSGIRequestHandler):
    """``WSGIRequestHandler`` that keeps HTTP/1.1 connections open for further requests.

    A client's ``Connection: close`` (or HTTP/1.0) closes it after the answer,
    as do a reset fault, an idle ``IDLE_TIMEOUT``, and the server stopping.
    """

    protocol_version = "HTTP/1.1"
    # wsgiref writes the head and the body apart: with Nagle's algorithm the body
    # would wait for the client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    IDLE_TIMEOUT = 30.0
    server: ThreadingWSGIServer
    busy = False  # between reading a request and finishing its answer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.IDLE_TIMEOUT)
        self.server.track(self, open=True)

    def finish(self) -> None:
        self.server.track(self, open=False)
        with contextlib.suppress(OSError):  # the peer, a reset fault or stop() closed it
            super().finish()

    def handle(self) -> None:
        self.close_connection = True
        self._handle_one()
        while not self.close_connection and not self.server.stopping:
            self._handle_one()

    def _handle_one(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except OSError:  # idle too long, or closed under us
            self.close_connection = True
            return
        if not self.raw_requestline or len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.close_connection = True
            return
        self.busy = True
        try:
            self._answer()
        finally:
            self.busy = False

    def _answer(self) -> None:
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
        app = self.server.get_app()
        assert app is not None  # EmulatorServer sets it before serving
        handler.run(app)

    def get_environ(self) -> dict[str, str]:
        environ = super().get_environ()
        environ[RESET_KEY] = self._reset
        return environ

    def _reset(self) -> None:
        """Close the connection with a TCP RST instead of an answer."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    verbose = False
    stopping = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[Handler] = set()
        self._open_lock = threading.Lock()

    def track(self, handler: Handler, *, open: bool) -> None:
        with self._open_lock:
            if open:
                self._open.add(handler)
            else:
                self._open.discard(handler)

    def close_connections(self) -> None:
        """End every kept-alive connection, so no client reaches a stopped emulator.

        A connection waiting for its next request is shut down now; one whose
        answer is under way closes after that answer.
        """
        self.stopping = True
        with self._open_lock:
            idle = [handler for handler in self._open if not handler.busy]
        for handler in idle:
            with contextlib.suppress(OSError):  # closed already
                handler.connection.shutdown(socket.SHUT_RDWR)
