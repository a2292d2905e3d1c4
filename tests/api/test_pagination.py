"""Listing pages (``django_pjpixel.api.pagination``): bodies, ``Link`` pages, the origin."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.test import override_settings

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import PrisjaktAPIError, PrisjaktServerError
from tests import seed

API = "https://api.pj.nu/click-conversion"
DEV_API = "https://dev-api.pj.nu/click-conversion"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
EVENTS_URL = f"{API}/pixels/{PIXEL}/events"
UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)

# The seed's Link header, on page 7 of 7.
SEED_LINK = seed.LINK
SEED_QUERY = "from=2023-04-01T17%3A32%3A28.000Z&to=2023-04-21T17%3A32%3A28.000Z"
SEED_START = datetime(2023, 4, 1, 17, 32, 28, tzinfo=UTC)
SEED_END = datetime(2023, 4, 21, 17, 32, 28, tzinfo=UTC)


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_seed_link_header_on_the_last_page(api: responses.RequestsMock) -> None:
    client = PrisjaktClient(api_url=DEV_API)
    api.get(f"{DEV_API}/pixels/{PIXEL}/events", json=[], headers={"Link": SEED_LINK})

    page = client.list_events(start=SEED_START, end=SEED_END, page=7)

    assert api.calls[0].request.url == f"{DEV_API}/pixels/{PIXEL}/events?{SEED_QUERY}&page=7"
    assert (page.page, page.first, page.prev, page.next, page.last) == (7, 1, 6, None, 7)
    assert set(page.links) == {"first", "prev", "last"}
    assert page.events == []


def test_seed_link_header_from_another_host_is_ignored(api: responses.RequestsMock) -> None:
    client = PrisjaktClient()  # api.pj.nu: the seed's dev-api.pj.nu links are another host
    api.get(EVENTS_URL, json=[], headers={"Link": SEED_LINK})

    page = client.list_events(start=SEED_START, end=SEED_END, page=7)

    assert page.links == {}
    assert (page.first, page.prev, page.next, page.last) == (None, None, None, None)


EVENT_A = {"id": "a", "event_name": "purchase", "data": {"amount": 1}}


EVENT_B = {"id": "b", "event_name": "purchase", "data": {"amount": 2}}


@pytest.mark.parametrize(
    "body",
    [
        [EVENT_A, EVENT_B],
        {"events": [EVENT_A, EVENT_B], "total": 2},
        {"data": [EVENT_A, EVENT_B], "links": {}},
        {"items": [EVENT_A, EVENT_B]},
        {"results": [EVENT_A, EVENT_B]},
        {"page": 1, "something": [EVENT_A, EVENT_B]},
        [EVENT_A, "junk", 3, None, EVENT_B],
    ],
)
def test_listing_bodies(api: responses.RequestsMock, client: PrisjaktClient, body: Any) -> None:
    api.get(EVENTS_URL, json=body)
    assert client.list_events(start=START, end=START).events == [EVENT_A, EVENT_B]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"count": 2}),
        json.dumps({"a": [], "b": []}),
        json.dumps("events"),
        json.dumps(None),
        "<html>not json</html>",
        "",
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_listing_garbage_is_an_api_error(
    api: responses.RequestsMock, client: PrisjaktClient, body: str
) -> None:
    api.get(EVENTS_URL, body=body)
    with pytest.raises(PrisjaktAPIError) as info:
        client.list_events(start=START, end=START)
    assert info.value.retryable is False


def pages_callback(
    pages: dict[int, tuple[list[dict[str, Any]], str | None]],
) -> Any:
    """A listing whose page ``n`` holds ``pages[n]``: events and a Link header."""

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        number = int(query_of(str(request.url)).get("page", ["1"])[0])
        events, link = pages[number]
        headers = {"Link": link} if link else {}
        return 200, headers, json.dumps(events)

    return callback


def next_link(page: int, base: str = EVENTS_URL) -> str:
    return f'<{base}?page={page}>; rel="next"'


def test_iter_events_follows_next_and_deduplicates(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    c = {"id": "c"}
    api.add_callback(
        responses.GET,
        EVENTS_URL,
        callback=pages_callback(
            {
                1: ([EVENT_A, EVENT_B], next_link(2) + ', <https://x.example/>; rel="last"'),
                2: ([EVENT_B, c], f'<?page=3>; rel="next", <{EVENTS_URL}?page=1>; rel="first"'),
                3: ([c, EVENT_A, {"no": "id"}, {"no": "id"}], None),
            }
        ),
    )

    events = list(client.iter_events(start=START, end=START + timedelta(days=1)))

    assert events == [EVENT_A, EVENT_B, c, {"no": "id"}]
    assert [query_of(str(call.request.url))["page"] for call in api.calls] == [["1"], ["2"], ["3"]]


@pytest.mark.parametrize(
    "link",
    [
        next_link(2, f"https://evil.example/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, f"http://api.pj.nu/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, f"https://user:pw@api.pj.nu/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, f"https://user@api.pj.nu/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, f"https://api.pj.nu:8443/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, f"https://api.pj.nu.evil.example/click-conversion/pixels/{PIXEL}/events"),
        next_link(2, "https://api.pj.nu/admin/events"),
        next_link(2, "https://api.pj.nu/click-conversionX/events"),
        next_link(2, "https://api.pj.nu/click-conversion/../admin"),
        next_link(2, "https://api.pj.nu/click-conversion/%2e%2e/admin"),
        '<//evil.example/x?page=2>; rel="next"',
        '<../../../admin?page=2>; rel="next"',
        '<https://[::1]/click-conversion/x?page=2>; rel="next"',
        '<https://[::1/click-conversion/x?page=2>; rel="next"',
        '<https://api.pj.nu:99999/click-conversion/x?page=2>; rel="next"',
        '<javascript:alert(1)>; rel="next"',
        '<mailto:x@api.pj.nu>; rel="next"',
        "garbage",
        "<>; rel=next",
        '<https://api.pj.nu/click-conversion/pixels/x/events?page=2\\r\\nX: y>; rel="next"',
    ],
)
def test_iter_events_refuses_links_off_the_origin(
    api: responses.RequestsMock, client: PrisjaktClient, link: str
) -> None:
    api.add_callback(
        responses.GET,
        re.compile(r".*"),
        callback=pages_callback({1: ([EVENT_A], link), 2: ([EVENT_B], None)}),
    )

    assert list(client.iter_events(start=START, end=START)) == [EVENT_A]
    assert len(api.calls) == 1


@pytest.mark.parametrize(
    "page_2",
    [
        # Issue 11: a default port written out was refused, and the reader stopped.
        f"https://api.pj.nu:443/click-conversion/pixels/{PIXEL}/events",
        f"HTTPS://Api.PJ.nu:443/click-conversion/pixels/{PIXEL}/events",
        f"https://api.pj.nu./click-conversion/pixels/{PIXEL}/events",
    ],
)
def test_iter_events_follows_a_link_on_the_same_origin_written_otherwise(
    api: responses.RequestsMock, client: PrisjaktClient, page_2: str
) -> None:
    api.add_callback(
        responses.GET,
        re.compile(r".*"),
        callback=pages_callback({1: ([EVENT_A], next_link(2, page_2)), 2: ([EVENT_B], None)}),
    )
    events = list(client.iter_events(start=START, end=START))
    if ".nu./" in page_2:  # another host to RFC 6454: not followed
        assert events == [EVENT_A]
    else:
        assert events == [EVENT_A, EVENT_B]
        assert len(api.calls) == 2


def test_iter_events_accepts_relative_and_same_origin_links(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.add_callback(
        responses.GET,
        EVENTS_URL,
        callback=pages_callback(
            {
                1: ([EVENT_A], '<events?page=2>; rel="next"'),
                2: (
                    [EVENT_B],
                    next_link(3, f"HTTPS://API.PJ.NU/click-conversion/pixels/{PIXEL}/events"),
                ),
                3: ([{"id": "c"}], None),
            }
        ),
    )
    assert [e["id"] for e in client.iter_events(start=START, end=START)] == ["a", "b", "c"]
    assert len(api.calls) == 3


def test_iter_events_stops_on_a_repeated_url(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    first = client._list_url(START, START, 1)
    api.add_callback(
        responses.GET,
        EVENTS_URL,
        callback=pages_callback(
            {
                1: ([EVENT_A], next_link(2)),
                2: ([EVENT_B], f'<{first}>; rel="next"'),
            }
        ),
    )
    assert list(client.iter_events(start=START, end=START)) == [EVENT_A, EVENT_B]
    assert len(api.calls) == 2


def test_iter_events_stops_on_a_page_linking_itself(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.add_callback(
        responses.GET,
        EVENTS_URL,
        callback=pages_callback({1: ([EVENT_A], next_link(2)), 2: ([EVENT_B], next_link(2))}),
    )
    assert list(client.iter_events(start=START, end=START)) == [EVENT_A, EVENT_B]
    assert len(api.calls) == 2


def endless(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    number = int(query_of(str(request.url))["page"][0])
    return 200, {"Link": next_link(number + 1)}, json.dumps([{"id": str(number)}])


def test_iter_events_stops_at_the_page_cap(api: responses.RequestsMock) -> None:
    api.add_callback(responses.GET, EVENTS_URL, callback=endless)
    client = PrisjaktClient(max_pages=3)

    assert [e["id"] for e in client.iter_events(start=START, end=START)] == ["1", "2", "3"]
    assert len(api.calls) == 3


def test_page_cap_from_settings(api: responses.RequestsMock) -> None:
    api.add_callback(responses.GET, EVENTS_URL, callback=endless)
    with override_settings(PJPIXEL={"PIXEL_ID": PIXEL, "MAX_PAGES": 5}):
        client = PrisjaktClient()
    assert len(list(client.iter_events(start=START, end=START))) == 5
    assert len(api.calls) == 5


def test_page_numbers_come_only_from_a_page_parameter(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    links = ", ".join(
        [
            f'<{EVENTS_URL}?cursor=x&page=2>; rel="next"',
            f'<{EVENTS_URL}?page=0>; rel="prev"',
            f'<{EVENTS_URL}?page=zz>; rel="last"',
            f'<{EVENTS_URL}?cursor=y>; rel="first"',
        ]
    )
    api.get(EVENTS_URL, json=[], headers={"Link": links})

    page = client.list_events(start=START, end=START)

    assert (page.first, page.prev, page.next, page.last) == (None, None, 2, None)
    assert set(page.links) == {"first", "prev", "next", "last"}


def test_unparsable_link_header_is_ignored(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.get(EVENTS_URL, json=[EVENT_A], headers={"Link": "<"})
    with mock.patch.object(
        requests.Response, "links", new_callable=mock.PropertyMock, side_effect=ValueError
    ):
        page = client.list_events(start=START, end=START)
    assert page.links == {}
    assert page.events == [EVENT_A]


def test_iter_events_error_on_a_later_page(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.get(EVENTS_URL, json=[EVENT_A], headers={"Link": next_link(2)})
    api.get(EVENTS_URL, status=503, body="busy")
    events = client.iter_events(start=START, end=START)
    assert next(events) == EVENT_A
    with pytest.raises(PrisjaktServerError):
        next(events)
