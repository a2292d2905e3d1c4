"""``pjpixel_check`` and ``pjpixel_events`` against the API emulator."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from django_pjpixel.testing.emulator import PrisjaktEmulator

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-never-shown"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    assert SECRET not in out.getvalue() + err.getvalue()
    return out.getvalue(), err.getvalue()


def fails(name: str, *args: str) -> tuple[str, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command(name, *args, stdout=out, stderr=err)
    assert info.value.returncode == 1
    text = out.getvalue() + err.getvalue() + str(info.value)
    assert SECRET not in text
    return out.getvalue(), err.getvalue(), str(info.value)


# -- pjpixel_check ---------------------------------------------------------------------


def test_check_all_good(use_tz: bool, pjpixel_api: PrisjaktEmulator) -> None:
    out, err = run("pjpixel_check")
    assert "Client id: test-client" in out
    assert "Credentials: client test-client" in out
    assert "Roles: event_publisher, shop_user" in out
    assert f"Pixel {PIXEL} exists." in out
    assert "The credentials may send events." in out
    assert "Prisjakt conversion tracking is ready." in out
    assert "Failed events: none." in out
    assert "First sync of Prisjakt's events: 0 events in the last 7 days." in out
    assert err == ""
    paths = [r.path for r in pjpixel_api.requests]
    assert paths == ["/clients/test-client", f"/pixels/{PIXEL}/events", f"/pixels/{PIXEL}/events"]
    listing = pjpixel_api.requests[1]
    assert listing.query["page"] == "1"
    # Synced once: the next run says when, and asks Prisjakt nothing more.
    out, err = run("pjpixel_check")
    assert "Last complete sync of Prisjakt's events: 20" in out
    assert len(pjpixel_api.requests) == 5


def test_check_syncs_prisjakts_events_the_first_time(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_event(external_event_id="order-1")
    pjpixel_api.add_event(external_event_id="order-2")
    out, _err = run("pjpixel_check")
    assert "First sync of Prisjakt's events: 2 events in the last 7 days." in out
    from django_pjpixel.health import delivery_health

    assert delivery_health().last_sync is not None


def test_check_fails_when_the_first_sync_does(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([200, 200, 500])  # the client, the pixel; the sync refused
    out, err, message = fails("pjpixel_check")
    assert f"Pixel {PIXEL} exists." in out
    assert "First sync: HTTP 500" in err
    assert message == "Prisjakt conversion tracking is not ready."


def test_check_counts_failed_events(pjpixel_api: PrisjaktEmulator) -> None:
    from django_pjpixel.ledger.purchases import track_purchase
    from django_pjpixel.models import ConversionEvent

    track_purchase(order_id=100006.5, amount=10, number_of_items=1)  # not an order id
    track_purchase(order_id="order-2", amount=10, currency="USD", number_of_items=1)
    ConversionEvent.objects.filter(order_id="order-2").update(problem_title="Bad request")
    out, err, message = fails("pjpixel_check")
    assert "Failed events: 2, 1 of them reported by the shop with an invalid value" in out
    assert "The credentials may send events." in out  # the credentials are fine
    assert message == "Prisjakt conversion tracking is set up, but 2 reports failed."
    assert "Failed" not in err


def test_check_fails_on_a_purchase_reported_without_its_number_of_items(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    """The first hour's stop: a paid order reported without number_of_items failed, and
    pjpixel_check said "ready". Now it names the order and the field, and exits 1; the
    order reported again with its values is sent, and the check passes."""
    from django_pjpixel.signals import order_completed

    order_completed.send(sender=None, order_id="1001", amount=499)
    out, _err, message = fails("pjpixel_check")
    assert "Failed events: 1, 1 of them reported by the shop with an invalid value" in out
    assert "The latest, order 1001: Invalid purchase: number_of_items: is required" in out
    assert "Report such an order again with the right values" in out
    assert message == "Prisjakt conversion tracking is set up, but 1 report failed."
    order_completed.send(sender=None, order_id="1001", amount=499, number_of_items=1)
    out, _err = run("pjpixel_check")
    assert "Failed events: none." in out
    assert "Prisjakt conversion tracking is ready." in out


def test_check_a_shop_user_client_may_send(pjpixel_api: PrisjaktEmulator) -> None:
    # The newer portal names shop_user as the role of the PATCH and the listing.
    pjpixel_api.add_client("test-client", SECRET, ["shop_user"])
    out, err = run("pjpixel_check")
    assert "Roles: shop_user" in out
    assert "The credentials may send events." in out
    assert f"Pixel {PIXEL} exists." in out
    assert "Prisjakt conversion tracking is ready." in out
    assert err == ""


def test_check_an_event_publisher_may_send_one_at_a_time(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_client("test-client", SECRET, ["event_publisher"])
    out, err = run("pjpixel_check")
    assert "The credentials may send events." in out
    assert "one at a time only" in out
    assert "need the role shop_user / admin" in out
    assert "Pixel: not checked: listing events needs the role shop_user / admin." in out
    assert "Prisjakt conversion tracking is ready." in out
    assert err == ""


def test_check_no_roles(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_client("test-client", SECRET, [])
    out, err, message = fails("pjpixel_check")
    assert "Roles: none" in out
    assert "may not send events: that needs the role shop_user / event_publisher / admin" in err
    assert "not ready" in message


def test_check_wrong_secret_is_401(pjpixel_api: PrisjaktEmulator) -> None:
    with override_settings(
        PJPIXEL={"PIXEL_ID": PIXEL, "CLIENT_ID": "test-client", "CLIENT_SECRET": "wrong"}
    ):
        _out, err, message = fails("pjpixel_check")
    assert "Credentials: HTTP 401: Prisjakt refused the credentials" in err
    assert "Invalid client credentials" in err
    assert "request id" in err
    assert "Pixel: HTTP 401" in err
    assert "may not send events" not in err
    assert "not ready" in message


def test_check_unknown_pixel_is_404(pjpixel_api: PrisjaktEmulator) -> None:
    with override_settings(
        PJPIXEL={"PIXEL_ID": "nope", "CLIENT_ID": "test-client", "CLIENT_SECRET": SECRET}
    ):
        out, err, _message = fails("pjpixel_check")
    assert "Roles: event_publisher, shop_user" in out
    assert "Pixel: HTTP 404: Prisjakt does not know the pixel — Pixel not found" in err


def test_check_forbidden_and_server_error(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([403, 500])
    _out, err, _message = fails("pjpixel_check")
    assert "Credentials: HTTP 403: the credentials lack the role" in err
    assert "Pixel: HTTP 500 — Internal Server Error" in err


def test_check_timeout_and_reset(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script(["timeout", "reset"])
    _out, err, _message = fails("pjpixel_check")
    assert "Credentials: the request to Prisjakt timed out" in err
    assert "Pixel: Prisjakt could not be reached" in err


def test_check_without_settings(pjpixel_api: PrisjaktEmulator) -> None:
    with override_settings(PJPIXEL={"CLIENT_ID": "test-client", "CLIENT_SECRET": SECRET}):
        out, err, message = fails("pjpixel_check")
    assert "Pixel: -" in out
    assert 'The settings are incomplete: PJPIXEL["PIXEL_ID"] not set' in err
    assert message == "Prisjakt conversion tracking is not ready."
    assert pjpixel_api.requests == []


def test_check_odd_client_answer(pjpixel_api: PrisjaktEmulator, monkeypatch: Any) -> None:
    from django_pjpixel.api.client import ApiResult, PrisjaktClient

    monkeypatch.setattr(PrisjaktClient, "get_client", lambda self: ApiResult(200, ["x"]))
    out, _err, _message = fails("pjpixel_check")
    assert "Credentials: client test-client" in out
    assert "Roles: none" in out


def test_describe_other_errors() -> None:
    from django_pjpixel.exceptions import PrisjaktAPIError
    from django_pjpixel.management.commands.pjpixel_check import describe

    assert describe(PrisjaktAPIError("strange"), "it") == "strange"


# -- pjpixel_events --------------------------------------------------------------------


def seed(api: PrisjaktEmulator, count: int) -> list[dict[str, Any]]:
    now = datetime.now(dt_timezone.utc)
    return [
        api.add_event(
            event_time=now - timedelta(minutes=index),
            external_event_id=f"order-{index}",
            amount=100 + index,
            number_of_items=index + 1,
            signed_click_id="239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125",
        )
        for index in range(count)
    ]


def today_args() -> list[str]:
    """Yesterday and today: ``seed``'s events of the last minutes, even just after midnight."""
    today = timezone.localtime(datetime.now(dt_timezone.utc)).date()
    return ["--from", (today - timedelta(days=1)).isoformat(), "--to", today.isoformat()]


def test_events_csv_every_page_each_event_once(use_tz: bool, pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.page_size = 2
    pjpixel_api.unstable_pages = True
    events = seed(pjpixel_api, 7)
    out, _err = run("pjpixel_events", *today_args())
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == [
        "id",
        "click_id",
        "external_event_id",
        "event_name",
        "event_time",
        "amount",
        "currency",
        "number_of_items",
    ]
    assert [row[0] for row in rows[1:]] == [e["id"] for e in events]
    assert rows[1][1:] == [
        "239cd31f-9d43-4cb4-b8dc-2057fe18c289",
        "order-0",
        "purchase",
        events[0]["event_time"],
        "100",
        "SEK",
        "1",
    ]
    assert len([r for r in pjpixel_api.requests if r.path.endswith("/events")]) == 4


def test_events_json_array(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.page_size = 3
    events = seed(pjpixel_api, 5)
    out, _err = run("pjpixel_events", *today_args(), "--format", "json")
    assert out.startswith("[\n")
    assert json.loads(out) == events


def test_events_json_empty(pjpixel_api: PrisjaktEmulator) -> None:
    out, _err = run("pjpixel_events", *today_args(), "--format", "json")
    assert json.loads(out) == []


def test_events_csv_odd_values(pjpixel_api: PrisjaktEmulator) -> None:
    from django_pjpixel.record.exports import safe_cell  # the cells of pjpixel_events' CSV

    assert safe_cell(None) == ""
    assert safe_cell({"a": 1}) == '{"a": 1}'
    assert safe_cell(3) == "3"
    out, _err = run("pjpixel_events", *today_args())
    assert out.splitlines()[0].startswith("id,click_id")


def test_events_without_dates_lists_the_last_7_days(
    use_tz: bool, pjpixel_api: PrisjaktEmulator
) -> None:
    events = seed(pjpixel_api, 2)
    pjpixel_api.add_event(
        event_time=datetime.now(dt_timezone.utc) - timedelta(days=8), external_event_id="old"
    )
    out, _err = run("pjpixel_events", "--format", "json")
    assert json.loads(out) == events
    [listing] = [r for r in pjpixel_api.requests if r.path.endswith("/events")]
    today = timezone.localtime(datetime.now(dt_timezone.utc)).date()
    start = datetime.fromisoformat(listing.query["from"].replace("Z", "+00:00"))
    first_day = start.astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    assert first_day == today - timedelta(days=6)


def test_events_takes_from_and_to_together(pjpixel_api: PrisjaktEmulator) -> None:
    _out, _err, message = fails("pjpixel_events", "--from", "2025-03-01")
    assert message == "Give --from and --to together."
    assert pjpixel_api.requests == []


def test_events_range_over_60_days_refused_before_any_request(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    _out, _err, message = fails("pjpixel_events", "--from", "2025-01-01", "--to", "2025-03-02")
    assert "at most 60 days" in message
    assert pjpixel_api.requests == []


def test_events_bad_date() -> None:
    with pytest.raises(CommandError, match="is not a date as YYYY-MM-DD"):
        call_command("pjpixel_events", "--from", "yesterday", "--to", "2025-03-02")


def test_events_api_error(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([401])
    _out, _err, message = fails("pjpixel_events", *today_args())
    assert "HTTP 401" in message


def test_events_without_pixel() -> None:
    with override_settings(PJPIXEL={"CLIENT_ID": "c", "CLIENT_SECRET": SECRET}):
        _out, _err, message = fails("pjpixel_events", *today_args())
    assert "PIXEL_ID" in message


def test_check_counts_failed_events_in_swedish(pjpixel_api: PrisjaktEmulator) -> None:
    from django.utils import translation

    from django_pjpixel.ledger.purchases import track_purchase

    track_purchase(order_id=None, amount=10, number_of_items=1)  # type: ignore[arg-type]
    with translation.override("sv"):
        out, _err, message = fails("pjpixel_check")
    assert "Misslyckade händelser: 1, varav 1 rapporterade av butiken" in out
    assert "Den senaste, order " in out
    assert message == "Prisjakts konverteringsspårning är inställd, men 1 rapport misslyckades."
