"""``pjpixel_check`` and ``pjpixel_events`` for a shop with several markets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_pjpixel.models import ConversionEvent, PrisjaktSync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.responses_adapter import EmulatorMock
from tests.helpers import MARKETS, make_event, markets

pytestmark = pytest.mark.django_db

SE, NO = MARKETS["se"]["PIXEL_ID"], MARKETS["no"]["PIXEL_ID"]
SECRETS = [MARKETS[key]["CLIENT_SECRET"] for key in MARKETS]


@pytest.fixture
def api(pjpixel: dict[str, Any]) -> Iterator[PrisjaktEmulator]:
    pjpixel["PIXELS"] = markets("se", "no")
    with EmulatorMock(emulator_from_settings()) as emulator:
        yield emulator


def run(name: str, *args: str) -> tuple[str, str, str | None]:
    """The command's stdout, stderr and, when it fails, its message (exit status 1)."""
    out, err = io.StringIO(), io.StringIO()
    message = None
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except CommandError as error:
        message, returncode = str(error), error.returncode
        assert returncode == 1
    text = out.getvalue() + err.getvalue() + (message or "")
    assert not any(secret in text for secret in SECRETS)
    return out.getvalue(), err.getvalue(), message


def seen(api: PrisjaktEmulator) -> list[tuple[str, str]]:
    return [(r.path, r.headers.get("client-id", "")) for r in api.requests]


def test_check_reports_each_market_with_its_own_credentials(api: PrisjaktEmulator) -> None:
    out, err, message = run("pjpixel_check")
    assert message is None
    assert err == ""
    se, no = out.split("Market no")
    assert "Market se" in se
    assert f"Pixel {SE} exists." in se
    assert "Credentials: client shop-se" in se
    assert f"Pixel {NO} exists." in no
    assert "Credentials: client shop-no" in no
    assert "Failed events: none." in out
    assert out.count("First sync of Prisjakt's events: 0 events in the last 7 days.") == 2
    assert out.rstrip().endswith("Prisjakt conversion tracking is ready.")
    assert seen(api) == [
        ("/clients/shop-se", "shop-se"),
        (f"/pixels/{SE}/events", "shop-se"),
        (f"/pixels/{SE}/events", "shop-se"),  # the first sync
        ("/clients/shop-no", "shop-no"),
        (f"/pixels/{NO}/events", "shop-no"),
        (f"/pixels/{NO}/events", "shop-no"),
    ]


def test_check_fails_when_one_market_is_not_ready(
    api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"]["no"]["CLIENT_SECRET"] = "wrong"
    out, err, message = run("pjpixel_check")
    assert message == "Prisjakt conversion tracking is not ready (markets: no)."
    assert f"Pixel {SE} exists." in out
    assert "Credentials: HTTP 401: Prisjakt refused the credentials" in err


def test_check_names_a_markets_missing_settings_without_asking_prisjakt(
    api: PrisjaktEmulator, pjpixel: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PJPIXEL_NO_CLIENT_SECRET", raising=False)
    del pjpixel["PIXELS"]["no"]["CLIENT_SECRET"]
    _out, err, message = run("pjpixel_check")
    assert message == "Prisjakt conversion tracking is not ready (markets: no)."
    assert 'The settings are incomplete: PJPIXEL["PIXELS"]["no"]["CLIENT_SECRET"] not set' in err
    assert all(client == "shop-se" for _path, client in seen(api))


def test_check_without_a_valid_market(pjpixel: dict[str, Any]) -> None:
    pjpixel["PIXELS"] = {"Sweden!": {}}
    _out, _err, message = run("pjpixel_check")
    assert message == 'PJPIXEL["PIXELS"] names no market; manage.py check says why.'


def today_args() -> list[str]:
    today = timezone.localtime(datetime.now(dt_timezone.utc)).date().isoformat()
    return ["--from", today, "--to", today]


def test_events_of_a_market_with_its_credentials(api: PrisjaktEmulator) -> None:
    api.add_event(SE, external_event_id="order-se")
    api.add_event(NO, external_event_id="order-no", currency="NOK")
    out, _err, message = run("pjpixel_events", *today_args(), "--pixel", "no", "--format", "json")
    assert message is None
    assert [event["external_event_id"] for event in json.loads(out)] == ["order-no"]
    assert seen(api) == [(f"/pixels/{NO}/events", "shop-no")]
    out, _err, _message = run("pjpixel_events", *today_args(), "--format", "json")
    assert [event["external_event_id"] for event in json.loads(out)] == ["order-se"]  # the first


def test_events_of_a_market_the_shop_does_not_have(api: PrisjaktEmulator) -> None:
    _out, _err, message = run("pjpixel_events", *today_args(), "--pixel", "fi")
    assert message == "--pixel: 'fi' is not a market (markets: se, no)"
    assert api.requests == []


# -- pjpixel_sync, pjpixel_reconcile and pjpixel_check --pixel with several markets -----


def test_sync_without_pixel_mirrors_every_market_with_its_credentials(
    api: PrisjaktEmulator,
) -> None:
    api.add_event(SE, external_event_id="order-se")
    api.add_event(NO, external_event_id="order-no", currency="NOK")
    out, err, message = run("pjpixel_sync", "--days", "1")
    assert message is None
    assert err == ""
    se, no = out.split("Market no")
    assert "Market se" in se
    assert "1 events at Prisjakt" in se
    assert "1 events at Prisjakt" in no
    assert seen(api) == [(f"/pixels/{SE}/events", "shop-se"), (f"/pixels/{NO}/events", "shop-no")]
    assert set(PrisjaktSync.objects.filter(complete=True).values_list("pixel_id", flat=True)) == {
        SE,
        NO,
    }


def test_sync_goes_on_past_a_market_refused_and_fails_naming_it(
    api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"]["se"]["CLIENT_SECRET"] = "wrong"
    out, err, message = run("pjpixel_sync", "--days", "1")
    assert message == "The sync failed for markets: se."
    assert "HTTP 401" in err
    assert "The mirror is up to date." in out.split("Market no")[1]
    assert PrisjaktSync.objects.filter(pixel_id=NO, complete=True).exists()


def test_reconcile_needs_the_market_named(api: PrisjaktEmulator) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("pjpixel_reconcile", stdout=out, stderr=err)
    assert excinfo.value.returncode == 2
    assert str(excinfo.value) == "Name the market to compare: --pixel KEY (markets: se, no)."
    with pytest.raises(CommandError) as excinfo:
        call_command("pjpixel_reconcile", "--pixel", "no", stdout=out, stderr=err)
    assert excinfo.value.returncode == 2
    assert "run manage.py pjpixel_sync --pixel no over it" in str(excinfo.value)


@pytest.mark.parametrize("command", ["pjpixel_check", "pjpixel_sync", "pjpixel_events"])
def test_an_empty_market_key_is_refused(api: PrisjaktEmulator, command: str) -> None:
    dates = today_args() if command == "pjpixel_events" else []
    _out, _err, message = run(command, *dates, "--pixel", "")
    assert message == "--pixel: '' is not a market (markets: se, no)"
    assert api.requests == []


def test_check_of_one_market_counts_its_failed_events(api: PrisjaktEmulator) -> None:
    failed = ConversionEvent.Status.FAILED
    make_event("failed-no", pixel_id=NO, status=failed)
    make_event("failed-se", pixel_id=SE, status=failed)
    make_event("failed-nowhere", pixel_id="", status=failed)
    out, _err, message = run("pjpixel_check", "--pixel", "no")
    assert message == "Prisjakt conversion tracking is set up, but 1 report failed."
    assert "Failed events: 1, 0 of them" in out
    assert "The latest, order failed-no: -" in out
    out, _err, message = run("pjpixel_check")
    assert "Failed events: 3, 0 of them" in out
    assert message == "Prisjakt conversion tracking is set up, but 3 reports failed."
