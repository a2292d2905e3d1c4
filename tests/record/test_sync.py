"""``sync``: Prisjakt's listing copied into the ``PrisjaktEvent`` mirror, against the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from django_pjpixel import tasks
from django_pjpixel.exceptions import InvalidInput, PrisjaktAPIError
from django_pjpixel.models import PrisjaktEvent, PrisjaktSync
from django_pjpixel.record import sync
from django_pjpixel.testing.emulator import PrisjaktEmulator, parse_iso_time
from tests.helpers import CLICK, PIXEL_ID

pytestmark = pytest.mark.django_db


def seed(api: PrisjaktEmulator, count: int, *, hours: float = 1.0) -> list[dict[str, Any]]:
    now = timezone.now()
    return [
        api.add_event(
            event_time=now - timedelta(hours=hours * (index + 1)),
            external_event_id=f"order-{index}",
            amount=100 + index,
            number_of_items=1 + index % 3,
            signed_click_id=CLICK,
        )
        for index in range(count)
    ]


def listings(api: PrisjaktEmulator) -> list[Any]:
    return [r for r in api.requests if r.method == "GET" and r.path.endswith("/events")]


def test_every_listed_event_is_mirrored_once(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.page_size = 3
    pjpixel_api.unstable_pages = True  # each page repeats the last event of the one before
    events = seed(pjpixel_api, 10)

    run = sync.sync_recent(2)

    assert run.complete
    assert (run.pages, run.events) == (4, 10)
    assert PrisjaktEvent.objects.count() == 10
    pages = [r.query["page"] for r in listings(pjpixel_api)]
    assert pages == ["1", "2", "3", "4"]  # one request a page, none twice
    row = PrisjaktEvent.objects.get(external_event_id="order-4")
    listed = next(e for e in events if e["external_event_id"] == "order-4")
    assert row.id == listed["id"]
    assert row.pixel_id == PIXEL_ID
    assert row.click_id == "239cd31f-9d43-4cb4-b8dc-2057fe18c289"
    assert (row.event_name, row.amount, row.currency, row.number_of_items) == (
        "purchase",
        Decimal("104.00"),
        "SEK",
        2,
    )
    assert row.data == {"amount": 104, "currency": "SEK", "number_of_items": 2}
    assert row.event_time is not None
    assert (
        row.event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        == (listed["event_time"])
    )
    assert row.first_seen == row.last_seen == run.started_at


def test_a_second_sync_updates_restated_events_and_removes_dropped_ones(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    seed(pjpixel_api, 4)
    first = sync.sync_recent(1)
    pjpixel_api.change_event("order-1", amount=999, currency="NOK")
    pjpixel_api.drop_event("order-2")

    second = sync.sync_recent(1)

    assert second.complete
    assert second.events == 3
    assert not PrisjaktEvent.objects.filter(external_event_id="order-2").exists()
    changed = PrisjaktEvent.objects.get(external_event_id="order-1")
    assert (changed.amount, changed.currency) == (Decimal("999.00"), "NOK")
    assert changed.first_seen == first.started_at
    assert changed.last_seen == second.started_at


def test_an_incomplete_sync_removes_nothing(pjpixel_api: PrisjaktEmulator, pjpixel: Any) -> None:
    pjpixel_api.page_size = 2
    seed(pjpixel_api, 6)
    sync.sync_recent(1)
    pjpixel_api.drop_event("order-0")
    pjpixel["MAX_PAGES"] = 2

    run = sync.sync_recent(1)

    assert not run.complete
    assert run.pages == 2
    assert "MAX_PAGES = 2" in run.error
    assert PrisjaktEvent.objects.filter(external_event_id="order-0").exists()
    assert sync.last_sync() != run


def test_a_next_link_back_to_a_page_already_read_ends_the_walk(
    pjpixel_api: PrisjaktEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    pjpixel_api.page_size = 1
    seed(pjpixel_api, 3)
    original = sync.get_client().list_events

    def looping(**kwargs: Any) -> Any:
        page = original(**kwargs)
        return type(page)(events=page.events, page=page.page, next=1)

    monkeypatch.setattr(sync.get_client(), "list_events", looping)
    run = sync.sync_recent(1)
    assert not run.complete
    assert run.pages == 1
    assert "led back to page 1" in run.error


def test_a_long_range_is_listed_sixty_days_at_a_time(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 3, hours=24 * 50)  # 50, 100 and 150 days ago
    end = timezone.now()

    run = sync.sync_events(end - timedelta(days=170), end)

    assert run.complete
    assert run.events == 3
    ranges = [(r.query["from"], r.query["to"]) for r in listings(pjpixel_api)]
    assert len(ranges) == 3
    for first, last in ranges:
        span = parse_iso_time(last) - parse_iso_time(first)  # type: ignore[operator]
        assert span <= timedelta(days=60)
    assert ranges[0][1] == ranges[1][0]  # consecutive, no gap


def test_spans_refuse_a_range_that_ends_before_it_starts() -> None:
    now = timezone.now()
    with pytest.raises(InvalidInput):
        sync.spans(now, now - timedelta(seconds=1))
    assert sync.spans(now, now) == [(now, now)]


def test_an_api_error_is_recorded_and_raised(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.page_size = 2
    seed(pjpixel_api, 5)
    pjpixel_api.script(["pass", 503], method="GET", path="/events$")

    with pytest.raises(PrisjaktAPIError):
        sync.sync_recent(1)

    run = PrisjaktSync.objects.get()
    assert not run.complete
    assert run.finished_at is not None
    assert run.error.startswith("PrisjaktServerError")
    assert PrisjaktEvent.objects.count() == 2  # the first page stays
    assert sync.last_sync() is None


def test_unusable_fields_are_left_empty() -> None:
    seen = timezone.now()
    row = sync.mirror_row(
        {
            "id": "e1",
            "click_id": 7,
            "external_event_id": "x" * 150,
            "event_time": "yesterday",
            "data": {"amount": "lots", "currency": "sek", "number_of_items": True},
        },
        PIXEL_ID,
        seen,
    )
    assert row is not None
    assert row.click_id == ""
    assert len(row.external_event_id) == 100
    assert row.event_time is None
    assert (row.amount, row.currency, row.number_of_items) == (None, "SEK", None)
    assert sync.mirror_row({"id": ""}, PIXEL_ID, seen) is None
    assert sync.mirror_row({"data": {}}, PIXEL_ID, seen) is None
    naive = sync.mirror_row(
        {"id": "e2", "event_time": "2025-03-13T10:45:46", "data": []}, "p", seen
    )
    assert naive is not None
    assert naive.event_time == datetime(2025, 3, 13, 10, 45, 46, tzinfo=dt_timezone.utc)
    assert naive.data == {}
    assert sync.mirror_row({"id": "e3", "data": {"amount": 1e13}}, "p", seen).amount is None  # type: ignore[union-attr]
    assert (
        sync.mirror_row({"id": "e4", "event_time": "2025-13-45T10:00:00Z"}, "p", seen).event_time
        is None
    )  # type: ignore[union-attr]


def test_events_without_an_id_are_skipped(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 2)
    rows = [sync.mirror_row(e, PIXEL_ID, timezone.now()) for e in pjpixel_api.events]
    sync.upsert([r for r in rows if r is not None])
    sync.upsert([])
    assert PrisjaktEvent.objects.count() == 2


def test_covering_sync_is_the_latest_complete_run_holding_the_range() -> None:
    now = timezone.now()

    def run(
        days: int, ago: timedelta, *, complete: bool = True, end: datetime | None = None
    ) -> Any:
        started = now - ago
        return PrisjaktSync.objects.create(
            pixel_id=PIXEL_ID,
            start=started - timedelta(days=days),
            end=end or started,
            started_at=started,
            complete=complete,
        )

    month = run(30, timedelta(hours=5))
    week = run(7, timedelta(hours=1))
    run(7, timedelta(minutes=5), complete=False)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    assert sync.covering_sync(today, today + timedelta(days=1)) == week
    assert sync.covering_sync(now - timedelta(days=20), now) == month
    assert sync.covering_sync(now - timedelta(days=40), now) is None
    assert sync.covering_sync(today, today, pixel_id="another") is None
    assert sync.last_sync() == week
    # A run of a past range covers it, but a later run that also holds it wins.
    past = run(3, timedelta(days=1), end=now - timedelta(days=2))
    assert sync.covering_sync(past.start, past.end) == week
    assert sync.covering_sync(past.start, past.end, pixel_id="another") is None


def test_the_task_reports_what_it_did(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 2)
    done = {"complete": True, "pages": 1, "events": 2, "error": ""}
    assert tasks.sync_events.apply(args=(3,)).get() == {**done, "pixels": {PIXEL_ID: done}}
    pjpixel_api.script([401], method="GET")
    result = tasks.sync_events.apply().get()
    assert result["complete"] is False
    assert "401" in result["error"]


def test_the_mirror_rows_say_what_they_are(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 1)
    run = sync.sync_recent(1)
    assert str(PrisjaktEvent.objects.get()) == "purchase order-0"
    assert str(run).startswith(f"{PIXEL_ID} {run.start:%Y-%m-%d} to {run.end:%Y-%m-%d} (")
