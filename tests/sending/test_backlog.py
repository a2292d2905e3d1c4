"""Batched delivery: ``deliver_due`` over the many-events ``PATCH``, its fallbacks and its pace."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_pjpixel import markets
from django_pjpixel.api.client import ApiResult
from django_pjpixel.exceptions import PrisjaktAPIError, RateLimit
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending import backlog, delivery, outbox
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.sending.outbox import claim_due
from django_pjpixel.signals import Cancel, post_send, pre_send
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import connect

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
SECRET = "s3cr3t-never-shown"
TABLE = ConversionEvent._meta.db_table


def make_events(count: int, prefix: str = "b", **fields: Any) -> list[ConversionEvent]:
    now = timezone.now()
    return ConversionEvent.objects.bulk_create(
        ConversionEvent(
            **{
                "pixel_id": PIXEL,
                "order_id": f"{prefix}-{index:04d}",
                "event_time": now,
                "amount": Decimal("100.00") + index,
                "currency": "SEK",
                "number_of_items": 1 + index % 3,
                "click_id": CLICK,
                **fields,
            }
        )
        for index in range(count)
    )


def statuses() -> dict[str, int]:
    return dict(Counter(ConversionEvent.objects.values_list("status", flat=True)))


def methods(api: PrisjaktEmulator) -> list[str]:
    return [request.method for request in api.requests]


# -- batches -------------------------------------------------------------------


def test_250_due_events_are_three_patches_each_event_once(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any]
) -> None:
    seen: list[tuple[str, str]] = []
    asked: list[str] = []
    connect(receivers, pre_send, lambda event, **kw: asked.append(event.order_id))
    connect(receivers, post_send, lambda event, status, **kw: seen.append((event.order_id, status)))
    make_events(250)
    assert deliver_due() == {"sent": 250}
    assert methods(pjpixel_api) == ["PATCH"] * 3
    assert [len(r.json) for r in pjpixel_api.requests] == [100, 100, 50]
    external = [e["external_event_id"] for e in pjpixel_api.events]
    assert len(external) == len(set(external)) == 250
    assert statuses() == {Status.SENT: 250}
    row = ConversionEvent.objects.get(order_id="b-0000")
    assert (row.last_status_code, row.attempts, row.lease_token) == (204, 1, None)
    assert row.request_id == pjpixel_api.requests[0].request_id
    assert row.sent_at is not None
    assert row.remote_event_id == ""  # a 204 names no event
    assert sorted(asked) == sorted(o for o, _ in seen) == sorted(external)
    assert {s for _, s in seen} == {"sent"}
    body = pjpixel_api.requests[0].json[1]
    assert body == {
        "event_name": "purchase",
        "event_time": mock.ANY,
        "external_event_id": "b-0001",
        "data": {"amount": 101, "currency": "SEK", "number_of_items": 2},
        "signed_click_id": CLICK,
    }


def test_a_batch_resent_after_a_lost_answer_counts_each_event_once(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel.update(READ_TIMEOUT=0.05, RETRY_BASE_DELAY=0.0)
    pjpixel_api.latency = 5.0  # stored, then the answer comes too late
    pjpixel_api.sleep = lambda seconds: None
    make_events(250)
    assert deliver_due(limit=100) == {"pending": 100}
    assert len(pjpixel_api.events) == 100
    pjpixel_api.latency = 0.0
    assert deliver_due() == {"sent": 250}
    assert methods(pjpixel_api) == ["PATCH"] * 4
    counts = Counter(e["external_event_id"] for e in pjpixel_api.events)
    assert len(counts) == 250
    assert set(counts.values()) == {1}
    assert statuses() == {Status.SENT: 250}
    assert ConversionEvent.objects.filter(attempts=2).count() == 100


def test_batching_is_off_with_batch_size_1(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1
    make_events(3)
    assert deliver_due() == {"sent": 3}
    assert methods(pjpixel_api) == ["POST"] * 3


# -- fallbacks -------------------------------------------------------------------


def test_a_403_on_patch_falls_back_to_posts_for_the_run_and_logs_once(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["BATCH_SIZE"] = 4
    pjpixel_api.script([403], method="PATCH")
    make_events(10)
    assert deliver_due() == {"sent": 10}
    assert methods(pjpixel_api) == ["PATCH"] + ["POST"] * 10
    assert len(pjpixel_api.events) == 10
    warnings = [r for r in caplog.records if "refused the many-events PATCH" in r.getMessage()]
    assert len(warnings) == 1
    assert "'test-client'" in warnings[0].getMessage()
    assert SECRET not in caplog.text
    # Remembered for the run only: the next run tries a batch again.
    make_events(2, prefix="next")
    assert deliver_due() == {"sent": 2}
    assert methods(pjpixel_api)[-1] == "PATCH"


def test_a_shop_user_client_sends_in_batches(pjpixel_api: PrisjaktEmulator) -> None:
    # "the many-events `PATCH` and the events listing require the `shop_user` role" [portal]
    pjpixel_api.add_client("test-client", SECRET, ["shop_user"])
    make_events(3)
    assert deliver_due() == {"sent": 3}
    assert methods(pjpixel_api) == ["PATCH"]
    assert len(pjpixel_api.events) == 3


def test_a_client_without_a_sending_role_fails_every_event(
    pjpixel_api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel_api.add_client("test-client", SECRET, [])
    make_events(3)
    assert deliver_due() == {"failed": 3}
    assert methods(pjpixel_api) == ["PATCH", "POST", "POST", "POST"]
    assert set(ConversionEvent.objects.values_list("last_status_code", flat=True)) == {403}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all(
        "needs one of the roles shop_user, event_publisher, admin" in r.getMessage() for r in errors
    )


def test_a_refused_batch_is_sent_one_by_one_and_only_the_bad_event_fails(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any]
) -> None:
    asked: list[str] = []

    def spoil(sender: Any, event: ConversionEvent, payload: dict[str, Any], **kw: Any) -> None:
        asked.append(event.order_id)
        if event.order_id == "b-0003":
            payload["data"]["currency"] = "USD"

    connect(receivers, pre_send, spoil)
    make_events(6)
    assert deliver_due() == {"sent": 5, "failed": 1}
    assert methods(pjpixel_api) == ["PATCH"] + ["POST"] * 6
    assert pjpixel_api.requests[0].status == 400
    assert len(pjpixel_api.events) == 5
    bad = ConversionEvent.objects.get(order_id="b-0003")
    assert (bad.status, bad.last_status_code) == (Status.FAILED, 400)
    assert set(bad.field_errors) == {"data.currency"}
    assert bad.request_id == pjpixel_api.requests[4].request_id
    good = ConversionEvent.objects.exclude(pk=bad.pk)
    assert set(good.values_list("status", "last_status_code")) == {(Status.SENT, 201)}
    assert all(row.remote_event_id for row in good)
    assert sorted(asked) == [f"b-{i:04d}" for i in range(6)]  # pre_send once per event


@pytest.mark.parametrize("status", [401, 404])
def test_an_answer_a_post_would_get_as_well_is_recorded_for_every_event(
    pjpixel_api: PrisjaktEmulator, status: int
) -> None:
    pjpixel_api.script([status], method="PATCH")
    make_events(3)
    assert deliver_due() == {"failed": 3}
    assert methods(pjpixel_api) == ["PATCH"]
    assert set(ConversionEvent.objects.values_list("last_status_code", flat=True)) == {status}


def test_cancelled_and_invalid_events_stay_out_of_the_batch(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any]
) -> None:
    connect(
        receivers,
        pre_send,
        lambda event, **kw: Cancel("test order") if event.order_id == "b-0001" else None,
    )
    make_events(3)
    make_events(1, prefix="bad", currency="USD")
    assert deliver_due() == {"sent": 2, "skipped": 1, "failed": 1}
    (request,) = pjpixel_api.requests
    assert [e["external_event_id"] for e in request.json] == ["b-0000", "b-0002"]
    assert ConversionEvent.objects.get(order_id="b-0001").skip_reason == "test order"
    assert ConversionEvent.objects.get(order_id="bad-0000").problem_title == "Invalid purchase"


def test_a_chunk_with_nothing_left_to_send_makes_no_request(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any]
) -> None:
    connect(receivers, pre_send, lambda **kw: Cancel("all"))
    make_events(3)
    assert deliver_due() == {"skipped": 3}
    assert pjpixel_api.requests == []


# -- transient failures -----------------------------------------------------------


def test_a_503_puts_the_whole_batch_back_on_one_schedule(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], receivers: list[Any]
) -> None:
    pjpixel.update(BATCH_SIZE=5, RETRY_BASE_DELAY=10.0, RETRY_MAX_DELAY=10.0)
    pjpixel_api.scripted_retry_after = 30
    pjpixel_api.script([503], method="PATCH")
    seen: list[str] = []
    connect(receivers, post_send, lambda status, **kw: seen.append(status))
    make_events(8)
    before = timezone.now()
    assert deliver_due() == {"pending": 5, "sent": 3}
    waiting = ConversionEvent.objects.filter(status=Status.PENDING)
    (next_at,) = set(waiting.values_list("next_attempt_at", flat=True))
    assert next_at is not None
    assert before + timedelta(seconds=30) <= next_at <= timezone.now() + timedelta(seconds=30)
    assert set(waiting.values_list("last_status_code", "attempts", "lease_token")) == {
        (503, 1, None)
    }
    assert Counter(seen) == {"pending": 5, "sent": 3}
    assert deliver_due() == {}  # not before its time
    with mock.patch.object(delivery.timezone, "now", return_value=next_at):
        assert deliver_due() == {"sent": 5}
    assert len(pjpixel_api.events) == 8


@pytest.mark.parametrize("step", ["timeout", "reset", 500])
def test_a_timeout_or_error_puts_the_batch_back(pjpixel_api: PrisjaktEmulator, step: Any) -> None:
    pjpixel_api.script([step], method="PATCH")
    make_events(3)
    assert deliver_due() == {"pending": 3}
    assert pjpixel_api.events == []
    assert ConversionEvent.objects.filter(problem_title="").count() == 0


def test_two_failed_batches_in_a_row_end_the_run(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["BATCH_SIZE"] = 2
    pjpixel_api.script([503, 503], method="PATCH")
    make_events(6)
    assert deliver_due() == {"pending": 4}
    assert methods(pjpixel_api) == ["PATCH", "PATCH"]
    assert ConversionEvent.objects.filter(attempts=0, status=Status.PENDING).count() == 2
    assert "2 batches in a row failed" in caplog.text


def test_events_past_their_attempts_die_the_rest_wait(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["MAX_ATTEMPTS"] = 3
    make_events(2, attempts=2)
    make_events(2, prefix="young")
    pjpixel_api.script([503], method="PATCH")
    assert deliver_due() == {"dead": 2, "pending": 2}
    assert set(
        ConversionEvent.objects.filter(order_id__startswith="young").values_list(
            "status", flat=True
        )
    ) == {Status.PENDING}


def test_a_configuration_error_keeps_the_batch_pending(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXEL_ID"] = ""
    make_events(2)
    assert deliver_due() == {"pending": 2}
    assert "PIXEL_ID" in ConversionEvent.objects.first().problem_title  # type: ignore[union-attr]


# -- leases ------------------------------------------------------------------------


def test_rows_taken_over_during_the_patch_are_not_overwritten(
    pjpixel_api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    make_events(4)
    real_patch = delivery.patch
    other = "00000000-0000-0000-0000-000000000001"

    def slow_patch(payloads: list[dict[str, Any]], pixel_id: str) -> Any:
        # The lease ran out meanwhile and another sender claimed two of the rows.
        ConversionEvent.objects.filter(order_id__in=["b-0001", "b-0002"]).update(lease_token=other)
        return real_patch(payloads, pixel_id)

    with mock.patch.object(backlog, "patch", side_effect=slow_patch):
        assert deliver_due() == {"sent": 2, "stale": 2}
    taken = ConversionEvent.objects.filter(order_id__in=["b-0001", "b-0002"])
    assert {(s, str(t)) for s, t in taken.values_list("status", "lease_token")} == {
        (Status.SENDING, other)
    }
    assert caplog.text.count("was taken over") == 2


def test_a_lease_is_renewed_before_a_request_that_could_outlast_it(
    pjpixel: dict[str, Any],
) -> None:
    pjpixel.update(LEASE_SECONDS=60, CONNECT_TIMEOUT=1, READ_TIMEOUT=9)
    make_events(2)
    lease = backlog._Lease(claim_due(2))
    first_end = lease.until
    lease.keep()  # 60 s left, a request takes 10 s at worst: nothing to do
    assert lease.until == first_end
    pjpixel["LEASE_SECONDS"] = 5  # shorter than one request could take
    make_events(2, prefix="short")
    lease = backlog._Lease(claim_due(2))
    first_end = lease.until
    lease.keep()
    assert lease.until > first_end
    ends = ConversionEvent.objects.filter(order_id__startswith="short")
    assert set(ends.values_list("leased_until", flat=True)) == {lease.until}


# -- pace -------------------------------------------------------------------------


def test_deliver_due_stops_at_the_reserve_and_leaves_the_rest_for_the_reset(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel.update(BATCH_SIZE=50, RATE_LIMIT_RESERVE=2)
    pjpixel_api.rate_limit = 5
    pjpixel_api.rate_window = 3600.0
    make_events(250)
    before = timezone.now()
    assert deliver_due() == {"sent": 150}
    assert [r.status for r in pjpixel_api.requests] == [204, 204, 204]
    waiting = ConversionEvent.objects.filter(status=Status.PENDING)
    assert waiting.count() == 100
    assert set(waiting.values_list("attempts", flat=True)) == {0}
    (next_at,) = set(waiting.values_list("next_attempt_at", flat=True))
    assert next_at is not None
    assert before + timedelta(seconds=3590) <= next_at <= timezone.now() + timedelta(hours=1)
    assert "2 of 5 requests left" in caplog.text
    # Later runs of this process send nothing until the reset: never a 429.
    make_events(5, prefix="fresh")
    assert deliver_due() == {}
    assert len(pjpixel_api.requests) == 3
    with mock.patch.object(delivery.timezone, "now", return_value=next_at):
        assert backlog._paused_until(next_at, markets.single().pause_key) is None
    assert 429 not in [r.status for r in pjpixel_api.requests]


def test_the_default_reserve_stops_after_the_first_batch(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    pjpixel_api.rate_limit = 5
    make_events(250)
    assert deliver_due() == {"sent": 100}
    assert [r.status for r in pjpixel_api.requests] == [204]


def test_a_short_reset_is_waited_for(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel.update(BATCH_SIZE=10, RATE_LIMIT_RESERVE=1)
    pjpixel_api.rate_limit = 3
    pjpixel_api.rate_window = 0.3
    make_events(50)
    with mock.patch.object(backlog.time, "sleep", wraps=backlog.time.sleep) as sleep:
        assert deliver_due() == {"sent": 50}
    assert [r.status for r in pjpixel_api.requests] == [204] * 5
    assert sleep.call_count >= 1
    assert all(0 <= call.args[0] <= 0.3 for call in sleep.call_args_list)


def test_a_429_anyway_stops_the_run_until_retry_after(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel.update(BATCH_SIZE=5, RETRY_BASE_DELAY=0.001)
    pjpixel_api.scripted_retry_after = 120
    pjpixel_api.script([429], method="PATCH")
    make_events(12)
    before = timezone.now()
    assert deliver_due() == {"pending": 5}
    assert len(pjpixel_api.requests) == 1
    next_ats = set(ConversionEvent.objects.values_list("next_attempt_at", flat=True))
    assert all(t is not None and t >= before + timedelta(seconds=120) for t in next_ats)
    assert ConversionEvent.objects.filter(attempts=0).count() == 7


def test_at_the_reserve_without_a_reset_it_waits_as_after_a_failure(
    pjpixel: dict[str, Any],
) -> None:
    pjpixel.update(BATCH_SIZE=2, RETRY_BASE_DELAY=30.0)
    make_events(4)
    answer = ApiResult(204, rate_limit=RateLimit(remaining=0))
    before = timezone.now()
    with mock.patch.object(backlog, "patch", return_value=answer):
        assert deliver_due() == {"sent": 2}
    (next_at,) = set(
        ConversionEvent.objects.filter(status=Status.PENDING).values_list(
            "next_attempt_at", flat=True
        )
    )
    assert next_at is not None
    assert before + timedelta(seconds=30) <= next_at <= timezone.now() + timedelta(seconds=30)


def test_the_pace_holds_between_posts_and_gives_back_what_was_not_sent(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel.update(BATCH_SIZE=10, RATE_LIMIT_RESERVE=2)
    pjpixel_api.rate_limit = 6
    pjpixel_api.script([403], method="PATCH")
    make_events(10)
    assert deliver_due() == {"sent": 4}
    assert methods(pjpixel_api) == ["PATCH"] + ["POST"] * 4
    back = ConversionEvent.objects.filter(status=Status.PENDING)
    assert back.count() == 6
    assert set(back.values_list("attempts", "lease_token")) == {(0, None)}
    assert back.filter(next_attempt_at__gt=timezone.now() + timedelta(minutes=59)).count() == 6


# -- memory ------------------------------------------------------------------------


def test_rows_are_streamed_in_chunks_never_the_whole_backlog(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 40
    make_events(250)
    sizes: list[int] = []
    real_claim = outbox.claim_due

    def claim(limit: int, **kwargs: Any) -> list[ConversionEvent]:
        claimed = real_claim(limit, **kwargs)
        sizes.append(len(claimed))
        return claimed

    with (
        mock.patch.object(backlog, "claim_due", side_effect=claim),
        CaptureQueriesContext(connection) as queries,
    ):
        assert deliver_due() == {"sent": 250}
    assert sizes == [40, 40, 40, 40, 40, 40, 10, 0]
    reads = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    reads = [sql for sql in reads if TABLE in sql]
    assert reads
    for sql in reads:
        limit = re.search(r"LIMIT (\d+)", sql)
        # Either a claim (at most one chunk) or the rows of one claim's lease token.
        assert (limit is not None and int(limit.group(1)) <= 40) or "lease_token" in sql, sql


def test_a_pause_that_has_passed_is_forgotten() -> None:
    now = timezone.now()
    backlog._pauses[markets.single().pause_key] = now - timedelta(seconds=1)
    assert backlog._paused_until(now, markets.single().pause_key) is None
    assert backlog._pauses == {}


def test_an_unreadable_batch_answer_is_not_retried_in_a_loop(pjpixel: dict[str, Any]) -> None:
    make_events(2)
    with (
        mock.patch.object(
            backlog, "patch", return_value=PrisjaktAPIError("odd", status=418, retryable=False)
        ),
        mock.patch.object(backlog, "post", return_value=ApiResult(201)) as post,
    ):
        assert deliver_due() == {"sent": 2}
    assert post.call_count == 2
