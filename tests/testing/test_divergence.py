"""The emulator's record made to differ from what was sent (``testing/divergence.py``),
and its listing over many events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from django_pjpixel.testing.emulator import ManualClock, PrisjaktEmulator
from tests.testing.test_emulator import CLICK, PIXEL, call, make_emulator, post, purchase

QUERY = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-31T00:00:00Z"}


def listed(emulator: PrisjaktEmulator, **query: str) -> list[dict[str, Any]]:
    response = call(emulator, "GET", f"/pixels/{PIXEL}/events", query={**QUERY, **query})
    assert response.status == 200
    body: list[dict[str, Any]] = response.json()
    return body


@pytest.fixture
def sent() -> PrisjaktEmulator:
    """Three orders sent as a shop sends them."""
    emulator = make_emulator(ManualClock(datetime(2025, 3, 13, tzinfo=timezone.utc)))
    for index in range(3):
        body = purchase(
            external_event_id=f"order-{index}", event_time=f"2025-03-1{index}T10:00:00.000Z"
        )
        assert post(emulator, body).status == 201
    return emulator


def test_a_dropped_event_is_no_longer_listed_or_found(sent: PrisjaktEmulator) -> None:
    dropped = sent.drop_event("order-1")
    assert dropped["external_event_id"] == "order-1"
    assert [e["external_event_id"] for e in listed(sent)] == ["order-2", "order-0"]
    assert call(sent, "GET", f"/events/{dropped['id']}").status == 404
    other = sent.events[0]["id"]
    assert sent.drop_event(event_id=other)["id"] == other
    assert len(sent.events) == 1


def test_a_changed_event_is_listed_with_its_new_data(sent: PrisjaktEmulator) -> None:
    changed = sent.change_event("order-0", amount=999, number_of_items=7)
    assert changed["data"] == {"amount": 999, "currency": "SEK", "number_of_items": 7}
    [event] = [e for e in listed(sent) if e["external_event_id"] == "order-0"]
    assert event["data"] == changed["data"]
    assert sent.change_event(event_id=event["id"], currency="NOK")["data"]["currency"] == "NOK"
    # A value is stored as given: a malformed amount is a case to test too.
    assert sent.change_event("order-2", amount="12,50")["data"]["amount"] == "12,50"


def test_a_foreign_event_is_listed_beside_the_shops(sent: PrisjaktEmulator) -> None:
    foreign = sent.add_foreign_event(event_time="2025-03-14T08:00:00.000Z", amount=50)
    assert foreign["external_event_id"].startswith("browser-")
    assert len(foreign["external_event_id"]) == len("browser-") + 12
    anonymous = sent.add_foreign_event(external_event_id="", event_time="2025-03-15T08:00:00Z")
    assert anonymous["external_event_id"] is None
    named = sent.add_foreign_event(PIXEL, external_event_id="pos-7", signed_click_id=CLICK)
    assert named["click_id"] == "239cd31f-9d43-4cb4-b8dc-2057fe18c289"
    ids = [e["external_event_id"] for e in listed(sent)]
    assert ids[:2] == [None, foreign["external_event_id"]]


def test_what_is_not_there_cannot_be_changed(sent: PrisjaktEmulator) -> None:
    with pytest.raises(LookupError):
        sent.drop_event("order-9")
    with pytest.raises(LookupError):
        sent.change_event("order-0", pixel_id="another-pixel", amount=1)
    with pytest.raises(TypeError):
        sent.drop_event()
    with pytest.raises(TypeError):
        sent.change_event(amount=1)


def test_a_listing_of_many_events_pages_through_all_of_them() -> None:
    # Thousands of events, listed newest first a page at a time, each once.
    emulator = make_emulator(page_size=250)
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    for index in range(2000):
        emulator.add_event(
            PIXEL, event_time=start + timedelta(minutes=index), external_event_id=f"e{index}"
        )
    seen = [
        e["external_event_id"] for page in range(1, 9) for e in listed(emulator, page=str(page))
    ]
    assert seen == [f"e{index}" for index in reversed(range(2000))]
    # A range inside the events, both ends included.
    inside = listed(emulator, **{"from": "2025-03-01T01:00:00Z", "to": "2025-03-01T02:00:00Z"})
    assert [e["external_event_id"] for e in inside] == [f"e{i}" for i in range(120, 59, -1)]
    # The listing follows a change at once.
    emulator.drop_event("e1999")
    assert listed(emulator)[0]["external_event_id"] == "e1998"


def test_a_batch_restating_an_event_changes_its_listed_time(sent: PrisjaktEmulator) -> None:
    body = [purchase(external_event_id="order-0", event_time="2025-03-20T10:00:00.000Z")]
    assert call(sent, "PATCH", f"/pixels/{PIXEL}/events", body=body).status == 204
    assert listed(sent)[0]["external_event_id"] == "order-0"
