"""``PrisjaktClient``: the one way django-pjpixel talks to the Click & Conversion API.

One ``requests.Session`` per client, explicit (connect, read) timeouts, a
User-Agent with the version, redirects never followed (the secret travels in a
header), every non-2xx answer mapped to a ``PrisjaktAPIError`` carrying the
problem details, the request id, the rate-limit state and ``Retry-After``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urljoin, urlsplit

import requests

from django_pjpixel import __version__
from django_pjpixel.auth import Credentials
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktConnectionError,
    PrisjaktTimeout,
    RateLimit,
)
from django_pjpixel.payloads import (
    EVENT_NAME_PURCHASE,
    MAX_LIST_RANGE,
    MAX_VALUE,
    check_range,
    format_time,
    is_valid_click_id,
    parse_retry_after,
    purchase_payload,
    to_api_amount,
)
from django_pjpixel.problems import api_error, decode_json, path_of

# The names other modules import from here since before the payload helpers
# moved to ``payloads``: kept so those imports keep working.
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
# Keys under which a listing may wrap its events ([open] in the API notes).
_LIST_KEYS = ("events", "data", "items", "results")


@dataclass(frozen=True)
class ApiResult:
    """A successful answer: status, decoded JSON (or None), request id, rate limit."""

    status: int
    data: Any = None
    request_id: str | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class EventPage:
    """One page of a listing, with page numbers taken from its ``Link`` header."""

    events: list[dict[str, Any]]
    page: int
    first: int | None = None
    prev: int | None = None
    next: int | None = None
    last: int | None = None
    links: dict[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    request_id: str | None = None


class PrisjaktClient:
    """A client for one shop's credentials. Cheap to keep; reuses its connections."""

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
        self._credentials = Credentials(
            mode=self.auth,
            client_id=self.client_id,
            client_secret=self._secret,
            token_url=self.token_url,
        )
        base = urlsplit(self.api_url)
        self._origin = (base.scheme, base.hostname, base.port)
        self._base_path = base.path.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self._credentials.install(self.session)

    def __repr__(self) -> str:
        return f"<PrisjaktClient {self.api_url} pixel={self.pixel_id!r} client={self.client_id!r}>"

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------

    def create_event(self, payload: Mapping[str, Any]) -> ApiResult:
        """POST one event; 201 on success, ``PrisjaktConflict`` when already recorded."""
        return self._call("POST", self._pixel_path("events"), json=dict(payload))

    def create_events(self, payloads: Sequence[Mapping[str, Any]]) -> ApiResult:
        """PATCH many events in one request; existing ``external_event_id``s are updated.

        The body is a bare JSON array of event objects: the API notes leave its
        shape open, and this is the plainest reading of "many events".
        """
        return self._call("PATCH", self._pixel_path("events"), json=[dict(p) for p in payloads])

    def list_events(self, *, start: datetime, end: datetime, page: int = 1) -> EventPage:
        """One page of the pixel's events between ``start`` and ``end`` (≤ 60 days)."""
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

        Pages are not stable (an event may appear again on the next page), so
        events are de-duplicated by ``id``; a repeated URL or the page cap ends
        the walk.
        """
        first_url = self._list_url(start, end, 1)
        page = self._page(first_url, 1)
        seen_ids: set[str] = set()
        seen_urls = {first_url}
        pages = 1
        while True:
            for event in page.events:
                event_id = event.get("id")
                key = event_id if isinstance(event_id, str) else repr(sorted(event.items()))
                if key in seen_ids:
                    continue
                seen_ids.add(key)
                yield event
            next_url = page.links.get("next")
            if next_url is None or next_url in seen_urls:
                return
            if pages >= self.max_pages:
                logger.warning("pjpixel: stopped listing events at the page cap (%d)", pages)
                return
            seen_urls.add(next_url)
            pages += 1
            page = self._page(next_url, page.next or page.page + 1)

    def get_event(self, event_id: str) -> ApiResult:
        return self._call("GET", f"/events/{_segment(event_id, 'event_id')}")

    def get_click(self, click_id: str) -> ApiResult:
        return self._call("GET", f"/clicks/{_segment(click_id, 'click_id')}")

    def get_client(self, client_id: str | None = None) -> ApiResult:
        """Who the credentials are: ``{"id": ..., "roles": [...]}``."""
        return self._call("GET", f"/clients/{_segment(client_id or self.client_id, 'client_id')}")

    def list_pixels(self, shop_id: str) -> ApiResult:
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
        response = self._send("GET", url)
        data = decode_json(response, secret=self._secret)
        events = _events_of(data)
        links = self._safe_links(response)
        numbers = {rel: _page_number(url) for rel, url in links.items()}
        return EventPage(
            events=events,
            page=page,
            first=numbers.get("first"),
            prev=numbers.get("prev"),
            next=numbers.get("next"),
            last=numbers.get("last"),
            links=links,
            rate_limit=RateLimit.from_headers(response.headers),
            request_id=response.headers.get("request-id"),
        )

    def _safe_links(self, response: requests.Response) -> dict[str, str]:
        """The ``Link`` targets that stay on the configured origin and base path."""
        safe: dict[str, str] = {}
        try:
            links = response.links
        except Exception:  # a malformed header must not break the listing
            logger.warning("pjpixel: ignored an unparsable Link header")
            return safe
        for rel, link in links.items():
            raw = link.get("url", "")
            try:
                url = urljoin(response.url or self.api_url, raw)
                parts = urlsplit(url)
                origin = (parts.scheme, parts.hostname, parts.port)
            except ValueError:
                logger.warning("pjpixel: ignored a malformed %s link", rel)
                continue
            if (
                origin != self._origin
                or parts.username is not None
                or parts.password is not None
                or "@" in parts.netloc
                or not parts.path.startswith(self._base_path + "/")
                or _has_dot_segment(parts.path)
                or any(ch in url for ch in "\r\n\t ")
            ):
                logger.warning("pjpixel: ignored a %s link outside the API origin", rel)
                continue
            safe[str(rel)] = url
        return safe

    def _call(self, method: str, path: str, *, json: Any = None) -> ApiResult:
        response = self._send(method, f"{self.api_url}{path}", json=json)
        data: Any = None
        if response.content:
            try:
                data = decode_json(response, secret=self._secret)
            except PrisjaktAPIError:
                if method == "GET":
                    raise
                # A write the API accepted stays accepted: an unreadable body
                # must not turn a recorded event into a failure.
                logger.warning(
                    "pjpixel: %s %s answered %d with a body that is not JSON",
                    method,
                    path_of(response.url),
                    response.status_code,
                )
        return ApiResult(
            status=response.status_code,
            data=data,
            request_id=response.headers.get("request-id"),
            rate_limit=RateLimit.from_headers(response.headers),
        )

    def _send(self, method: str, url: str, *, json: Any = None) -> requests.Response:
        response = self._send_once(method, url, json)
        if response.status_code == 401 and self._credentials.bearer:
            self._credentials.forget_token()  # expired or revoked early: fetch a new one, once
            response = self._send_once(method, url, json)
        if response.status_code >= 300:
            raise api_error(response, secret=self._secret)
        return response

    def _send_once(self, method: str, url: str, json: Any) -> requests.Response:
        headers = self._credentials.request_headers(self.session, self.timeout)
        try:
            return self.session.request(
                method,
                url,
                json=json,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as err:
            raise PrisjaktTimeout(f"Prisjakt API timed out ({method} {path_of(url)})") from err
        except requests.RequestException as err:
            raise PrisjaktConnectionError(
                f"Prisjakt API could not be reached ({method} {path_of(url)}): {type(err).__name__}"
            ) from err


def _segment(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(name, "must be a non-empty string")
    return quote(value, safe="")


def _has_dot_segment(path: str) -> bool:
    return any(seg in (".", "..") for seg in unquote(path).split("/"))


def _events_of(data: Any) -> list[dict[str, Any]]:
    """The events of a listing: a bare list, or a list under one key of an object."""
    items: Any = None
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                items = data[key]
                break
        else:
            lists = [v for v in data.values() if isinstance(v, list)]
            items = lists[0] if len(lists) == 1 else None
    if items is None:
        raise PrisjaktAPIError(
            "Prisjakt API answered a listing without a list of events", retryable=False
        )
    return [item for item in items if isinstance(item, dict)]


def _page_number(url: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get("page")
    if not values:
        return None
    try:
        number = int(values[-1])
    except ValueError:
        return None
    return number if number >= 1 else None


_local = threading.local()


def get_client() -> PrisjaktClient:
    """This thread's client for the current settings (rebuilt when they change)."""
    conf = pjpixel_settings
    key = (
        conf.API_URL,
        conf.PIXEL_ID,
        conf.CLIENT_ID,
        conf.CLIENT_SECRET,
        conf.AUTH,
        conf.TOKEN_URL,
        conf.TIMEOUT,
        conf.MAX_PAGES,
    )
    cached: tuple[tuple[Any, ...], PrisjaktClient] | None = getattr(_local, "client", None)
    if cached is None or cached[0] != key:
        if cached is not None:
            cached[1].close()
        cached = (key, PrisjaktClient())
        _local.client = cached
    return cached[1]
