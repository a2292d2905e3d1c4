"""``PrisjaktClient``: the one way django-pjpixel talks to the Click & Conversion API.

This module is the client: one ``requests.Session`` per client (and process),
a User-Agent with the version, and the endpoints as methods. What it builds on
lives beside it: ``transport`` (one request within a total deadline and a body
cap, redirects never followed: the secret travels in a header), ``auth`` (the
credentials on each request),
``problems`` (a non-2xx answer as a ``PrisjaktAPIError``, the secret masked),
``pagination`` (listing pages and their ``Link`` header) and ``payloads`` (the
API's field formats).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from django_pjpixel._version import __version__
from django_pjpixel.api.auth import Credentials
from django_pjpixel.api.clickids import is_valid_click_id
from django_pjpixel.api.pagination import EventPage, Pager, walk_events
from django_pjpixel.api.payloads import (
    EVENT_NAME_PURCHASE,
    MAX_LIST_RANGE,
    MAX_VALUE,
    check_range,
    format_time,
    parse_retry_after,
    purchase_payload,
    to_api_amount,
)
from django_pjpixel.api.problems import api_error, decode_json, path_of, request_id_of
from django_pjpixel.api.transport import (
    ACCEPT_ENCODING,
    Answer,
    Deadline,
    bounded_session,
    exchange,
)
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAnswerTooLarge,
    PrisjaktAPIError,
    RateLimit,
)
from django_pjpixel.markets import market_of

# Besides the client's own names, the ones other modules and tests import from
# here since before they moved to ``payloads`` and ``pagination``: kept so
# those imports keep working.
__all__ = [
    "EVENT_NAME_PURCHASE",
    "MAX_LIST_RANGE",
    "MAX_VALUE",
    "USER_AGENT",
    "ApiResult",
    "EventPage",
    "PrisjaktClient",
    "check_range",
    "format_time",
    "get_client",
    "is_valid_click_id",
    "parse_retry_after",
    "purchase_payload",
    "to_api_amount",
]

logger = logging.getLogger("django_pjpixel.client")

USER_AGENT = f"django-pjpixel/{__version__}"


@dataclass(frozen=True)
class ApiResult:
    """A successful (2xx) answer.

    ``status`` is the HTTP status (201 for a created event, 204 for the
    many-events ``PATCH`` [docs]); ``data`` the decoded JSON body, None when the
    body is empty (or, for a write, not JSON); ``request_id`` the
    ``request-id`` header; ``rate_limit`` the ``X-RateLimit-*`` state [docs].
    """

    status: int
    data: Any = None
    request_id: str | None = None
    rate_limit: RateLimit | None = None


class PrisjaktClient:
    """A client for one shop's credentials. Cheap to keep; reuses its connections.

    Every argument defaults to its ``PJPIXEL`` setting: ``api_url`` (base
    address, ``https://api.pj.nu/click-conversion`` [seed]), ``pixel_id``,
    ``client_id``, ``client_secret``, ``auth`` (``"headers"`` or
    ``"oauth2"``), ``token_url``, ``timeout`` ((connect, read) seconds),
    ``max_pages`` (the cap of ``iter_events``); ``session`` may be given to
    share one. Raises ``PjpixelConfigurationError`` for another ``auth``.

    Each method raises a ``PrisjaktAPIError`` subclass for a non-2xx answer
    (``PrisjaktRedirectRefused`` for a 3xx), ``PrisjaktTimeout`` or
    ``PrisjaktConnectionError`` when the API cannot be reached, and
    ``InvalidInput`` for an argument the API would refuse, before sending.
    """

    def __init__(
        self,
        *,
        api_url: str | None = None,
        pixel_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        auth: str | None = None,
        token_url: str | None = None,
        timeout: tuple[float, float] | None = None,
        max_pages: int | None = None,
        session: requests.Session | None = None,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ) -> None:
        conf = pjpixel_settings
        self.api_url = (api_url or conf.API_URL).rstrip("/")
        self.pixel_id = pixel_id if pixel_id is not None else conf.PIXEL_ID
        self.client_id = client_id if client_id is not None else conf.CLIENT_ID
        self._secret = client_secret if client_secret is not None else conf.CLIENT_SECRET
        self.auth = auth or conf.AUTH
        self.token_url = token_url or conf.TOKEN_URL
        self.timeout = timeout or conf.TIMEOUT
        self.max_pages = max_pages or conf.MAX_PAGES
        self.deadline = deadline or conf.REQUEST_DEADLINE
        self.max_response_bytes = max_response_bytes or conf.MAX_RESPONSE_BYTES
        self._credentials = Credentials(
            mode=self.auth,
            client_id=self.client_id,
            client_secret=self._secret,
            token_url=self.token_url,
        )
        self._pager = Pager(self.api_url)
        self._own_session = session is None
        self.session = session or bounded_session()
        self._setup_session()
        self._pid = os.getpid()
        _clients.add(self)

    def _setup_session(self) -> None:
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self._credentials.install(self.session)

    def after_fork(self) -> None:
        """Stop sharing the parent's connections and token in a forked child process.

        Two processes reading one pooled connection get each other's answers (or
        interleave their requests). A session this client made is replaced, not
        closed (closing could wait on a lock a thread of the parent held at
        ``fork()``); a session given to it is closed here, which closes only
        this process's copies of the connections.
        """
        self._pid = os.getpid()
        self._credentials.after_fork()
        if self._own_session:
            self.session = bounded_session()
            self._setup_session()
        else:
            self.session.close()

    def __repr__(self) -> str:
        return f"<PrisjaktClient {self.api_url} pixel={self.pixel_id!r} client={self.client_id!r}>"

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()

    # -- endpoints ---------------------------------------------------------

    def create_event(self, payload: Mapping[str, Any]) -> ApiResult:
        """``POST /pixels/{pixel_id}/events`` with one event body [seed].

        ``payload`` is a body as ``purchase_payload`` builds it. 201 on success;
        ``PrisjaktConflict`` (409) when an event with its ``external_event_id``
        is already recorded (within 30 days [docs]); ``PjpixelConfigurationError``
        without a ``PIXEL_ID``.
        """
        return self._call("POST", self._pixel_path("events"), json=dict(payload))

    def create_events(self, payloads: Sequence[Mapping[str, Any]]) -> ApiResult:
        """``PATCH /pixels/{pixel_id}/events``: many events in one request [docs].

        An event whose ``external_event_id`` exists is updated instead [docs];
        204 on success [docs]. The body is a bare JSON array of event objects:
        its shape is [open], and this is the plainest reading of "many events".
        """
        return self._call("PATCH", self._pixel_path("events"), json=[dict(p) for p in payloads])

    def list_events(self, *, start: datetime, end: datetime, page: int = 1) -> EventPage:
        """``GET /pixels/{pixel_id}/events?from=&to=&page=``: one page of a listing [seed].

        ``start`` and ``end`` are aware datetimes at most 60 days apart [docs];
        ``page`` counts from 1. The page's own ``Link`` header gives the
        numbers of the others (``EventPage``).
        """
        return self._page(self._list_url(start, end, page), page)

    def _list_url(self, start: datetime, end: datetime, page: int) -> str:
        check_range(start, end)
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise InvalidInput("page", "must be a whole number from 1")
        params = {"from": format_time(start), "to": format_time(end), "page": str(page)}
        return f"{self.api_url}{self._pixel_path('events')}?" + "&".join(
            f"{k}={quote(v, safe='')}" for k, v in params.items()
        )

    def iter_events(self, *, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Every event of the range, following ``rel="next"`` links, each id once.

        Pages are not stable (an event may appear again on the next page [docs]),
        so events are de-duplicated by ``id``; a repeated URL or the page cap
        (``max_pages``) ends the walk. A generator: nothing is checked or sent
        before the first event is asked for.
        """
        first_url = self._list_url(start, end, 1)
        yield from walk_events(first_url, self._page, max_pages=self.max_pages)

    def get_event(self, event_id: str) -> ApiResult:
        """``GET /events/{event_id}``: one event by its id, a UUID [docs]."""
        return self._call("GET", f"/events/{_segment(event_id, 'event_id')}")

    def get_click(self, click_id: str) -> ApiResult:
        """``GET /clicks/{click_id}``: one click by its id [docs]."""
        return self._call("GET", f"/clicks/{_segment(click_id, 'click_id')}")

    def get_client(self, client_id: str | None = None) -> ApiResult:
        """``GET /clients/{client_id}``: who the credentials are [docs].

        ``data`` is ``{"id": "...", "roles": ["shop_user"]}``; ``client_id``
        defaults to this client's own.
        """
        return self._call("GET", f"/clients/{_segment(client_id or self.client_id, 'client_id')}")

    def list_pixels(self, shop_id: str) -> ApiResult:
        """``GET /shops/{shop_id}/pixels``: a shop's pixels [docs]."""
        return self._call("GET", f"/shops/{_segment(shop_id, 'shop_id')}/pixels")

    # -- plumbing ----------------------------------------------------------

    def _pixel_path(self, rest: str) -> str:
        if not self.pixel_id:
            raise PjpixelConfigurationError(
                'PJPIXEL["PIXEL_ID"] is not set: add your pixel id from Prisjakt\'s '
                "Business Center (Settings > Conversion Pixel) to settings.PJPIXEL."
            )
        return f"/pixels/{_segment(self.pixel_id, 'PIXEL_ID')}/{rest}"

    def _page(self, url: str, page: int) -> EventPage:
        response = self._read(self._send("GET", url), "GET", url)
        return self._pager.page(
            response, decode_json(response, hidden=self._credentials.hidden()), page
        )

    def _call(self, method: str, path: str, *, json: Any = None) -> ApiResult:
        url = f"{self.api_url}{path}"
        answer = self._send(method, url, json=json)
        response = answer.response
        data: Any = None
        if method == "GET":
            data = decode_json(self._read(answer, method, url), hidden=self._credentials.hidden())
        elif response.content and answer.complete:
            try:
                data = decode_json(response, hidden=self._credentials.hidden())
            except PrisjaktAPIError:
                # A write the API accepted stays accepted: an unreadable body
                # must not turn a recorded event into a failure.
                logger.warning(
                    "pjpixel: %s %s answered %d with a body that is not JSON",
                    method,
                    path_of(url),
                    response.status_code,
                )
        elif not answer.complete:
            logger.warning(
                "pjpixel: %s %s answered %d with a body over %d bytes, not read",
                method,
                path_of(url),
                response.status_code,
                self.max_response_bytes,
            )
        return ApiResult(
            status=response.status_code,
            data=data,
            request_id=request_id_of(response, self._credentials.hidden()),
            rate_limit=RateLimit.from_headers(response.headers),
        )

    def _read(self, answer: Answer, method: str, url: str) -> requests.Response:
        """The response of a read, its body whole, or a non-retryable error."""
        if not answer.complete:
            raise PrisjaktAnswerTooLarge(
                f"Prisjakt API answered {method} {path_of(url)} with more than "
                f'{self.max_response_bytes} bytes (PJPIXEL["MAX_RESPONSE_BYTES"])',
                status=answer.response.status_code,
                request_id=request_id_of(answer.response, self._credentials.hidden()),
            )
        return answer.response

    def _send(self, method: str, url: str, *, json: Any = None) -> Answer:
        """One call: the request (and a new token and the request again after a 401 in
        ``"oauth2"`` mode), all within one ``deadline``; a non-2xx answer raised."""
        if self._pid != os.getpid():
            self.after_fork()
        deadline = Deadline(self.deadline)
        answer = self._send_once(method, url, json, deadline)
        if answer.response.status_code == 401 and self._credentials.bearer:
            self._credentials.forget_token()  # expired or revoked early: fetch a new one, once
            answer = self._send_once(method, url, json, deadline)
        if answer.response.status_code >= 300:
            raise api_error(answer.response, hidden=self._credentials.hidden())
        return answer

    def _send_once(self, method: str, url: str, json: Any, deadline: Deadline) -> Answer:
        cap = self.max_response_bytes
        self._credentials.prepare(self.session, deadline, self.timeout, cap)
        return exchange(
            self.session,
            method,
            url,
            json=json,
            auth=self._credentials,
            deadline=deadline,
            timeout=self.timeout,
            cap=cap,
            what=f"{method} {path_of(url)}",
        )


def _segment(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(name, "must be a non-empty string")
    return quote(value, safe="")


_local = threading.local()
# Every client of this process, so a forked child can stop sharing their connections.
_clients: weakref.WeakSet[PrisjaktClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _local
    # This thread's cached client is the parent's: a new one is made on first use.
    _local = threading.local()
    for client in list(_clients):
        client.after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_client(pixel_id: str | None = None) -> PrisjaktClient:
    """This thread's ``PrisjaktClient`` for the market of ``pixel_id`` (``markets.market_of``).

    Without ``PJPIXEL["PIXELS"]`` every pixel's is the single pixel's client;
    ``pixel_id`` None is the first market's. One per market, thread and process,
    each with its own session and connections; rebuilt (and the old one closed)
    when a setting it was built from changes. A forked child never uses its
    parent's (``os.register_at_fork``, and the process id kept with the client,
    should a server fork without it).
    """
    conf = pjpixel_settings
    market = market_of(pixel_id)
    key = (
        *market.client_settings().values(),
        conf.TIMEOUT,
        conf.MAX_PAGES,
        conf.REQUEST_DEADLINE,
        conf.MAX_RESPONSE_BYTES,
        os.getpid(),
    )
    clients: dict[str, tuple[tuple[Any, ...], PrisjaktClient]] | None
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    cached = clients.get(market.key)
    if cached is None or cached[0] != key:
        if cached is not None and cached[0][-1] == key[-1]:
            cached[1].close()
        cached = (key, PrisjaktClient(**market.client_settings()))
        clients[market.key] = cached
    return cached[1]
