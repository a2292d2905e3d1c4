"""``PrisjaktClient`` against the emulator (the ``pjpixel_api`` fixture): every endpoint, every
documented error, OAuth2, and the seed's cURL body byte for byte in meaning."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from django_pjpixel.api.client import PrisjaktClient, purchase_payload
from django_pjpixel.exceptions import (
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConflict,
    PrisjaktConnectionError,
    PrisjaktNotFound,
    PrisjaktRateLimited,
    PrisjaktRedirectRefused,
    PrisjaktServerError,
    PrisjaktTimeout,
    PrisjaktValidationError,
)
from django_pjpixel.testing.emulator import REDACTED, PrisjaktEmulator
from django_pjpixel.testing.responses_adapter import EmulatorMock, read_timeout
from tests.seed import BODY as SEED_BODY

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
EVENT_TIME = datetime(2025, 3, 13, 10, 45, 46, 987000, tzinfo=timezone.utc)
START = datetime(2025, 3, 1, tzinfo=timezone.utc)
END = datetime(2025, 3, 31, tzinfo=timezone.utc)


def payload(order: str = "order-1", **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "external_event_id": order,
        "amount": 1234,
        "currency": "SEK",
        "number_of_items": 4,
        "event_time": EVENT_TIME,
        "signed_click_id": CLICK,
    }
    kwargs.update(overrides)
    return purchase_payload(**kwargs)


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


def seed_events(emulator: PrisjaktEmulator, count: int) -> list[dict[str, Any]]:
    return [
        emulator.add_event(
            PIXEL, event_time=START + timedelta(hours=i), external_event_id=f"e{i:02d}"
        )
        for i in range(count)
    ]


# -- the fixture ----------------------------------------------------------------


def test_fixture_is_configured_from_settings(pjpixel_api: PrisjaktEmulator) -> None:
    assert pjpixel_api.base_url == "https://api.pj.nu/click-conversion"
    assert pjpixel_api.token_url == "https://auth.pj.nu/oauth2/token"
    assert pjpixel_api.state()["pixels"] == [PIXEL]


def test_fixture_lets_nothing_else_through(pjpixel_api: PrisjaktEmulator) -> None:
    import requests

    with pytest.raises(requests.ConnectionError, match="Connection refused by Responses"):
        requests.get("https://example.com/", timeout=1)


def test_plugin_imports_without_settings_or_responses() -> None:
    # The plugin loads in every pytest run of a shop: it must need neither Django settings
    # nor ``responses`` until the fixture is used.
    code = (
        "import sys; sys.modules['responses'] = None; "
        "import django_pjpixel.testing.pytest_plugin as p; "
        "from django.conf import settings; "
        "assert not settings.configured; assert callable(p.pjpixel_api); print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_plugin_module_body(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same in-process (the entry point loads the plugin before coverage starts).
    monkeypatch.setitem(sys.modules, "responses", None)
    import django_pjpixel.testing.pytest_plugin as plugin

    namespace = runpy.run_path(str(plugin.__file__))
    assert callable(namespace["emulator_from_settings"])
    assert "pjpixel_api" in namespace


def test_emulator_mock_without_token_url() -> None:
    import requests

    emulator = PrisjaktEmulator(token_url=None, pixels={PIXEL})
    with EmulatorMock(emulator) as active:
        assert active is emulator
        with pytest.raises(requests.ConnectionError):
            requests.post("https://auth.pj.nu/oauth2/token", timeout=1)
        assert requests.get(f"{emulator.base_url}/clicks/x", timeout=1).status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({}, None), ({"timeout": 2.5}, 2.5), ({"timeout": (1, 4)}, 4.0), ({"timeout": None}, None)],
)
def test_read_timeout(kwargs: dict[str, Any], expected: float | None) -> None:
    import requests

    request = requests.Request("GET", "https://api.pj.nu/").prepare()
    request.req_kwargs = kwargs  # type: ignore[attr-defined]
    assert read_timeout(request) == expected


def test_fixture_without_credentials(settings: Any) -> None:
    from django_pjpixel.testing.pytest_plugin import emulator_from_settings

    settings.PJPIXEL = {"API_URL": "http://localhost:9/x/"}
    emulator = emulator_from_settings()
    assert (emulator.base_url, emulator.state()["pixels"]) == ("http://localhost:9/x", [])


# -- endpoints ------------------------------------------------------------------


def test_create_event(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    result = client.create_event(payload())
    assert result.status == 201
    assert result.data == pjpixel_api.events[0]
    assert result.request_id == pjpixel_api.requests[0].request_id
    assert result.rate_limit is not None
    assert result.rate_limit.remaining == 9999
    sent = pjpixel_api.requests[0]
    assert (sent.method, sent.path) == ("POST", f"/pixels/{PIXEL}/events")
    assert sent.headers["client-id"] == "test-client"
    assert sent.headers["client-secret"] == REDACTED
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("django-pjpixel/")


def test_client_sends_exactly_the_seeds_curl_body(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    # The seed's --data, placeholders substituted: same keys, order, nesting and values.
    expected = json.loads(
        SEED_BODY.replace("<your-reference-or-order-id>", "order-1").replace(
            "<query-param-pjclid-sent-to-webpage>", CLICK
        )
    )
    client.create_event(payload())
    sent = pjpixel_api.requests[0].json
    assert sent == expected
    assert list(sent) == list(expected)
    assert list(sent["data"]) == list(expected["data"])
    assert sent["event_time"] == "2025-03-13T10:45:46.987Z"


def test_create_events_creates_and_updates(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    client.create_event(payload("order-1"))
    changed = payload("order-1", amount=99)
    result = client.create_events([changed, payload("order-2"), payload("order-3")])
    assert (result.status, result.data) == (204, None)
    events = pjpixel_api.events
    assert [e["external_event_id"] for e in events] == ["order-1", "order-2", "order-3"]
    assert events[0]["data"]["amount"] == 99
    assert pjpixel_api.requests[-1].json == [changed, payload("order-2"), payload("order-3")]


def test_list_events_one_page(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    seed_events(pjpixel_api, 3)
    page = client.list_events(start=START, end=END)
    assert [e["external_event_id"] for e in page.events] == ["e02", "e01", "e00"]
    assert (page.page, page.first, page.prev, page.next, page.last) == (1, None, None, None, None)
    assert page.links == {}
    assert page.request_id == pjpixel_api.requests[0].request_id
    assert pjpixel_api.requests[0].query == {
        "from": "2025-03-01T00:00:00.000Z",
        "to": "2025-03-31T00:00:00.000Z",
        "page": "1",
    }


def test_list_events_page_numbers_from_link(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    pjpixel_api.page_size = 2
    seed_events(pjpixel_api, 13)
    first = client.list_events(start=START, end=END)
    assert (first.first, first.prev, first.next, first.last) == (1, None, 2, 7)
    last = client.list_events(start=START, end=END, page=7)
    assert (last.first, last.prev, last.next, last.last) == (1, 6, None, 7)
    assert [e["external_event_id"] for e in last.events] == ["e00"]


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (2, 1), (13, 7)])
def test_iter_events_follows_every_page(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient, count: int, pages: int
) -> None:
    pjpixel_api.page_size = 2 if count > 2 else 50
    seed_events(pjpixel_api, count)
    events = list(client.iter_events(start=START, end=END))
    assert [e["external_event_id"] for e in events] == [f"e{i:02d}" for i in reversed(range(count))]
    assert [r.query["page"] for r in pjpixel_api.requests] == [str(p) for p in range(1, pages + 1)]


def test_iter_events_deduplicates_unstable_pages(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    pjpixel_api.page_size = 2
    pjpixel_api.unstable_pages = True
    seed_events(pjpixel_api, 13)
    events = list(client.iter_events(start=START, end=END))
    assert len(pjpixel_api.requests) == 7
    assert [e["external_event_id"] for e in events] == [f"e{i:02d}" for i in reversed(range(13))]


def test_iter_events_tolerates_a_wrapped_list(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    pjpixel_api.list_wrapper_key = "events"
    pjpixel_api.page_size = 2
    seed_events(pjpixel_api, 3)
    assert len(list(client.iter_events(start=START, end=END))) == 3


def test_get_event(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    created = client.create_event(payload()).data
    assert client.get_event(created["id"]).data == created


def test_get_click(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    click = pjpixel_api.add_click("239cd31f-9d43-4cb4-b8dc-2057fe18c289")
    assert client.get_click("239cd31f-9d43-4cb4-b8dc-2057fe18c289").data == click


def test_get_client(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    result = client.get_client()
    assert result.data == {"id": "test-client", "roles": ["event_publisher", "shop_user"]}
    with pytest.raises(PrisjaktNotFound):
        client.get_client("someone-else")


def test_list_pixels(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    assert client.list_pixels("1").data == [{"id": PIXEL, "shop_id": "1"}]


# -- documented errors ----------------------------------------------------------


def test_400_field_errors_are_parsed(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    body = payload()
    body["data"]["currency"] = "USD"
    body["event_time"] = "not a time"
    with pytest.raises(PrisjaktValidationError) as caught:
        client.create_event(body)
    error = caught.value
    assert error.status == 400
    assert error.retryable is False
    assert error.title == "Request validation failed"
    assert error.field_errors == {
        "event_time": {
            "message": "invalid ISO-8601 time (with a time zone)",
            "value": "not a time",
        },
        "data.currency": {
            "message": "must be one of: DKK, EUR, GBP, NOK, NZD, SEK",
            "value": "USD",
        },
    }
    assert error.request_id == pjpixel_api.requests[0].request_id
    assert "data.currency" in str(error)
    assert pjpixel_api.events == []


def test_401_wrong_secret(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient(client_secret="wrong-secret")
    with pytest.raises(PrisjaktAuthError) as caught:
        client.create_event(payload())
    assert (caught.value.status, caught.value.retryable) == (401, False)
    assert "wrong-secret" not in str(caught.value)


def test_403_without_the_shop_user_role(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    pjpixel_api.add_client("test-client", SECRET, ["event_publisher"])
    with pytest.raises(PrisjaktAuthError) as caught:
        client.create_events([payload()])
    assert caught.value.status == 403
    assert client.get_client().data["roles"] == ["event_publisher"]


def test_404_unknown_pixel(pjpixel_api: PrisjaktEmulator) -> None:
    with pytest.raises(PrisjaktNotFound) as caught:
        PrisjaktClient(pixel_id="no-such-pixel").create_event(payload())
    assert caught.value.title == "Pixel not found"
    with pytest.raises(PrisjaktNotFound):
        PrisjaktClient().get_event("00000000-0000-0000-0000-000000000000")


def test_409_already_recorded(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    client.create_event(payload())
    with pytest.raises(PrisjaktConflict) as caught:
        client.create_event(payload())
    assert (caught.value.status, caught.value.retryable) == (409, False)
    assert len(pjpixel_api.events) == 1


def test_429_rate_limit_with_retry_after(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient
) -> None:
    pjpixel_api.rate_limit = 1
    client.create_event(payload())
    with pytest.raises(PrisjaktRateLimited) as caught:
        client.create_event(payload("order-2"))
    error = caught.value
    assert (error.status, error.retryable, error.retry_after) == (429, True, 3600.0)
    assert error.rate_limit is not None
    assert (error.rate_limit.limit, error.rate_limit.remaining) == (1, 0)
    assert error.rate_limit.reset_ms is not None
    assert 3_590_000 < error.rate_limit.reset_ms <= 3_600_000


def test_429_scripted_retry_after(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    pjpixel_api.script([429])
    with pytest.raises(PrisjaktRateLimited) as caught:
        client.create_event(payload())
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_is_retryable(
    pjpixel_api: PrisjaktEmulator, client: PrisjaktClient, status: int
) -> None:
    pjpixel_api.script([status])
    with pytest.raises(PrisjaktServerError) as caught:
        client.create_event(payload())
    assert (caught.value.status, caught.value.retryable) == (status, True)
    assert pjpixel_api.events == []
    assert client.create_event(payload()).status == 201


def test_html_502_from_a_proxy(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    pjpixel_api.script([502])
    with pytest.raises(PrisjaktServerError) as caught:
        client.create_event(payload())
    error = caught.value
    assert (error.status, error.retryable, error.title) == (502, True, None)
    assert error.body_excerpt is not None
    assert "502 Bad Gateway" in error.body_excerpt
    assert "502 Bad Gateway" in str(error)


def test_redirect_is_never_followed(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    pjpixel_api.script([302])
    with pytest.raises(PrisjaktRedirectRefused):
        client.create_event(payload())
    assert len(pjpixel_api.requests) == 1


@pytest.mark.parametrize(
    ("step", "error_class"),
    [
        ("timeout", PrisjaktTimeout),
        ("connect_timeout", PrisjaktTimeout),
        ("reset", PrisjaktConnectionError),
    ],
)
def test_network_faults(
    pjpixel_api: PrisjaktEmulator,
    client: PrisjaktClient,
    step: str,
    error_class: type[PrisjaktAPIError],
) -> None:
    pjpixel_api.script([step])
    with pytest.raises(error_class) as caught:
        client.create_event(payload())
    assert (caught.value.status, caught.value.retryable) == (None, True)
    assert pjpixel_api.events == []


def test_latency_beyond_the_read_timeout(pjpixel_api: PrisjaktEmulator) -> None:
    slept: list[float] = []
    pjpixel_api.sleep = slept.append
    pjpixel_api.latency = 5.0
    with pytest.raises(PrisjaktTimeout):
        PrisjaktClient(timeout=(1.0, 0.5)).create_event(payload())
    assert slept == [0.5]
    # The API did its work; only the answer came too late: the resend is a 409.
    assert len(pjpixel_api.events) == 1
    pjpixel_api.latency = 0.01
    with pytest.raises(PrisjaktConflict):
        PrisjaktClient(timeout=(1.0, 0.5)).create_event(payload())
    assert slept == [0.5, 0.01]


def test_latency_is_really_slept(pjpixel_api: PrisjaktEmulator, client: PrisjaktClient) -> None:
    import time

    pjpixel_api.latency = 0.05
    began = time.monotonic()
    client.get_client()
    assert time.monotonic() - began >= 0.05


# -- OAuth2 ------------------------------------------------------------------------


def _token_requests(emulator: PrisjaktEmulator) -> int:
    return sum(1 for r in emulator.requests if r.path == "/oauth2/token")


def test_oauth2_token_fetched_once_and_cached(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient(auth="oauth2")
    client.create_event(payload())
    client.get_client()
    client.list_events(start=START, end=END)
    assert _token_requests(pjpixel_api) == 1
    token = pjpixel_api.tokens[0]
    api_calls = [r for r in pjpixel_api.requests if r.path != "/oauth2/token"]
    assert {r.headers["authorization"] for r in api_calls} == {f"Bearer {token}"}
    assert all("client-secret" not in r.headers for r in api_calls)
    assert pjpixel_api.requests[0].json["client_secret"] == REDACTED


def test_oauth2_refreshed_once_after_revoke(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient(auth="oauth2")
    client.get_client()
    pjpixel_api.revoke_tokens()
    assert client.create_event(payload()).status == 201
    assert _token_requests(pjpixel_api) == 2
    assert [r.status for r in pjpixel_api.requests] == [200, 200, 401, 200, 201]


def test_oauth2_gives_up_after_one_refresh(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient(auth="oauth2")
    client.get_client()
    pjpixel_api.script([401, 401], path="^/clients/")
    with pytest.raises(PrisjaktAuthError):
        client.get_client()
    assert _token_requests(pjpixel_api) == 2


def test_oauth2_wrong_secret(pjpixel_api: PrisjaktEmulator) -> None:
    client = PrisjaktClient(auth="oauth2", client_secret="wrong-secret")
    with pytest.raises(PrisjaktAuthError, match="refused the client credentials") as caught:
        client.create_event(payload())
    assert caught.value.status == 401
    assert pjpixel_api.events == []
