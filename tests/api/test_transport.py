"""Hostile or broken answers stay bounded (``transport.py``): a body past the cap, a
gzip bomb, a server that trickles, a redirect with a broken ``Location``. Each is
served by a tiny loopback server that writes raw bytes, bounded in count and time."""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_pjpixel.api.client import PrisjaktClient, get_client
from django_pjpixel.api.transport import Deadline, _Inflater, bounded_session, exchange
from django_pjpixel.exceptions import (
    PrisjaktAnswerTooLarge,
    PrisjaktRedirectRefused,
    PrisjaktServerError,
    PrisjaktTimeout,
    PrisjaktValidationError,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.delivery import deliver_event
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import api_settings, forked, make_event, seed_payload

SECRET = "s3cr3t-never-shown"
MB = 1024 * 1024
Status = ConversionEvent.Status
Handler = Callable[[socket.socket], None]


class RawServer:
    """Answers every request on 127.0.0.1 with ``handler(connection)``, one thread each."""

    def __init__(self, handler: Handler) -> None:
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(30)
                _read_request(self.request)
                outer.requests += 1
                # OSError: the client hung up (past the cap, or at its deadline).
                with contextlib.suppress(OSError):
                    handler(self.request)

        self.requests = 0
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/click-conversion"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += conn.recv(65536)


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def streaming(status: str, total: int, headers: dict[str, str] | None = None) -> Handler:
    """``total`` bytes of JSON-ish filler, written 64 KiB at a time until the client hangs up."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(head(status, {"Content-Length": str(total), **(headers or {})}))
        block = b" " * 65536
        sent = 0
        while sent < total:
            conn.sendall(block[: total - sent])
            sent += len(block)

    return handler


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of spaces, gzipped to about 200 KiB; never inflated whole in the test."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MB
    parts = [compressor.compress(block) for _ in range(200)]
    parts.append(compressor.flush())
    return b"".join(parts)


def sending(status: str, body: bytes, headers: dict[str, str]) -> Handler:
    def handler(conn: socket.socket) -> None:
        conn.sendall(head(status, {"Content-Length": str(len(body)), **headers}) + body)

    return handler


def settings_for(server: RawServer, **extra: Any) -> dict[str, Any]:
    return api_settings(server.url, **extra)


@contextlib.contextmanager
def api_at(handler: Handler, **extra: Any) -> Iterator[RawServer]:
    """``handler`` serving on loopback, and ``PJPIXEL`` pointing there."""
    with RawServer(handler) as server, override_settings(PJPIXEL=settings_for(server, **extra)):
        yield server


def peak_memory(call: Callable[[], object]) -> tuple[int, object]:
    """The most memory Python allocated during ``call()``, and what it returned or raised."""
    tracemalloc.start()
    try:
        try:
            result: object = call()
        except Exception as err:
            result = err
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


DAY = datetime(2025, 3, 1, tzinfo=timezone.utc)


def listing() -> object:
    """One page of a listing through a client of the current settings."""
    return get_client().list_events(start=DAY, end=DAY)


# -- (a) bodies past the cap --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [("200 OK", PrisjaktAnswerTooLarge), ("503 Service Unavailable", PrisjaktServerError)],
)
def test_a_100_mb_body_is_read_to_the_cap_only(status: str, expected: type[Exception]) -> None:
    # Issue 11: a 100 MB body grew the worker by 1 GB and more.
    with api_at(streaming(status, 100 * MB)):
        peak, result = peak_memory(listing)
    assert isinstance(result, expected)
    assert peak < 8 * MB


@pytest.mark.parametrize(
    ("status", "expected"),
    [("200 OK", PrisjaktAnswerTooLarge), ("400 Bad Request", PrisjaktValidationError)],
)
def test_a_gzip_bomb_is_inflated_to_the_cap_only(
    gzip_bomb: bytes, status: str, expected: type[Exception]
) -> None:
    # Issue 11: 200 KiB of gzip inflating to 200 MB grew the worker to 2.5 GB.
    handler = sending(status, gzip_bomb, {"Content-Encoding": "gzip"})
    with api_at(handler):
        peak, result = peak_memory(listing)
    assert isinstance(result, expected)
    assert peak < 8 * MB


def test_the_cap_is_a_setting() -> None:
    body = b"[" + b" " * 5000 + b"]"
    answer = sending("200 OK", body, {"Content-Type": "application/json"})
    with api_at(answer, MAX_RESPONSE_BYTES=5000), pytest.raises(PrisjaktAnswerTooLarge):
        listing()
    with api_at(answer, MAX_RESPONSE_BYTES=6000):
        page = listing()
    assert page.events == []  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_a_huge_answer_to_a_recorded_event_leaves_it_sent(gzip_bomb: bytes) -> None:
    handler = sending("201 Created", gzip_bomb, {"Content-Encoding": "gzip"})
    with api_at(handler):
        event = make_event()
        peak, _outcome = peak_memory(lambda: deliver_event(event.pk))
    row = ConversionEvent.objects.get(pk=event.pk)
    assert (row.status, row.last_status_code, row.remote_event_id) == (Status.SENT, 201, "")
    assert peak < 8 * MB


@pytest.mark.django_db
def test_a_huge_error_answer_is_recorded_with_its_status() -> None:
    with api_at(streaming("400 Bad Request", 100 * MB)):
        event = make_event()
        deliver_event(event.pk)
    row = ConversionEvent.objects.get(pk=event.pk)
    assert (row.status, row.last_status_code) == (Status.FAILED, 400)


def test_inflating_stops_at_the_room_given() -> None:
    inflater = _Inflater("gzip")
    data = gzip.compress(b"x" * 100_000)
    assert inflater.feed(data, 1000) == b"x" * 1000
    deflate = _Inflater("deflate")
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert deflate.feed(raw.compress(b"y" * 50) + raw.flush(), 100) == b"y" * 50


# -- (b) a server that trickles --------------------------------------------------------


def trickling(where: str, seconds: float = 20.0) -> Handler:
    """A whole answer, one byte every 0.25 s, for at most ``seconds`` (then the rest)."""

    def handler(conn: socket.socket) -> None:
        body = b'{"id": "e-1"}'
        answer = head("201 Created", {"Content-Length": str(len(body))}) + body
        slow_from = 0 if where == "head" else len(answer) - len(body)
        conn.sendall(answer[:slow_from])
        started = time.monotonic()
        for index in range(slow_from, len(answer)):
            if time.monotonic() - started < seconds:
                time.sleep(0.25)
            conn.sendall(answer[index : index + 1])

    return handler


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["head", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(where: str) -> None:
    # Issue 11: a byte a second held a request 40 s with READ_TIMEOUT = 3.
    with RawServer(trickling(where)) as server:
        conf = settings_for(server, READ_TIMEOUT=3, REQUEST_DEADLINE=1)
        with override_settings(PJPIXEL=conf):
            event = make_event()
            outcome = deliver_event(event.pk)
    assert isinstance(outcome.error, PrisjaktTimeout)
    assert "deadline" in str(outcome.error)
    row = ConversionEvent.objects.get(pk=event.pk)
    assert row.status == Status.PENDING  # retried later, as any timeout


def test_a_deadline_is_kept_in_a_forked_child_too() -> None:
    # One watchdog thread per process keeps the deadlines; a fork does not copy it.
    with RawServer(trickling("head")) as server:
        client = PrisjaktClient()

        def child() -> None:
            with (
                override_settings(PJPIXEL=settings_for(server, REQUEST_DEADLINE=1)),
                pytest.raises(PrisjaktTimeout, match="deadline"),
            ):
                PrisjaktClient().create_event(seed_payload())

        wait = forked(child)
        assert wait(15) == ""
        client.close()


def test_requests_share_one_deadline_thread(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient()
    for index in range(20):
        client.create_event(seed_payload(external_event_id=f"order-{index}"))
    assert len(pjpixel_api.events) == 20
    names = [thread.name for thread in threading.enumerate()]
    assert names.count("pjpixel-deadlines") == 1


def test_a_deadline_already_passed_sends_nothing() -> None:
    with RawServer(sending("200 OK", b"[]", {})) as server, pytest.raises(PrisjaktTimeout):
        exchange(
            bounded_session(),
            "GET",
            server.url,
            deadline=Deadline(0.0),
            timeout=(1, 1),
            cap=10,
            what="GET /",
        )
    assert server.requests == 0


# -- (d) redirects ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("location", ["http://[::1", "https://evil.example/steal", ""])
def test_a_redirect_fails_the_row_for_good(location: str) -> None:
    # Issue 11: 302 with Location: http://[::1 left the row pending, retried for ever.
    headers = {"Location": location} if location else {}
    with api_at(sending("302 Found", b"", headers)) as server:
        event = make_event()
        outcome = deliver_event(event.pk)
        assert server.requests == 1  # never followed
    assert isinstance(outcome.error, PrisjaktRedirectRefused)
    row = ConversionEvent.objects.get(pk=event.pk)
    assert (row.status, row.last_status_code) == (Status.FAILED, 302)
    assert row.next_attempt_at is None


@pytest.mark.django_db
def test_a_redirect_in_the_admin_is_a_message(admin_client: Client) -> None:
    with api_at(sending("302 Found", b"", {"Location": "http://[::1"})):
        response = admin_client.get(reverse("admin:django_pjpixel_prisjakt_events"))
    assert response.status_code == 200
    assert "Prisjakt answered HTTP 302" in response.content.decode()
