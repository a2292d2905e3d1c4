"""``reconciliation``: the ledger beside the mirror, one category per order."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_pjpixel.models import ConversionEvent, PrisjaktSync
from django_pjpixel.record import reconciliation, sync
from django_pjpixel.record.reconciliation import NotSynced, reconcile
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
HOUR = timedelta(hours=1)


def order(
    api: PrisjaktEmulator,
    order_id: str,
    *,
    amount: str = "1234.00",
    currency: str = "SEK",
    items: int = 2,
    status: str = Status.SENT,
    sent: timedelta | None = 2 * HOUR,
    listed: bool = True,
    at: datetime | None = None,
) -> ConversionEvent:
    """A ledger row, and (``listed``) the event Prisjakt recorded for it."""
    when = at or timezone.now() - 3 * HOUR
    row = make_event(
        order_id,
        event_time=when,
        amount=Decimal(amount),
        currency=currency,
        number_of_items=items,
        status=status,
        sent_at=None if sent is None else timezone.now() - sent,
    )
    if listed:
        api.add_event(
            event_time=when,
            external_event_id=order_id,
            amount=int(Decimal(amount).quantize(Decimal(1), rounding="ROUND_HALF_UP")),
            currency=currency,
            number_of_items=items,
            signed_click_id=CLICK,
        )
    return row


def day() -> tuple[datetime, datetime]:
    now = timezone.now()
    return now - timedelta(days=1), now


@pytest.fixture
def shop(pjpixel_api: PrisjaktEmulator) -> PrisjaktEmulator:
    """A day of orders in every category, and a sync of Prisjakt's record."""
    api = pjpixel_api
    order(api, "ok")
    order(api, "rounded", amount="99.50")  # sent as 100
    order(api, "amount", amount="500.00")
    api.change_event("amount", amount=450)
    order(api, "items", items=3)
    api.change_event("items", number_of_items=1)
    order(api, "currency", currency="NOK")
    api.change_event("currency", currency="DKK")
    order(api, "twice")
    api.add_event(
        event_time=timezone.now() - 2 * HOUR, external_event_id="twice", signed_click_id=CLICK
    )
    order(api, "missing", listed=False)
    order(api, "just-sent", sent=timedelta(minutes=10), listed=False)
    order(api, "open", status=Status.PENDING, sent=None, listed=False)
    order(api, "sending", status=Status.SENDING, sent=None)
    order(api, "failed", status=Status.FAILED, sent=None)  # Prisjakt has it all the same
    order(api, "skipped", status=Status.SKIPPED, sent=None, listed=False)
    api.add_foreign_event(external_event_id="browser-1", event_time=timezone.now() - HOUR)
    api.add_foreign_event(external_event_id="", event_time=timezone.now() - HOUR)
    order(api, "last-week", at=timezone.now() - timedelta(days=5))  # outside the range
    sync.sync_recent(7)
    return api


def test_every_order_gets_its_category(shop: PrisjaktEmulator) -> None:
    report = reconcile(*day())

    assert report.counts == {
        "matched": 2,
        "amount_differs": 4,
        "missing_at_prisjakt": 1,
        "unknown_to_shop": 3,
        "pending": 3,
    }
    assert report.differs
    found = [(d.category, d.order_id) for d in report.differences()]
    assert sorted(found[:4]) == [
        ("amount_differs", "amount"),
        ("amount_differs", "currency"),
        ("amount_differs", "items"),
        ("amount_differs", "twice"),
    ]
    assert found[4] == ("missing_at_prisjakt", "missing")
    assert sorted(found[5:], key=str) == sorted(
        [
            ("unknown_to_shop", "failed"),
            ("unknown_to_shop", "browser-1"),
            ("unknown_to_shop", None),
        ],
        key=str,
    )
    assert report.synced_at == sync.last_sync().finished_at  # type: ignore[union-attr]


def test_both_sides_of_a_difference(shop: PrisjaktEmulator) -> None:
    by_order = {d.order_id: d for d in reconcile(*day()).differences()}
    amount = by_order["amount"]
    assert amount.ours is not None
    assert amount.prisjakt is not None
    ours = ConversionEvent.objects.get(order_id="amount")
    assert amount.ours["id"] == ours.pk
    assert (amount.ours["amount"], amount.ours["amount_sent"]) == ("500.00", 500)
    assert amount.ours["status"] == "sent"
    assert amount.ours["event_time"] == timezone.localtime(ours.event_time).isoformat()
    assert amount.prisjakt["amount"] == 450
    assert amount.prisjakt["events"] == 1
    assert amount.prisjakt["id"] in {e["id"] for e in shop.events}
    assert by_order["twice"].prisjakt["events"] == 2  # type: ignore[index]
    assert by_order["twice"].prisjakt["amount"] == 2468  # type: ignore[index]
    assert by_order["currency"].prisjakt["currency"] == "DKK"  # type: ignore[index]
    assert by_order["missing"].prisjakt is None
    assert by_order["browser-1"].ours is None
    assert by_order["browser-1"].as_json() == {
        "category": "unknown_to_shop",
        "order_id": "browser-1",
        "ours": None,
        "prisjakt": by_order["browser-1"].prisjakt,
    }


def test_json_has_the_documented_shape(shop: PrisjaktEmulator) -> None:
    start, end = day()
    report = reconcile(start, end)
    data = report.as_json()
    assert list(data) == ["from", "to", "synced_at", "counts", "differences"]
    assert data["from"] == timezone.localtime(start).isoformat()
    assert data["counts"]["matched"] == 2
    assert len(data["differences"]) == 8
    assert report.as_json([])["differences"] == []


def test_a_mixed_currency_listing_shows_both(pjpixel_api: PrisjaktEmulator) -> None:
    order(pjpixel_api, "mixed")
    pjpixel_api.add_event(
        event_time=timezone.now() - HOUR, external_event_id="mixed", currency="NOK"
    )
    sync.sync_recent(2)
    [difference] = reconcile(*day()).differences()
    assert difference.prisjakt["currency"] == "NOK/SEK"  # type: ignore[index]


def test_minor_units_are_compared_as_sent(pjpixel_api: PrisjaktEmulator, pjpixel: Any) -> None:
    pjpixel["AMOUNT_UNITS"] = "minor"
    order(pjpixel_api, "ore", amount="12.34", listed=False)
    pjpixel_api.add_event(
        event_time=timezone.now() - 3 * HOUR,
        external_event_id="ore",
        amount=1234,
        number_of_items=2,
    )
    sync.sync_recent(2)
    report = reconcile(*day())
    assert report.counts["matched"] == 1
    assert not report.differs


def test_the_grace_period_is_a_setting(shop: PrisjaktEmulator, pjpixel: Any) -> None:
    pjpixel["RECONCILE_GRACE"] = timedelta(hours=3)
    counts = reconcile(*day()).counts
    assert counts["missing_at_prisjakt"] == 0
    assert counts["pending"] == 4


def test_without_a_complete_sync_it_cannot_run(pjpixel_api: PrisjaktEmulator) -> None:
    order(pjpixel_api, "ok")
    with pytest.raises(NotSynced, match="pjpixel_sync"):
        reconcile(*day())
    sync.sync_recent(1)
    now = timezone.now()
    with pytest.raises(NotSynced):
        reconcile(now - timedelta(days=3), now)  # the sync held one day only


def test_nothing_differs_when_everything_matches(pjpixel_api: PrisjaktEmulator) -> None:
    order(pjpixel_api, "a")
    order(pjpixel_api, "b")
    sync.sync_recent(1)
    report = reconcile(*day())
    assert report.counts["matched"] == 2
    assert not report.differs
    assert list(report.differences()) == []


def test_a_constant_number_of_queries(pjpixel_api: PrisjaktEmulator) -> None:
    def queries() -> int:
        sync.sync_recent(1)
        with CaptureQueriesContext(connection) as captured:
            report = reconcile(*day())
            differences = list(report.differences())
        assert differences
        return len(captured.captured_queries)

    order(pjpixel_api, "missing-0", listed=False)
    few = queries()
    for index in range(40):
        order(pjpixel_api, f"missing-{index + 1}", listed=index % 2 == 0)
        order(pjpixel_api, f"ok-{index}")
    assert queries() == few == 3


def test_differences_can_be_limited(shop: PrisjaktEmulator) -> None:
    report = reconcile(*day())
    assert [d.category for d in report.differences(limit=2)] == ["amount_differs"] * 2


def test_chunks_are_read_until_the_end(shop: PrisjaktEmulator, monkeypatch: Any) -> None:
    monkeypatch.setattr(reconciliation, "CHUNK", 3)
    assert len(list(reconcile(*day()).differences())) == 8


def test_values_as_each_database_gives_them() -> None:
    # PostgreSQL gives Decimals and aware datetimes; SQLite floats and text; MySQL naive UTC.
    assert reconciliation._decimal(None) is None
    assert reconciliation._number(None) is None
    assert reconciliation._number(1234.0) == 1234
    assert reconciliation._number(Decimal("12.5")) == "12.50"
    when = reconciliation._datetime("2025-03-13 10:45:46.987000")
    assert when == datetime(2025, 3, 13, 10, 45, 46, 987000, tzinfo=dt_timezone.utc)
    assert reconciliation._datetime(None) is None
    assert reconciliation._iso(None) is None


def test_a_side_in_a_few_words() -> None:
    assert reconciliation.describe(None) == "-"
    assert reconciliation.describe(
        {"amount": 2468, "currency": "SEK", "number_of_items": 1, "events": 2}
    ) == ("2468 SEK, 1 item (2 events)")
    assert reconciliation.describe({"amount_sent": 5, "currency": "", "number_of_items": 3}) == (
        "5 ?, 3 items"
    )


def test_another_pixel_is_compared_on_its_own(shop: PrisjaktEmulator) -> None:
    now = timezone.now()
    make_event("no-1", pixel_id="market-no", status=Status.SENT, sent_at=now - 2 * HOUR)
    PrisjaktSync.objects.create(
        pixel_id="market-no",
        start=now - timedelta(days=7),
        end=now,
        started_at=now,
        finished_at=now,
        complete=True,
    )
    report = reconcile(*day(), pixel_id="market-no")
    assert report.counts == {
        **dict.fromkeys(reconciliation.CATEGORIES, 0),
        "missing_at_prisjakt": 1,
    }
    assert [d.order_id for d in report.differences()] == ["no-1"]


def test_an_amount_is_compared_as_it_was_sent(pjpixel_api: PrisjaktEmulator) -> None:
    # 1234.495 is kept as 1234.50 for display, but was sent once rounded: 1234.
    from django_pjpixel.ledger.purchases import track_purchase
    from django_pjpixel.sending.backlog import deliver_due

    track_purchase(
        order_id="half", amount=Decimal("1234.495"), number_of_items=1, signed_click_id=CLICK
    )
    deliver_due()
    assert [event["data"]["amount"] for event in pjpixel_api.events] == [1234]
    sync.sync_recent(1)
    assert reconcile(*day()).counts["matched"] == 1


def test_a_restated_order_is_compared_as_restated(pjpixel_api: PrisjaktEmulator) -> None:
    from django_pjpixel.ledger.purchases import track_purchase
    from django_pjpixel.ledger.restatements import restate_purchase
    from django_pjpixel.sending.backlog import deliver_due

    track_purchase(order_id="refund", amount=1000, number_of_items=2, signed_click_id=CLICK)
    deliver_due()
    restate_purchase(order_id="refund", amount=400, number_of_items=1, reason="one returned")
    deliver_due()
    assert [event["data"]["amount"] for event in pjpixel_api.events] == [400]
    sync.sync_recent(1)
    report = reconcile(*day())
    assert report.counts["matched"] == 1
    assert not report.differs
