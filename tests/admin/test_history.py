"""History at scale: the admin's lists count, page and search without reading every row.

The big sizes live in ``make bench`` (``benchmarks/bench_history.py``); here
the behaviour at a small ``EXACT_UP_TO``, the pinned query counts, and, on
PostgreSQL, that an index serves each ordering and lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from django_pjpixel.admin import history as admin_history
from django_pjpixel.admin.history import EstimatedPaginator, distinct_values
from django_pjpixel.health import delivery_health
from django_pjpixel.models import ConversionEvent
from tests.helpers import PIXEL_ID, make_event

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the planner's estimates and plans of PostgreSQL"
)


def changelist(client: Client, query: str = "") -> str:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return response.content.decode()


def test_search_finds_the_exact_order_or_request_id_only(admin_client: Client) -> None:
    make_event("order-1")
    make_event("order-10", request_id="req-5")
    html = changelist(admin_client, "?q=order-1")
    assert ">order-1<" in html
    assert "order-10" not in html
    assert "order-10" in changelist(admin_client, "?q=req-5")
    assert "order-1<" not in changelist(admin_client, "?q=order")


def test_the_pixel_filter_lists_each_pixel_once(admin_client: Client) -> None:
    for number in range(3):
        make_event(f"a-{number}")
        make_event(f"b-{number}", pixel_id="other-pixel")
    assert distinct_values(ConversionEvent, "pixel_id") == sorted([PIXEL_ID, "other-pixel"])


def test_the_changelist_costs_the_same_queries_whatever_the_rows(
    admin_client: Client, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    for number in range(3):
        make_event(f"order-{number}")
    changelist(admin_client)  # the session and the user, cached as a warm page has them
    with django_assert_max_num_queries(15) as few:
        changelist(admin_client)
    for number in range(3, 40):
        make_event(f"order-{number}", status="sent" if number % 2 else "failed")
    with django_assert_max_num_queries(len(few.captured_queries)):
        changelist(admin_client)


@postgres_only
def test_beyond_the_exact_count_the_list_shows_an_estimate_and_no_deep_pages(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_history, "EXACT_UP_TO", 10)
    monkeypatch.setattr(admin_history, "DEEPEST", 10)
    monkeypatch.setattr("django_pjpixel.admin.outbox.EXACT_UP_TO", 10)
    for number in range(30):
        make_event(f"order-{number}", status="sent")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ConversionEvent._meta.db_table}")
    paginator = EstimatedPaginator(ConversionEvent.objects.order_by("-created_at", "-pk"), 4)
    assert paginator.count > 10
    assert paginator.estimated
    assert paginator.num_pages == 3  # the first 10 rows' pages; a filter narrows the rest
    html = changelist(admin_client)
    assert "about " in html


def test_a_small_list_counts_exactly(admin_client: Client) -> None:
    for number in range(5):
        make_event(f"order-{number}")
    paginator = EstimatedPaginator(ConversionEvent.objects.order_by("pk"), 2)
    assert (paginator.count, paginator.estimated, paginator.num_pages) == (5, False, 3)
    assert "about" not in changelist(admin_client)


def test_the_health_summary_costs_the_same_queries_whatever_the_rows(
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    make_event("order-1", status="failed")
    make_event("order-2", status="sent")
    with django_assert_max_num_queries(8) as few:
        health = delivery_health()
    assert health.failed == 1
    assert health.last_sent_at is None  # make_event sets no sent_at
    for number in range(3, 30):
        make_event(f"order-{number}", status="failed" if number % 3 else "dead")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert delivery_health().failed == 19


PLANS = {
    "the list's order": lambda: ConversionEvent.objects.order_by("-created_at", "-pk")[:50],
    "the status filter": lambda: ConversionEvent.objects.filter(status="failed").order_by(
        "-created_at", "-pk"
    )[:50],
    "the search by order id": lambda: ConversionEvent.objects.filter(order_id="order-7").order_by(),
    "the erasure by click id": lambda: ConversionEvent.objects.filter(click_id="c-7").order_by(),
    "the last send": lambda: ConversionEvent.objects.filter(status="sent").order_by("-sent_at")[:1],
}


@postgres_only
@pytest.mark.parametrize("name", sorted(PLANS))
def test_an_index_serves(name: str) -> None:
    for number in range(20):
        make_event(f"order-{number}", status="sent")
    with connection.cursor() as cursor:
        # Forbidden unless no other plan exists: the plan shows what the indexes can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
    plan = PLANS[name]().explain()
    assert "Index" in plan
    assert "Sort" not in plan


@postgres_only
def test_reconciliation_reads_the_range_through_indexes() -> None:
    """The range's orders through (pixel, event time); each listed event looked up in the
    ledger by order id, never an anti-join hashing the whole ledger (the shop's history)."""
    from datetime import timedelta

    from django.utils import timezone

    from django_pjpixel.models import PrisjaktEvent, PrisjaktSync
    from django_pjpixel.record.reconciliation import _query, reconcile

    now = timezone.now()
    for number in range(20):
        make_event(f"order-{number}", status="sent", event_time=now - timedelta(hours=number))
        PrisjaktEvent.objects.create(
            id=f"event-{number}",
            pixel_id=PIXEL_ID,
            external_event_id=f"order-{number}",
            event_name="purchase",
            event_time=now - timedelta(hours=number),
            first_seen=now,
            last_seen=now,
        )
    PrisjaktSync.objects.create(
        pixel_id=PIXEL_ID,
        start=now - timedelta(days=3),
        end=now,
        started_at=now,
        finished_at=now,
        complete=True,
    )
    report = reconcile(now - timedelta(days=2), now)
    sql, params = _query(connection, report).counts()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "pjpixel_event_time" in plan
    assert "Anti Join" not in plan


def test_pjpixel_check_counts_failed_events_up_to_a_bound(
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Callable[..., Any]
) -> None:
    """Years of failures are not all read: beyond ``FAILED_COUNTED``, "more than"."""
    from io import StringIO

    from django_pjpixel.management.commands import pjpixel_check

    monkeypatch.setattr(pjpixel_check, "FAILED_COUNTED", 2)
    for number in range(3):
        make_event(f"order-{number}", status="failed")
    out = StringIO()
    with django_assert_num_queries(3):  # a bounded read of them, the latest, the conflicts
        pjpixel_check.Command(stdout=out, stderr=StringIO()).report_failed()
    assert "Failed events: more than 2; see Conversion events" in out.getvalue()
