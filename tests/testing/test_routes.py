"""The API's endpoints in the emulator (``testing/routes.py``): credentials and
roles, the OAuth2 token endpoint, each path of the endpoint table, ``PATCH``
and the listing with its ``Link`` header, as ``/work/shared/prisjakt-api.md``
states them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from django_pjpixel.testing.clock import ManualClock
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.wire import REDACTED, EmulatorResponse
from tests.seed import LINK_LINE as SEED_LINK
from tests.seed import NOT_FOUND as SEED_NOT_FOUND
from tests.testing.test_emulator import (
    AUTH,
    CLICK,
    CLIENT,
    PIXEL,
    SECRET,
    call,
    field_errors_of,
    make_emulator,
    post,
    purchase,
)
from tests.testing.test_emulator import clock as clock  # fixtures, shared by name
from tests.testing.test_emulator import emu as emu


def listing(emulator: PrisjaktEmulator, **query: str) -> EmulatorResponse:
    return call(emulator, "GET", f"/pixels/{PIXEL}/events", query=query)


# -- Credentials and roles ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        pytest.param({}, "The client-id header is required", id="no-client-id"),
        pytest.param({"client-id": CLIENT}, "Invalid client credentials", id="no-secret"),
        pytest.param(
            {"client-id": CLIENT, "client-secret": "wrong"},
            "Invalid client credentials",
            id="wrong-secret",
        ),
        pytest.param(
            {"client-id": "nobody", "client-secret": SECRET},
            "Invalid client credentials",
            id="unknown-client",
        ),
        pytest.param(
            {"Authorization": "Bearer not-a-token"},
            "The bearer token is invalid or expired",
            id="bad-bearer",
        ),
        pytest.param(
            {"Authorization": "Basic dGVzdA=="},
            "The bearer token is invalid or expired",
            id="not-bearer",
        ),
    ],
)
def test_credentials_are_two_headers(
    emu: PrisjaktEmulator, headers: dict[str, str], detail: str
) -> None:
    # "Credentials are sent as two request headers, `client-id` and `client-secret` [seed]";
    # the project requires the secret on every request ([open] "most requests").
    response = post(emu, purchase(), headers=headers)
    assert response.status == 401
    body = response.json()
    assert body["title"] == "Unauthorized"
    assert body["detail"] == detail
    assert emu.events == []


def test_header_names_are_case_insensitive(emu: PrisjaktEmulator) -> None:
    headers = {"Client-Id": CLIENT, "CLIENT-SECRET": SECRET}
    assert post(emu, purchase(), headers=headers).status == 201


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_roles_sending_needs_a_role_that_may(emu: PrisjaktEmulator, method: str) -> None:
    # "Roles of a client: `admin`, `shop_user`, `event_publisher` [docs]"; "the many-events
    # `PATCH` and the events listing require the `shop_user` role; the create-event page
    # names no role [portal]"
    body: Any = purchase() if method == "POST" else [purchase()]
    emu.add_client("nobody", "nobody-secret", [])
    nobody = {"client-id": "nobody", "client-secret": "nobody-secret"}
    reader = {"client-id": "reader", "client-secret": "reader-secret"}
    refused = call(emu, method, f"/pixels/{PIXEL}/events", body, headers=nobody)
    assert refused.status == 403
    assert refused.json()["title"] == "Forbidden"
    assert emu.events == []
    allowed = call(emu, method, f"/pixels/{PIXEL}/events", body, headers=reader)
    assert allowed.status in (201, 204)
    assert len(emu.events) == 1


@pytest.mark.parametrize(("method", "status"), [("POST", 201), ("PATCH", 403), ("GET", 403)])
def test_roles_an_event_publisher_may_post_only(
    emu: PrisjaktEmulator, method: str, status: int
) -> None:
    emu.add_client("publisher", "publisher-secret", ["event_publisher"])
    headers = {"client-id": "publisher", "client-secret": "publisher-secret"}
    body: Any = {"GET": None, "POST": purchase(), "PATCH": [purchase()]}[method]
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-20T00:00:00Z"}
    answer = call(emu, method, f"/pixels/{PIXEL}/events", body, headers=headers, query=query)
    assert answer.status == status


def test_roles_a_shop_user_may_list(emu: PrisjaktEmulator) -> None:
    reader = {"client-id": "reader", "client-secret": "reader-secret"}
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-20T00:00:00Z"}
    response = call(emu, "GET", f"/pixels/{PIXEL}/events", headers=reader, query=query)
    assert response.status == 200


def test_oauth2_client_credentials_token(emu: PrisjaktEmulator, clock: ManualClock) -> None:
    # "`POST https://auth.pj.nu/oauth2/token` with form fields `grant_type=client_credentials`,
    # `client_id`, `client_secret`, answering `{"access_token": "...", "expires_in": 86399,
    # "token_type": "bearer"}`, then `Authorization: Bearer <token>` [docs]"
    form = urlencode(
        {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
    ).encode()
    answer = emu.handle(
        "POST",
        "https://auth.pj.nu/oauth2/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        form,
    )
    assert answer.status == 200
    body = answer.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 86399
    assert body["token_type"] == "bearer"
    assert emu.tokens == [body["access_token"]]
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert post(emu, purchase(), headers=bearer).status == 201
    token_request = emu.requests[0]
    assert token_request.path == "/oauth2/token"
    assert token_request.json["client_secret"] == REDACTED
    assert SECRET not in repr(emu.requests)
    clock.advance(seconds=86399)
    assert post(emu, purchase(external_event_id="o2"), headers=bearer).status == 401


@pytest.mark.parametrize(
    ("method", "form", "status", "error"),
    [
        pytest.param("GET", {}, 405, "invalid_request", id="not-post"),
        pytest.param(
            "POST",
            {"grant_type": "password", "client_id": CLIENT, "client_secret": SECRET},
            400,
            "unsupported_grant_type",
            id="grant-type",
        ),
        pytest.param(
            "POST",
            {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": "x"},
            401,
            "invalid_client",
            id="wrong-secret",
        ),
        pytest.param(
            "POST",
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
            id="unknown-client",
        ),
    ],
)
def test_oauth2_token_refusals(
    emu: PrisjaktEmulator, method: str, form: dict[str, str], status: int, error: str
) -> None:
    answer = emu.handle(method, "https://auth.pj.nu/oauth2/token", {}, urlencode(form).encode())
    assert (answer.status, answer.json()) == (status, {"error": error})
    assert emu.tokens == []


# -- Endpoints --------------------------------------------------------------


def test_post_creates_one_event_201(emu: PrisjaktEmulator) -> None:
    # "`POST /pixels/{pixel_id}/events` | create one event [seed] | 201 created"
    response = post(emu, purchase())
    assert response.status == 201
    body = response.json()
    assert list(body) == [
        "id",
        "click_id",
        "external_event_id",
        "event_name",
        "event_time",
        "data",
        "signed_click_id",
    ]
    assert uuid.UUID(body["id"])
    assert body["click_id"] == "239cd31f-9d43-4cb4-b8dc-2057fe18c289"
    assert body["external_event_id"] == "order-1"
    assert body["event_name"] == "purchase"
    assert body["event_time"] == "2025-03-13T10:45:46.987Z"
    assert body["data"] == {"amount": 1234, "currency": "SEK", "number_of_items": 4}
    assert body["signed_click_id"] == CLICK
    assert response.headers["Location"] == f"/events/{body['id']}"
    assert emu.events == [body]
    assert emu.events_for(PIXEL) == [body]
    assert emu.events_for("other") == []


@pytest.mark.parametrize("method", ["POST", "PATCH", "GET"])
def test_unknown_pixel_is_404(emu: PrisjaktEmulator, method: str) -> None:
    # "404 unknown pixel [docs]"
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"}
    body: Any = {"POST": purchase(), "PATCH": [purchase()], "GET": None}[method]
    response = call(emu, method, "/pixels/nope/events", body, query=query)
    assert response.status == 404
    assert response.json()["title"] == "Pixel not found"
    assert response.json()["detail"] == "A pixel with ID nope could not be found"


def test_unknown_paths_and_methods(emu: PrisjaktEmulator) -> None:
    assert call(emu, "GET", "/nothing/here").status == 404
    assert call(emu, "GET", "").status == 404
    put = call(emu, "PUT", f"/pixels/{PIXEL}/events", purchase())
    assert (put.status, put.headers["Allow"]) == (405, "GET, PATCH, POST")
    for path in ("/events/x", "/clicks/x", "/clients/x", "/shops/1/pixels"):
        answer = call(emu, "DELETE", path)
        assert (answer.status, answer.headers["Allow"]) == (405, "GET")


def test_get_event_by_id(emu: PrisjaktEmulator) -> None:
    # "`GET /events/{event_id}` | one event by its id (a UUID) [docs] | 200; 401/403; 404"
    created = post(emu, purchase()).json()
    found = call(emu, "GET", f"/events/{created['id']}")
    assert (found.status, found.json()) == (200, created)
    missing = call(emu, "GET", f"/events/{uuid.uuid4()}")
    assert missing.status == 404
    assert missing.json()["title"] == "Event not found"
    assert call(emu, "GET", f"/events/{created['id']}", headers={}).status == 401


def test_get_click_by_id(emu: PrisjaktEmulator) -> None:
    # "`GET /clicks/{click_id}` | one click by its id [docs] | 200; 401/403; 404"
    assert call(emu, "GET", "/clicks/c-1").status == 404
    added = emu.add_click("c-1", source="test")
    assert added == {"id": "c-1", "timestamp": "2025-03-13T10:45:46.987Z", "source": "test"}
    assert call(emu, "GET", "/clicks/c-1").json() == added
    assert call(emu, "GET", "/clicks/c-1", headers={"client-id": CLIENT}).status == 401
    # Clicks seen in events are recorded too.
    post(emu, purchase())
    seen = call(emu, "GET", "/clicks/239cd31f-9d43-4cb4-b8dc-2057fe18c289")
    assert seen.status == 200
    assert seen.json()["pixel_id"] == PIXEL
    assert set(emu.clicks) == {"c-1", "239cd31f-9d43-4cb4-b8dc-2057fe18c289"}


def test_get_client_shows_who_the_credentials_are(emu: PrisjaktEmulator) -> None:
    # "`GET /clients/{client_id}` | who the credentials are: `{"id": "...", "roles":
    # ["shop_user"]}` [docs] | 200; 401; 404"
    reader = {"client-id": "reader", "client-secret": "reader-secret"}
    own = call(emu, "GET", "/clients/reader", headers=reader)
    assert (own.status, own.json()) == (200, {"id": "reader", "roles": ["shop_user"]})
    assert call(emu, "GET", f"/clients/{CLIENT}", headers=reader).status == 404
    assert call(emu, "GET", "/clients/nobody", headers=reader).status == 404
    wrong = {"client-id": "reader", "client-secret": "nope"}
    assert call(emu, "GET", "/clients/reader", headers=wrong).status == 401
    boss = {"client-id": "boss", "client-secret": "boss-secret-1"}
    assert call(emu, "GET", "/clients/reader", headers=boss).json()["id"] == "reader"


def test_get_shop_pixels(emu: PrisjaktEmulator) -> None:
    # "`GET /shops/{shop_id}/pixels` | a shop's pixels [docs] | 200; 401/403; 404"
    found = call(emu, "GET", "/shops/121/pixels")
    assert (found.status, found.json()) == (200, [{"id": PIXEL, "shop_id": "121"}])
    assert call(emu, "GET", "/shops/121/pixels", headers={}).status == 401
    emu.add_shop("7", [])
    assert call(emu, "GET", "/shops/7/pixels").json() == []


def test_shop_not_found_is_the_seeds_problem(emu: PrisjaktEmulator) -> None:
    # The seed's error example: "Shop not found", status 404, its detail and context.
    seed = json.loads(SEED_NOT_FOUND)
    response = call(emu, "GET", "/shops/121213/pixels")
    body = response.json()
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert list(body) == list(seed)
    assert list(body["context"]) == list(seed["context"])
    body["context"]["request-id"] = seed["context"]["request-id"]
    assert body == seed


def test_body_that_is_not_json(emu: PrisjaktEmulator) -> None:
    errors = field_errors_of(post(emu, None, raw=b"{not json"))
    assert errors == {"body": {"message": "invalid JSON", "value": "{not json"}}


# -- Many events (PATCH) ---------------------------------------------------


def test_patch_creates_many_and_answers_204(emu: PrisjaktEmulator) -> None:
    # "`PATCH /pixels/{pixel_id}/events` | create many events in one call ... | 204"
    response = call(
        emu,
        "PATCH",
        f"/pixels/{PIXEL}/events",
        [purchase(external_event_id=f"o{i}") for i in range(3)],
    )
    assert (response.status, response.body) == (204, b"")
    assert [e["external_event_id"] for e in emu.events] == ["o0", "o1", "o2"]


def test_patch_accepts_an_events_object(emu: PrisjaktEmulator) -> None:
    response = call(emu, "PATCH", f"/pixels/{PIXEL}/events", {"events": [purchase()]})
    assert response.status == 204
    assert len(emu.events) == 1
    assert call(emu, "PATCH", f"/pixels/{PIXEL}/events", []).status == 204


def test_patch_updates_an_existing_external_event_id(emu: PrisjaktEmulator) -> None:
    # "an event whose `external_event_id` already exists is updated instead [docs]"
    original = post(emu, purchase()).json()
    changed = purchase(data={"amount": 999, "currency": "EUR", "number_of_items": 1})
    changed["signed_click_id"] = None
    batch = [changed, purchase(external_event_id="o2"), purchase(external_event_id="o2")]
    assert call(emu, "PATCH", f"/pixels/{PIXEL}/events", batch).status == 204
    events = emu.events
    assert [e["external_event_id"] for e in events] == ["order-1", "o2"]
    assert events[0]["id"] == original["id"]
    assert events[0]["data"] == {"amount": 999, "currency": "EUR", "number_of_items": 1}
    assert events[0]["click_id"] is None


def test_patch_validates_all_and_stores_nothing(emu: PrisjaktEmulator) -> None:
    batch = [purchase(external_event_id=f"o{i}") for i in range(5)]
    batch[3]["data"]["currency"] = "USD"
    batch[1]["event_time"] = "soon"
    errors = field_errors_of(call(emu, "PATCH", f"/pixels/{PIXEL}/events", batch))
    assert errors == {
        "events[1].event_time": {
            "message": "invalid ISO-8601 time (with a time zone)",
            "value": "soon",
        },
        "events[3].data.currency": {
            "message": "must be one of: DKK, EUR, GBP, NOK, NZD, SEK",
            "value": "USD",
        },
    }
    assert emu.events == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param(
            {"event_name": "purchase"},
            {
                "body": {
                    "message": "must be a JSON array of events",
                    "value": {"event_name": "purchase"},
                }
            },
            id="object",
        ),
        pytest.param(
            ["x"], {"events[0]": {"message": "must be a JSON object", "value": "x"}}, id="item"
        ),
    ],
)
def test_patch_body_shape(emu: PrisjaktEmulator, body: Any, errors: dict[str, Any]) -> None:
    assert field_errors_of(call(emu, "PATCH", f"/pixels/{PIXEL}/events", body)) == errors


# -- Listing events ---------------------------------------------------------


def _seed_events(emulator: PrisjaktEmulator, count: int, start: datetime) -> list[dict[str, Any]]:
    return [
        emulator.add_event(
            PIXEL, event_time=start + timedelta(hours=i), external_event_id=f"e{i:02d}"
        )
        for i in range(count)
    ]


def test_list_newest_first_as_a_bare_list(emu: PrisjaktEmulator) -> None:
    # "newest events first [docs]"; the body is a bare JSON list ([open]).
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    _seed_events(emu, 3, start)
    emu.add_event(PIXEL, event_time="2025-03-01T00:30:00.000Z", external_event_id="late-same")
    emu.add_event(PIXEL, event_time=start - timedelta(days=1), external_event_id="before")
    response = listing(emu, **{"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"})
    assert response.status == 200
    body = response.json()
    assert isinstance(body, list)
    assert [e["external_event_id"] for e in body] == ["e02", "e01", "late-same", "e00"]
    assert "Link" not in response.headers


def test_listed_event_sample_keys(emu: PrisjaktEmulator) -> None:
    # "An event as listed: {"id", "click_id", "external_event_id", "event_name",
    # "event_time", "data": {"number_of_items": ..., ...}} [docs]"
    post(emu, purchase())
    body = listing(emu, **{"from": "2025-03-13T00:00:00Z", "to": "2025-03-14T00:00:00Z"}).json()
    assert len(body) == 1
    assert {"id", "click_id", "external_event_id", "event_name", "event_time", "data"} <= set(
        body[0]
    )
    assert body[0]["data"]["number_of_items"] == 4


def test_list_wrapper_key_option() -> None:
    emulator = make_emulator(list_wrapper_key="events")
    emulator.add_event(PIXEL, event_time="2025-03-01T00:00:00Z")
    body = listing(emulator, **{"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"})
    assert [e["event_time"] for e in body.json()["events"]] == ["2025-03-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        ("2025-01-01T00:00:00Z", "2025-03-02T00:00:00Z", True),  # exactly 60 days
        ("2025-01-01T00:00:00Z", "2025-03-02T00:00:00.001Z", False),
        ("2025-01-01T00:00:00+01:00", "2025-03-02T00:00:00+01:00", True),
    ],
)
def test_list_at_most_60_days(emu: PrisjaktEmulator, start: str, end: str, ok: bool) -> None:
    # "At most 60 days between `from` and `to` [docs]"
    response = listing(emu, **{"from": start, "to": end})
    if ok:
        assert response.status == 200
    else:
        assert field_errors_of(response) == {
            "to": {"message": "the range from from to to may span at most 60 days", "value": end}
        }


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        pytest.param(
            {},
            {
                "from": {"message": "required", "value": None},
                "to": {"message": "required", "value": None},
            },
            id="missing",
        ),
        pytest.param(
            {"from": "2025-03-01", "to": "2025-03-02T00:00:00Z"},
            {"from": {"message": "invalid ISO-8601 time", "value": "2025-03-01"}},
            id="not-iso",
        ),
        pytest.param(
            {"from": "2025-03-02T00:00:00Z", "to": "2025-03-01T00:00:00Z"},
            {"to": {"message": "must not be before from", "value": "2025-03-01T00:00:00Z"}},
            id="reversed",
        ),
        pytest.param(
            {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "page": "alfa"},
            {"page": {"message": "invalid integer", "value": "alfa"}},
            id="page-alfa",
        ),
        pytest.param(
            {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "page": "0"},
            {"page": {"message": "invalid integer", "value": "0"}},
            id="page-0",
        ),
    ],
)
def test_list_query_validation(
    emu: PrisjaktEmulator, query: dict[str, str], errors: dict[str, Any]
) -> None:
    # "`GET /pixels/{pixel_id}/events?from=<ISO time>&to=<ISO time>&page=<n>` [seed]"
    assert field_errors_of(listing(emu, **query)) == errors


def test_link_header_reproduces_the_seeds_example(clock: ManualClock) -> None:
    # "Here is a complete example of a link header when a user has visited the last page
    # (page 7 in this example)" [seed]
    emulator = make_emulator(clock, base_url="https://dev-api.pj.nu/click-conversion", page_size=3)
    _seed_events(emulator, 20, datetime(2023, 4, 2, tzinfo=timezone.utc))
    url = (
        "https://dev-api.pj.nu/click-conversion/pixels/5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
        "/events?from=2023-04-01T17%3A32%3A28.000Z&to=2023-04-21T17%3A32%3A28.000Z&page=7"
    )
    response = emulator.handle("GET", url, AUTH, None)
    assert response.status == 200
    assert f"Link: {response.headers['Link']}" == SEED_LINK
    assert len(response.json()) == 2


def test_link_header_rels_that_apply(emu: PrisjaktEmulator) -> None:
    # "links that do not apply are left out" [seed]
    emu.page_size = 2
    _seed_events(emu, 5, datetime(2025, 3, 1, tzinfo=timezone.utc))
    query = {"from": "2025-03-01T00:00:00.000Z", "to": "2025-03-02T00:00:00.000Z"}

    def rels(page: int) -> list[str]:
        link = listing(emu, **query, page=str(page)).headers["Link"]
        return [part.split('rel="')[1].rstrip('"') for part in link.split(", <")]

    assert rels(1) == ["first", "last", "next"]
    assert rels(2) == ["first", "last", "prev", "next"]
    assert rels(3) == ["first", "last", "prev"]
    link = listing(emu, **query, page="2").headers["Link"]
    assert link.endswith(
        f"/pixels/{PIXEL}/events?from=2025-03-01T00%3A00%3A00.000Z"
        '&to=2025-03-02T00%3A00%3A00.000Z&page=3>; rel="next"'
    )
    assert link.startswith(f"<https://api.pj.nu/click-conversion/pixels/{PIXEL}/events?")


def test_link_header_built_on_the_requests_own_base(emu: PrisjaktEmulator) -> None:
    emu.page_size = 1
    _seed_events(emu, 2, datetime(2025, 3, 1, tzinfo=timezone.utc))
    url = (
        f"http://127.0.0.1:8765/click-conversion/pixels/{PIXEL}/events"
        "?from=2025-03-01T00:00:00Z&to=2025-03-02T00:00:00Z"
    )
    link = emu.handle("GET", url, AUTH, None).headers["Link"]
    assert link.startswith(f"<http://127.0.0.1:8765/click-conversion/pixels/{PIXEL}/events?")


def test_link_header_omitted_on_one_page(emu: PrisjaktEmulator) -> None:
    # "If the response fits on a single page, the link header will be omitted." [seed]
    emu.page_size = 3
    _seed_events(emu, 3, datetime(2025, 3, 1, tzinfo=timezone.utc))
    response = listing(emu, **{"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"})
    assert len(response.json()) == 3
    assert "Link" not in response.headers
    empty = listing(emu, **{"from": "2024-03-01T00:00:00Z", "to": "2024-03-02T00:00:00Z"})
    assert (empty.status, empty.json(), "Link" in empty.headers) == (200, [], False)


def test_page_past_the_last_is_an_empty_list(emu: PrisjaktEmulator) -> None:
    # [open] a page beyond the last answers 200 with an empty list.
    emu.page_size = 2
    _seed_events(emu, 3, datetime(2025, 3, 1, tzinfo=timezone.utc))
    response = listing(
        emu, **{"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "page": "9"}
    )
    assert (response.status, response.json()) == (200, [])
    assert 'page=2>; rel="last"' in response.headers["Link"]


def test_unstable_pages_repeat_an_event(emu: PrisjaktEmulator) -> None:
    # "The data is not stable": an event can appear again on the next page [docs]
    emu.page_size = 2
    emu.unstable_pages = True
    events = _seed_events(emu, 5, datetime(2025, 3, 1, tzinfo=timezone.utc))
    query = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-02T00:00:00Z"}
    pages = [
        [e["id"] for e in listing(emu, **query, page=str(page)).json()] for page in (1, 2, 3, 4)
    ]
    newest = [e["id"] for e in reversed(events)]
    assert pages == [newest[0:2], newest[1:4], newest[3:5], []]
