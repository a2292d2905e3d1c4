"""Reading the events listing page by page, through its ``Link`` header.

``GET /pixels/{pixel_id}/events?from=&to=&page=`` is paginated with an RFC
8288 ``Link`` header carrying ``rel="first"``, ``"prev"``, ``"next"`` and
``"last"``; links that do not apply are left out, and the header is left out
when everything fits on one page [seed]. Pages are "not stable": an event may
appear again on the next page [docs]. The header is read as RFC 8288 has it
(``links.py``), and a link is followed only while it stays on the configured
API's origin and base path, since the credentials go with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_pjpixel.api.links import origin, parse_links
from django_pjpixel.exceptions import PrisjaktAPIError, RateLimit
from django_pjpixel.logtext import one_line

# The client's logger, where these warnings were always logged.
logger = logging.getLogger("django_pjpixel.client")

# Keys under which a listing may wrap its events ([open] in the API notes).
_LIST_KEYS = ("events", "data", "items", "results")


@dataclass(frozen=True)
class EventPage:
    """One page of a listing, with page numbers taken from its ``Link`` header.

    ``events`` are the listing's event objects as Prisjakt sends them
    (``{"id": ..., "external_event_id": ..., "event_name": ..., "event_time":
    ..., "data": {...}}`` [docs]). ``page`` is the number asked for; ``first``,
    ``prev``, ``next`` and ``last`` are the ``page`` parameters of those links,
    None where a link is absent, off the API or has no page number. ``links``
    maps each safe relation to its absolute URL. ``rate_limit`` and
    ``request_id`` are those of the answer.
    """

    events: list[dict[str, Any]]
    page: int
    first: int | None = None
    prev: int | None = None
    next: int | None = None
    last: int | None = None
    links: dict[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    request_id: str | None = None


class Pager:
    """Turns listing answers of the API at ``api_url`` into ``EventPage``s."""

    def __init__(self, api_url: str) -> None:
        self._api_url = api_url
        self._origin = origin(api_url)
        self._base_path = urlsplit(api_url).path.rstrip("/")

    def page(self, response: requests.Response, data: Any, page: int) -> EventPage:
        """The page ``page`` that ``response`` answered, ``data`` being its decoded body.

        Raises a non-retryable ``PrisjaktAPIError`` when ``data`` holds no list
        of events (see ``_events_of``).
        """
        events = _events_of(data)
        links = self.links(response)
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

    def links(self, response: requests.Response) -> dict[str, str]:
        """The ``Link`` targets that stay on the configured origin and base path.

        ``{rel: absolute URL}``, the header parsed per RFC 8288 (``links.py``):
        every relation of a ``rel``, relative targets resolved against the
        page's URL, the first link of a relation kept. A target on another
        origin (RFC 6454: scheme, host and port, a default port being the same
        as none), with user info, outside the base path, with a dot segment or
        with whitespace is left out with a warning, as is a link about another
        resource (its ``anchor``). Never raises.
        """
        safe: dict[str, str] = {}
        base = response.url or self._api_url
        for link in parse_links([response.headers.get("Link") or ""], base):
            for rel in link.rels:
                if rel in safe:
                    continue
                if link.about_this_resource and self._on_the_api(link.target):
                    safe[rel] = link.target
                else:
                    logger.warning("pjpixel: ignored a %s link outside the API", one_line(rel))
        return safe

    def _on_the_api(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            same_origin = origin(url) == self._origin
        except ValueError:
            return False
        return (
            same_origin
            and parts.username is None
            and parts.password is None
            and "@" not in parts.netloc
            and parts.path.startswith(self._base_path + "/")
            and not _has_dot_segment(parts.path)
            and not any(ch in url for ch in "\r\n\t ")
        )


def walk_events(
    first_url: str, fetch: Callable[[str, int], EventPage], *, max_pages: int
) -> Iterator[dict[str, Any]]:
    """Every event of a listing, from ``first_url`` along ``rel="next"`` links, each once.

    ``fetch(url, number)`` gets one page. Events are de-duplicated by ``id``
    (by their whole content when they have none), because pages are not
    stable [docs]. The walk ends without a ``next`` link, at a URL already
    fetched, or after ``max_pages`` pages (with a warning). Errors of ``fetch``
    propagate, after the events of the earlier pages were yielded.
    """
    page = fetch(first_url, 1)
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
        if pages >= max_pages:
            logger.warning("pjpixel: stopped listing events at the page cap (%d)", pages)
            return
        seen_urls.add(next_url)
        pages += 1
        page = fetch(next_url, page.next or page.page + 1)


def _events_of(data: Any) -> list[dict[str, Any]]:
    """The events of a listing body: a bare list, or a list under one key of an object.

    Whether Prisjakt wraps the list, and under which key, is [open]: ``events``,
    ``data``, ``items`` and ``results`` are tried in that order, then an
    object's only list. Items that are not objects are dropped. Raises a
    non-retryable ``PrisjaktAPIError`` when there is no such list.
    """
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
    """The ``page`` query parameter of ``url`` (the last one), when it is a number ≥ 1 [seed]."""
    values = parse_qs(urlsplit(url).query).get("page")
    if not values:
        return None
    try:
        number = int(values[-1])
    except ValueError:
        return None
    return number if number >= 1 else None


def _has_dot_segment(path: str) -> bool:
    return any(seg in (".", "..") for seg in unquote(path).split("/"))


def readable_events(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The events whose ``event_time`` can be shown, and the ids of the others.

    An ``event_time`` that looks like a time but is none (``2025-02-30T10:00:00Z``)
    or lies past the year 9999 in UTC or in the current time zone
    (``9999-12-31T23:30-05:00``) is left out, with a warning naming the events.
    A missing or malformed one is kept (shown blank).
    """
    kept: list[dict[str, Any]] = []
    skipped: list[str] = []
    for event in events:
        value = event.get("event_time")
        try:
            when = parse_datetime(value) if isinstance(value, str) else None
            if when is not None and timezone.is_aware(when):
                timezone.localtime(when.astimezone(dt_timezone.utc))
        except (ValueError, OverflowError):
            event_id = event.get("id")
            skipped.append(event_id if isinstance(event_id, str) else "?")
            continue
        kept.append(event)
    if skipped:
        logger.warning(
            "pjpixel: left out events whose event_time is no time: %s", one_line(skipped)
        )
    return kept, skipped
