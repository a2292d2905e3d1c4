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

from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.responses_adapter import EmulatorMock
from tests.helpers import MARKETS, markets

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
    assert out.rstrip().endswith("Prisjakt conversion tracking is ready.")
    assert seen(api) == [
        ("/clients/shop-se", "shop-se"),
        (f"/pixels/{SE}/events", "shop-se"),
        ("/clients/shop-no", "shop-no"),
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
    assert message == "'fi' is not a market (markets: se, no)"
    assert api.requests == []
