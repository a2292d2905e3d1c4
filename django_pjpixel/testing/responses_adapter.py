"""The emulator behind ``requests``, through a ``responses.RequestsMock``.

``register_emulator(mock, emulator)`` adds one callback per HTTP method on the
emulator's base URL (and one on its token URL); ``EmulatorMock`` is the same
as a context manager that owns its ``RequestsMock``. The callbacks carry bytes
and act on what the emulator asks for: a ``delay`` is slept (or, when it is
longer than the request's read timeout, slept up to the timeout and then a
``ReadTimeout`` raised), ``fault="timeout"`` raises ``ReadTimeout``,
``"connect_timeout"`` ``ConnectTimeout`` and ``"reset"`` ``ConnectionError``.

``responses`` is imported here only: the package's runtime never needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import requests

from django_pjpixel.testing.emulator import PrisjaktEmulator

if TYPE_CHECKING:
    import responses

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS")
Callback = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], bytes]]


def url_pattern(url: str) -> re.Pattern[str]:
    """``url`` itself, or anything below it, with any query string."""
    return re.compile(re.escape(url.rstrip("/")) + r"(?:[/?#].*)?\Z", re.DOTALL)


def read_timeout(request: requests.PreparedRequest) -> float | None:
    """The read timeout ``requests`` was given for this request, if any."""
    kwargs: dict[str, Any] = getattr(request, "req_kwargs", None) or {}
    timeout = kwargs.get("timeout")
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return float(timeout) if isinstance(timeout, (int, float)) else None


def make_callback(emulator: PrisjaktEmulator) -> Callback:
    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = request.body
        raw = body.encode() if isinstance(body, str) else body
        answer = emulator.handle(
            str(request.method),
            str(request.url),
            dict(request.headers),
            raw if isinstance(raw, bytes) else None,
        )
        if answer.fault == "reset":
            raise requests.exceptions.ConnectionError(
                ConnectionResetError(104, "Connection reset by peer (emulated)"), request=request
            )
        if answer.fault == "connect_timeout":
            raise requests.exceptions.ConnectTimeout("emulated connect timeout", request=request)
        if answer.fault == "timeout":
            raise requests.exceptions.ReadTimeout("emulated read timeout", request=request)
        if answer.delay > 0:
            limit = read_timeout(request)
            if limit is not None and answer.delay > limit:
                emulator.sleep(limit)
                raise requests.exceptions.ReadTimeout(
                    f"emulated latency {answer.delay}s beyond the read timeout {limit}s",
                    request=request,
                )
            emulator.sleep(answer.delay)
        return answer.status, dict(answer.headers), answer.body

    return callback


def register_emulator(mock: responses.RequestsMock, emulator: PrisjaktEmulator) -> None:
    """Route every request to the emulator's base URL and token URL through it."""
    callback = make_callback(emulator)
    urls = [emulator.base_url]
    if emulator.token_url:
        urls.append(emulator.token_url)
    for url in urls:
        pattern = url_pattern(url)
        for method in METHODS:
            mock.add_callback(method, pattern, callback=callback)


class EmulatorMock:
    """``with EmulatorMock(emulator) as emulator: ...``: ``requests`` reaches only it.

    Requests to any other URL fail with ``ConnectionError`` (nothing passes
    through to the network).
    """

    def __init__(self, emulator: PrisjaktEmulator | None = None) -> None:
        import responses

        self.emulator = emulator or PrisjaktEmulator()
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        register_emulator(self.mock, self.emulator)

    def __enter__(self) -> PrisjaktEmulator:
        self.mock.start()
        return self.emulator

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.mock.stop()
        self.mock.reset()
