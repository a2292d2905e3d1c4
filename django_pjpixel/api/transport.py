"""One HTTP exchange with the API, bounded whatever the server does.

``exchange`` sends one request and reads its answer:

- within a total ``Deadline``: (connect, read) timeouts bound each socket
  operation only, so a server trickling a byte a second would hold a request
  for ever; a watchdog thread shuts the request's socket down when the deadline passes
  (``BoundedAdapter`` tells it which socket), and the body is read in chunks
  between which the deadline is checked;
- within ``cap`` bytes, before and after decompression: the body is streamed
  and inflated here (``gzip`` and ``deflate``, all that is asked for) with
  zlib's ``max_length``, so a small gzip bomb cannot inflate in memory;
- never following a redirect, nor reading its ``Location`` (a response hook
  stops requests before it parses one; the secret travels in a header).

An error is raised ``from None``, outside the ``except`` block that caught its
cause, with the cause named in the message: the traceback of what reaches a
debug page or an error reporter then holds no frame of urllib3's or
requests', whose locals carry the request's headers and form.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager

from django_pjpixel.exceptions import PrisjaktConnectionError, PrisjaktTimeout

# What the client asks for, so what it knows how to inflate within the cap.
ACCEPT_ENCODING = "gzip, deflate"
_CHUNK = 16 * 1024
_MIN_TIMEOUT = 0.001


class Deadline:
    """The moment a client call must be done by: ``seconds`` from now (monotonic)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout(self, timeout: tuple[float, float]) -> tuple[float, float]:
        """(connect, read) seconds, neither beyond what is left."""
        left = max(self.remaining(), _MIN_TIMEOUT)
        return (min(timeout[0], left), min(timeout[1], left))


@dataclass
class Answer:
    """A response whose body (``response.content``) was read within the cap;
    ``complete`` is False when the body was longer and was cut there."""

    response: requests.Response
    complete: bool


class _Redirected(Exception):  # a signal from the hook, not an error
    def __init__(self, response: requests.Response) -> None:
        self.response = response


def _stop_at_a_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    # Before requests reads Location (for Response.next) and can fail on it.
    if 300 <= response.status_code < 400:
        raise _Redirected(response)


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    deadline: Deadline,
    timeout: tuple[float, float],
    cap: int,
    what: str,
    **kwargs: Any,
) -> Answer:
    """Send one request through ``session`` and read its answer within ``deadline`` and ``cap``.

    ``kwargs`` go to ``session.request`` (``json``, ``data``, ``auth``).
    ``what`` names the request in errors (``"POST /pixels/…/events"``).
    Raises ``PrisjaktTimeout`` when the deadline or a timeout passes, and
    ``PrisjaktConnectionError`` when the API cannot be reached or its answer
    cannot be read (both retryable).
    """
    if deadline.expired:
        raise PrisjaktTimeout(f"Prisjakt API timed out ({what}): the request deadline passed")
    watch = _Watch(deadline)
    failure: Exception | None = None
    try:
        try:
            response = session.request(
                method,
                url,
                timeout=deadline.timeout(timeout),
                allow_redirects=False,
                stream=True,
                hooks={"response": [_stop_at_a_redirect]},
                **kwargs,
            )
        except _Redirected as redirected:
            response = redirected.response
        try:
            complete = _read_body(response, cap, deadline)
        except BaseException:
            response.close()  # cut short mid-body: the connection cannot be reused
            raise
    except (requests.RequestException, ValueError, OSError, zlib.error) as err:
        failure = _failure(err, what, watch.fired or deadline.expired)
    finally:
        watch.stop()
    if failure is not None:
        raise failure from None
    return Answer(response, complete)


def _failure(err: Exception, what: str, late: bool) -> Exception:
    """The project's error for ``err``, naming its cause; the cause itself is dropped."""
    if late:
        return PrisjaktTimeout(f"Prisjakt API timed out ({what}): the request deadline passed")
    if isinstance(err, requests.Timeout):
        return PrisjaktTimeout(f"Prisjakt API timed out ({what}): {type(err).__name__}")
    if isinstance(err, _UnreadableBody):
        return PrisjaktConnectionError(f"Prisjakt API answered {what} unreadably: {err}")
    return PrisjaktConnectionError(
        f"Prisjakt API could not be reached ({what}): {type(err).__name__}"
    )


class _UnreadableBody(ValueError):
    pass


def _read_body(response: requests.Response, cap: int, deadline: Deadline) -> bool:
    """Read ``response``'s body into ``response.content``, at most ``cap`` bytes after
    decompression; whether it was all read. Stops at the deadline (``PrisjaktTimeout``)."""
    raw = response.raw
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    inflate = _Inflater(encoding)
    body = bytearray()
    complete = True
    declared = response.headers.get("Content-Length", "")
    if not encoding and declared.isdigit() and int(declared) > cap:
        complete = False
    else:
        while True:
            if deadline.expired:
                raise requests.Timeout("the request deadline passed while reading the answer")
            chunk = raw.read(_CHUNK, decode_content=False) if raw is not None else b""
            if not chunk:
                body += inflate.flush(cap + 1 - len(body))
                break
            body += inflate.feed(chunk, cap + 1 - len(body))
            if len(body) > cap:
                break
        if len(body) > cap:
            del body[cap:]
            complete = False
    response._content = bytes(body)
    response._content_consumed = True  # type: ignore[attr-defined]  # as requests marks it
    if complete and raw is not None:
        raw.release_conn()
    else:
        response.close()  # unread bytes on the connection: it cannot be reused
    return complete


class _Inflater:
    """``Content-Encoding`` undone within a bound of output per call."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
            self._raw_deflate = False
        elif encoding not in ("", "identity"):
            raise _UnreadableBody(f"an unknown Content-Encoding {encoding[:20]!r}")

    def feed(self, data: bytes, room: int) -> bytes:
        """At most ``room`` (≥ 1) bytes of output for ``data`` and what was held back."""
        if self._zlib is None:
            return data
        try:
            out = self._zlib.decompress(self._zlib.unconsumed_tail + data, room)
        except zlib.error:
            if self.encoding != "deflate" or self._raw_deflate:
                raise
            # Some servers send raw deflate, without zlib's header.
            self._zlib, self._raw_deflate = zlib.decompressobj(-zlib.MAX_WBITS), True
            out = self._zlib.decompress(data, room)
        return bytes(out)

    def flush(self, room: int) -> bytes:
        if self._zlib is None or room < 1:
            return b""
        out = bytearray()
        while self._zlib.unconsumed_tail and len(out) < room:
            out += self._zlib.decompress(self._zlib.unconsumed_tail, room - len(out))
        return bytes(out)


# -- the deadline's watchdog ------------------------------------------------------

_current = threading.local()


class _Watch:
    """Shuts down the sockets of this thread's request when ``deadline`` passes."""

    def __init__(self, deadline: Deadline) -> None:
        self.fired = False
        self.stopped = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        _current.watch = self
        _watchdog.watch(self, deadline.end)

    def add(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)
            if self.fired:
                _shut(connection)

    def stop(self) -> None:
        _current.watch = None
        with self._lock:
            self.stopped = True
            self._connections.clear()

    def fire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.fired = True
            for connection in self._connections:
                _shut(connection)


class _Watchdog:
    """One daemon thread per process that fires the watches whose deadline passed.

    A thread per request (``threading.Timer``) cost more than the request to a
    fast API; this one sleeps until the earliest deadline. A stopped watch
    stays queued until its deadline comes round, then is dropped.
    """

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """A new, empty watchdog: also in a forked child, where the thread is gone."""
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, watch: _Watch, end: float) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pjpixel-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._queue, (end, next(self._order), watch))
            if self._queue[0][2] is watch:  # earlier than what the thread waits for
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._next_due()
            due.fire()

    def _next_due(self) -> _Watch:
        while True:
            while self._queue and self._queue[0][2].stopped:
                heapq.heappop(self._queue)
            if not self._queue:
                self._cond.wait()
                continue
            left = self._queue[0][0] - time.monotonic()
            if left <= 0:
                return heapq.heappop(self._queue)[2]
            self._cond.wait(left)


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):  # POSIX; Windows does not fork
    os.register_at_fork(after_in_child=_watchdog.forget)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        # socket.socket's own shutdown, also for an SSLSocket: a reader blocked in
        # recv() gets end-of-file, whatever thread it is in.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched:
    """A connection pool that shows the running request's watch each connection it uses."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        watch: _Watch | None = getattr(_current, "watch", None)
        if watch is not None:
            watch.add(connection)
        return connection


class _HTTPPool(_Watched, HTTPConnectionPool):
    pass


class _HTTPSPool(_Watched, HTTPSConnectionPool):
    pass


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections the request deadline can end (see ``exchange``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager


def bounded_session() -> requests.Session:
    """A ``requests.Session`` with ``BoundedAdapter`` for http and https."""
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, BoundedAdapter())
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    return session
