"""Restatements drained by ``deliver_due``: ``PATCH`` batches, fallbacks, pace, leases."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.utils import timezone

from django_pjpixel.api.client import get_client
from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending import restating
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, PIXEL_ID

pytestmark = pytest.mark.django_db

Status = Restatement.Status


def at_prisjakt(api: PrisjaktEmulator, count: int, amount: int = 1000) -> None:
    """``count`` purchases Prisjakt has (``order-0000``…), sent: each restated to ``amount``."""
    now = timezone.now()
    ConversionEvent.objects.bulk_create(
        ConversionEvent(
            pixel_id=PIXEL_ID,
            order_id=f"order-{index:04d}",
            event_time=now,
            amount=2000,
            api_amount=2000,
            currency="SEK",
            number_of_items=2,
            click_id=CLICK,
            status=ConversionEvent.Status.SENT,
            attempts=1,
            sent_at=now,
        )
        for index in range(count)
    )
    for index in range(count):
        api.add_event(
            external_event_id=f"order-{index:04d}",
            amount=2000,
            number_of_items=2,
            signed_click_id=CLICK,
            event_time=datetime.now(dt_timezone.utc),
        )
        restate_purchase(order_id=f"order-{index:04d}", amount=amount, number_of_items=1)


def amounts_listed() -> Counter[int]:
    """The amounts of Prisjakt's listing (``GET .../events``, every page)."""
    now = datetime.now(dt_timezone.utc)
    events = get_client().iter_events(start=now - timedelta(days=1), end=now + timedelta(days=1))
    return Counter(event["data"]["amount"] for event in events)


def statuses() -> dict[str, int]:
    return dict(Counter(Restatement.objects.values_list("status", flat=True)))


def patch_sizes(api: PrisjaktEmulator) -> list[int]:
    return [len(request.json) for request in api.requests if request.method == "PATCH"]


def test_500_restatements_are_five_patches(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 100
    at_prisjakt(pjpixel_api, 500, amount=0)
    assert deliver_due() == {"restatement sent": 500}
    assert patch_sizes(pjpixel_api) == [100] * 5
    assert [request.method for request in pjpixel_api.requests] == ["PATCH"] * 5
    assert amounts_listed() == {0: 500}
    assert len(pjpixel_api.events) == 500  # changed, not added
    assert statuses() == {Status.SENT: 500}
    assert set(ConversionEvent.objects.values_list("restated_api_amount", flat=True)) == {0}


def test_purchases_first_then_restatements_in_batches_of_their_own(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    at_prisjakt(pjpixel_api, 3)
    ConversionEvent.objects.create(
        pixel_id=PIXEL_ID,
        order_id="new",
        event_time=timezone.now(),
        amount=5,
        currency="SEK",
        number_of_items=1,
        click_id=CLICK,
    )
    assert deliver_due() == {"sent": 1, "restatement sent": 3}
    assert patch_sizes(pjpixel_api) == [1, 3]
    assert [body["external_event_id"] for body in pjpixel_api.requests[1].json] == [
        "order-0000",
        "order-0001",
        "order-0002",
    ]


def test_with_batch_size_1_each_restatement_is_a_patch_of_its_own(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1
    at_prisjakt(pjpixel_api, 3)
    assert deliver_due() == {"restatement sent": 3}
    assert patch_sizes(pjpixel_api) == [1, 1, 1]  # a POST would be a 409
    assert amounts_listed() == {1000: 3}


def test_a_refused_batch_is_patched_one_by_one_and_only_the_bad_one_fails(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    at_prisjakt(pjpixel_api, 3)
    pjpixel_api.script([400, 204, 400], method="PATCH")
    assert deliver_due() == {"restatement sent": 2, "restatement failed": 1}
    assert patch_sizes(pjpixel_api) == [3, 1, 1, 1]
    failed = Restatement.objects.get(status=Status.FAILED)
    assert (failed.order_id, failed.last_status_code) == ("order-0001", 400)
    assert failed.request_id == pjpixel_api.requests[2].request_id
    assert not ConversionEvent.objects.get(order_id="order-0001").is_restated
    assert amounts_listed() == {1000: 2, 2000: 1}


def test_credentials_that_may_not_patch_fail_every_restatement_once(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    at_prisjakt(pjpixel_api, 3)
    pjpixel_api.script([403], method="PATCH")
    assert deliver_due() == {"restatement failed": 3}
    assert [request.method for request in pjpixel_api.requests] == ["PATCH"]
    assert {row.last_status_code for row in Restatement.objects.all()} == {403}


def test_a_503_puts_the_batch_back_on_one_schedule(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    at_prisjakt(pjpixel_api, 3)
    pjpixel_api.script([503], method="PATCH")
    assert deliver_due() == {"restatement pending": 3}
    rows = list(Restatement.objects.all())
    assert {row.next_attempt_at for row in rows} != {None}
    assert len({row.next_attempt_at for row in rows}) == 1
    assert {row.attempts for row in rows} == {1}
    assert amounts_listed() == {2000: 3}
    Restatement.objects.update(next_attempt_at=timezone.now())
    assert deliver_due() == {"restatement sent": 3}


def test_restatements_keep_the_pace_of_the_rate_limit(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel.update(BATCH_SIZE=2, RATE_LIMIT_RESERVE=3)
    pjpixel_api.rate_limit = 4  # one request done, three left: the reserve
    at_prisjakt(pjpixel_api, 5)
    assert deliver_due() == {"restatement sent": 2}
    assert patch_sizes(pjpixel_api) == [2]
    waiting = Restatement.objects.filter(status=Status.PENDING)
    assert waiting.count() == 3
    assert None not in set(waiting.values_list("next_attempt_at", flat=True))
    assert deliver_due() == {}  # until the window resets
    assert len(pjpixel_api.requests) == 1


def test_an_outcome_after_the_lease_was_taken_over_is_dropped(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    at_prisjakt(pjpixel_api, 1)
    (row,) = restating.claim(10, timezone.now())
    Restatement.objects.filter(pk=row.pk).update(lease_token=None)  # another sender's now
    payload = restating.prepare(row)
    assert isinstance(payload, dict)
    assert restating.record_one(row, restating.patch_one(payload)).status == "stale"
    assert Restatement.objects.get().status == Status.SENDING
    assert not ConversionEvent.objects.get().is_restated
