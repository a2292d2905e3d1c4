from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from django.test import override_settings
from responses import matchers

from django_pjpixel import __version__
from django_pjpixel.api.client import ApiResult, PrisjaktClient, get_client
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktConnectionError,
    PrisjaktRedirectRefused,
    PrisjaktTimeout,
    RateLimit,
)
from tests import seed
from tests.helpers import body_of, seed_payload

API = "https://api.pj.nu/click-conversion"
TOKEN_URL = "https://auth.pj.nu/oauth2/token"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
EVENTS_URL = f"{API}/pixels/{PIXEL}/events"
CLICK_ID = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
UTC = timezone.utc

# The seed's cURL body, with its placeholders filled in.
SEED_BODY = seed.body("order-10045", CLICK_ID)

# The end of the seed's listing range.
SEED_END = datetime(2023, 4, 21, 17, 32, 28, tzinfo=UTC)


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


def timeout_of(call: Any) -> Any:
    """The ``timeout`` the request was sent with (``responses`` keeps the send kwargs)."""
    return call.request.req_kwargs["timeout"]


# -- the seed -------------------------------------------------------------------


def test_seed_create_event_sends_the_curl_body(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(
        EVENTS_URL,
        status=201,
        json={"id": "e1"},
        headers={"request-id": "rid-1"},
        match=[
            matchers.json_params_matcher(json.loads(SEED_BODY), strict_match=True),
            matchers.header_matcher(
                {
                    "client-id": "test-client",
                    "client-secret": SECRET,
                    "Content-Type": "application/json",
                    "User-Agent": f"django-pjpixel/{__version__}",
                    "Accept": "application/json",
                }
            ),
        ],
    )

    result = client.create_event(seed_payload())

    assert result == ApiResult(status=201, data={"id": "e1"}, request_id="rid-1")
    (call,) = api.calls
    assert call.request.method == "POST"
    assert call.request.url == EVENTS_URL
    assert json.loads(body_of(call)) == json.loads(SEED_BODY)
    assert "Authorization" not in call.request.headers


# -- headers, timeouts, session -------------------------------------------------


def test_timeouts_from_settings_on_every_request(api: responses.RequestsMock) -> None:
    with override_settings(
        PJPIXEL={"PIXEL_ID": PIXEL, "CONNECT_TIMEOUT": 1.5, "READ_TIMEOUT": 7, "AUTH": "oauth2"}
    ):
        client = PrisjaktClient()
    api.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 3600})
    api.post(EVENTS_URL, status=201)
    api.get(f"{API}/events/e1", json={"id": "e1"})

    client.create_event(seed_payload())
    client.get_event("e1")

    assert len(api.calls) == 3
    for call in api.calls:
        assert timeout_of(call) == (1.5, 7.0)


def test_default_timeouts(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.get(f"{API}/events/e1", json={})
    client.get_event("e1")
    assert timeout_of(api.calls[0]) == (3.05, 10.0)


def test_one_session_is_reused(api: responses.RequestsMock) -> None:
    api.get(f"{API}/events/e1", json={})
    with mock.patch("requests.Session", wraps=requests.Session) as session_cls:
        client = PrisjaktClient()
        session = client.session
        with mock.patch.object(session, "request", wraps=session.request) as request:
            client.get_event("e1")
            client.get_event("e1")
            client.get_event("e1")
    assert session_cls.call_count == 1
    assert request.call_count == 3
    assert client.session is session


def test_a_given_session_is_used(api: responses.RequestsMock) -> None:
    session = requests.Session()
    client = PrisjaktClient(session=session)
    assert client.session is session
    assert session.headers["User-Agent"] == f"django-pjpixel/{__version__}"
    client.close()


def test_missing_pixel_id_fails_loudly_before_any_request(api: responses.RequestsMock) -> None:
    with override_settings(PJPIXEL={"CLIENT_ID": "c"}), pytest.raises(PjpixelConfigurationError):
        PrisjaktClient(pixel_id="").create_event(seed_payload())
    assert len(api.calls) == 0


# -- endpoints ------------------------------------------------------------------


def test_endpoints_build_quoted_urls(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.get(re.compile(r"https://api\.pj\.nu/.*"), json={"ok": True})

    client.get_event("a/b c")
    client.get_click(CLICK_ID)
    client.get_client()
    client.get_client("other?x")
    client.list_pixels("12 3/..")

    assert [c.request.url for c in api.calls] == [
        f"{API}/events/a%2Fb%20c",
        f"{API}/clicks/{CLICK_ID}",
        f"{API}/clients/test-client",
        f"{API}/clients/other%3Fx",
        f"{API}/shops/12%203%2F../pixels",
    ]
    assert all(c.request.method == "GET" for c in api.calls)


def test_get_client_answer(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.get(f"{API}/clients/test-client", json={"id": "test-client", "roles": ["shop_user"]})
    assert client.get_client().data == {"id": "test-client", "roles": ["shop_user"]}


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ("get_event", "event_id"),
        ("get_click", "click_id"),
        ("list_pixels", "shop_id"),
    ],
)
def test_empty_path_segments_are_refused(
    api: responses.RequestsMock, client: PrisjaktClient, method: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        getattr(client, method)("")
    assert info.value.field == field
    assert len(api.calls) == 0


def test_get_client_without_client_id(api: responses.RequestsMock) -> None:
    with pytest.raises(InvalidInput) as info:
        PrisjaktClient(client_id="").get_client()
    assert info.value.field == "client_id"
    assert len(api.calls) == 0


def test_create_events_patches_a_list(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.patch(EVENTS_URL, status=204)
    payloads = [seed_payload(), seed_payload(external_event_id="order-2")]

    result = client.create_events(payloads)

    assert result == ApiResult(status=204)
    assert json.loads(body_of(api.calls[0])) == payloads


def test_result_carries_rate_limit(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.post(
        EVENTS_URL,
        status=201,
        headers={
            "X-RateLimit-Limit": "10000",
            "X-RateLimit-Remaining": "9999",
            "X-RateLimit-Reset": "3600000",
        },
    )
    result = client.create_event(seed_payload())
    assert result.rate_limit == RateLimit(limit=10000, remaining=9999, reset_ms=3_600_000)
    assert result.data is None


# -- network errors, redirects --------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (requests.ConnectTimeout("connect timed out"), PrisjaktTimeout),
        (requests.ReadTimeout("read timed out"), PrisjaktTimeout),
        (requests.ConnectionError("connection refused"), PrisjaktConnectionError),
        (requests.exceptions.SSLError("bad certificate"), PrisjaktConnectionError),
        (requests.exceptions.ChunkedEncodingError("cut short"), PrisjaktConnectionError),
    ],
)
def test_network_errors_are_retryable_and_name_their_cause(
    api: responses.RequestsMock,
    client: PrisjaktClient,
    exc: Exception,
    cls: type[PrisjaktAPIError],
) -> None:
    api.post(EVENTS_URL, body=exc)

    with pytest.raises(cls) as info:
        client.create_event(seed_payload())

    err = info.value
    assert type(err) is cls
    assert err.retryable is True
    assert err.status is None
    # Named, not chained: the cause's traceback holds urllib3's frames, whose
    # locals carry the request's headers (the secret) to a debug page.
    assert type(exc).__name__ in str(err)
    assert err.__cause__ is None
    assert err.__context__ is None
    assert f"POST /click-conversion/pixels/{PIXEL}/events" in str(err)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(
    api: responses.RequestsMock, client: PrisjaktClient, status: int
) -> None:
    api.post(EVENTS_URL, status=status, headers={"Location": "https://evil.example/steal"})
    stolen = api.post("https://evil.example/steal", status=201)
    stolen_get = api.get("https://evil.example/steal", status=200)

    with pytest.raises(PrisjaktRedirectRefused) as info:
        client.create_event(seed_payload())

    assert info.value.status == status
    assert info.value.retryable is False
    assert len(api.calls) == 1
    assert stolen.call_count == 0
    assert stolen_get.call_count == 0


# -- listing --------------------------------------------------------------------


START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("page", [0, -1, True, "2", 1.0])
def test_listing_page_must_be_a_whole_number(
    api: responses.RequestsMock, client: PrisjaktClient, page: Any
) -> None:
    with pytest.raises(InvalidInput) as info:
        client.list_events(start=START, end=START, page=page)
    assert info.value.field == "page"
    assert len(api.calls) == 0


def test_listing_query(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.get(EVENTS_URL, json=[], headers={"X-RateLimit-Remaining": "5", "request-id": "r1"})
    stockholm = ZoneInfo("Europe/Stockholm")

    page = client.list_events(
        start=datetime(2023, 4, 1, 19, 32, 28, 500000, tzinfo=stockholm),
        end=SEED_END,
        page=3,
    )

    assert api.calls[0].request.url == (
        f"{EVENTS_URL}?from=2023-04-01T17%3A32%3A28.500Z&to=2023-04-21T17%3A32%3A28.000Z&page=3"
    )
    assert page.page == 3
    assert page.rate_limit == RateLimit(remaining=5)
    assert page.request_id == "r1"


# -- get_client -----------------------------------------------------------------


def test_get_client_is_one_per_thread() -> None:
    first = get_client()
    assert get_client() is first
    assert first.pixel_id == PIXEL

    others: list[PrisjaktClient] = []
    thread = threading.Thread(target=lambda: others.append(get_client()))
    thread.start()
    thread.join()
    assert others[0] is not first
    assert get_client() is first


def test_get_client_follows_settings_changes() -> None:
    before = get_client()
    with override_settings(
        PJPIXEL={"PIXEL_ID": "other-pixel", "CLIENT_ID": "c2", "CLIENT_SECRET": "s2"}
    ):
        during = get_client()
        assert during is not before
        assert during.pixel_id == "other-pixel"
        assert during.client_id == "c2"
        assert get_client() is during
    after = get_client()
    assert after is not during
    assert after.pixel_id == PIXEL


def test_get_client_follows_timeout_changes() -> None:
    before = get_client()
    with override_settings(PJPIXEL={"PIXEL_ID": PIXEL, "READ_TIMEOUT": 99}):
        assert get_client() is not before
        assert get_client().timeout == (3.05, 99.0)


@pytest.mark.parametrize("method", ["create_event", "create_events"])
def test_a_write_accepted_with_an_unreadable_body_is_still_accepted(method: str) -> None:
    """A 2xx to a write means Prisjakt has the event, whatever its body says."""
    client = PrisjaktClient()
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST if method == "create_event" else responses.PATCH,
            f"{API}/pixels/{PIXEL}/events",
            body="<html>created</html>",
            status=201 if method == "create_event" else 200,
        )
        payload = {"event_name": "purchase"}
        result = (
            client.create_event(payload)
            if method == "create_event"
            else client.create_events([payload])
        )
    assert result.status in (200, 201)
    assert result.data is None
