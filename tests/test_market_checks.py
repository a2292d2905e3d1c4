"""The system checks of several markets, each message naming the market's key."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.checks import CheckMessage
from django.test import override_settings

from django_pjpixel.checks import check_settings
from django_pjpixel.credential_checks import check_credentials, check_credentials_set
from django_pjpixel.market_checks import check_markets
from django_pjpixel.markets import route_by_currency
from tests.helpers import MARKETS, check_command_output, markets

BASE: dict[str, Any] = dict(settings.PJPIXEL)
SINGLE = ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET")
NOT_CALLABLE = "a string"


def shop(pixels: Any = None, **extra: Any) -> dict[str, Any]:
    """``PJPIXEL`` of a shop with markets (se and no by default) and no single pixel."""
    base = {key: value for key, value in BASE.items() if key not in SINGLE}
    return {**base, "PIXELS": markets("se", "no") if pixels is None else pixels, **extra}


def market(key: str, **changes: Any) -> dict[str, Any]:
    """``MARKETS[key]`` with ``changes``; a change to None drops the setting."""
    entry = {**MARKETS[key], **changes}
    return {name: value for name, value in entry.items() if value is not None}


@pytest.fixture(autouse=True)
def _no_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("se", "no", "dk", ""):
        for name in SINGLE:
            monkeypatch.delenv(f"PJPIXEL_{key.upper()}_{name}".replace("__", "_"), raising=False)


# Each case: PJPIXEL, exactly the ids check_markets() reports, and a text each message holds.
CASES: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "E005 market API_URL": (
        shop({"se": market("se", API_URL="api.pj.nu"), "no": market("no")}),
        ["E005"],
        'PJPIXEL["PIXELS"]["se"]["API_URL"]',
    ),
    "E006 market TOKEN_URL": (
        shop({"se": market("se"), "no": market("no", AUTH="oauth2", TOKEN_URL="http://pj.nu/t")}),
        ["E006"],
        'PJPIXEL["PIXELS"]["no"]["TOKEN_URL"]',
    ),
    "E007 market AUTH": (
        shop({"se": market("se", AUTH="basic"), "no": market("no")}),
        ["E007"],
        'PJPIXEL["PIXELS"]["se"]["AUTH"]',
    ),
    # Not a dict: no markets, so the single pixel's credentials are missing too (W007).
    "E011 not a dict": (shop([("se", {})]), ["E011", "W007"], "PJPIXEL"),
    "E011 market not a dict": (
        shop({"se": market("se"), "no": "22222222"}),
        ["E011"],
        'PJPIXEL["PIXELS"]["no"] must be a dict',
    ),
    "E011 key": (
        shop({"se": market("se"), "Norway!": market("no")}),
        ["E011"],
        "'Norway!'",
    ),
    "E012 unknown key": (
        shop({"se": market("se", RATE_LIMIT_RESERVE=5), "no": market("no")}),
        ["E012"],
        'PJPIXEL["PIXELS"]["se"] has keys a market does not take: RATE_LIMIT_RESERVE',
    ),
    "E013 router nowhere": (
        shop(PIXEL_ROUTER="shop.nowhere.route"),
        ["E013"],
        "'shop.nowhere.route'",
    ),
    "E013 router not callable": (
        shop(PIXEL_ROUTER="tests.test_market_checks.NOT_CALLABLE"),
        ["E013"],
        "PIXEL_ROUTER",
    ),
    "E014 currency to an unset market": (
        shop(PIXEL_CURRENCIES={"SEK": "se", "NOK": "no", "DKK": "dk"}),
        ["E014"],
        "sends DKK to 'dk', which is not a market",
    ),
    "E014 unknown currency": (
        shop(PIXEL_CURRENCIES={"SEK": "se", "USD": "no"}),
        ["E014"],
        "'USD'",
    ),
    "E014 not a dict": (shop(PIXEL_CURRENCIES=["SEK"]), ["E014"], "PIXEL_CURRENCIES"),
    "E014 default currency": (
        shop({"no": market("no")}),
        ["E014"],
        'PJPIXEL["DEFAULT_CURRENCY"] SEK goes to no market',
    ),
    "E015 one pixel, two markets": (
        shop({"se": market("se"), "no": market("no", PIXEL_ID=MARKETS["se"]["PIXEL_ID"])}),
        ["E015"],
        "The markets se and no",
    ),
    "W006 router without markets": (
        {"PJPIXEL": {**BASE, "PIXEL_ROUTER": "shop.markets.route"}},
        ["W006"],
        "PIXEL_ROUTER",
    ),
}

CLEAN: dict[str, dict[str, Any]] = {
    "tests/settings.py": dict(BASE),
    "two markets": shop(),
    "three markets, their own URLs": shop(
        {
            "se": market("se", API_URL="https://api.pj.nu/click-conversion"),
            "no": market("no", AUTH="oauth2", TOKEN_URL="https://auth.pj.nu/oauth2/token"),
            "dk": market("dk"),
        }
    ),
    "disabled without credentials": shop({"se": {}, "no": {}}, ENABLED=False),
    "a router of the shop's": shop(PIXEL_ROUTER="tests.test_markets.route_by_order_prefix"),
    "a callable router": shop(PIXEL_ROUTER=route_by_currency, DEFAULT_CURRENCY="NOK"),
    "a currency map of the shop's": shop(
        PIXEL_CURRENCIES={"SEK": "se", "EUR": "se", "NOK": "no"}, DEFAULT_CURRENCY="EUR"
    ),
    "markets named as the shop likes": shop(
        {"sweden": market("se"), "norway_2": market("no")},
        PIXEL_CURRENCIES={"SEK": "sweden", "NOK": "norway_2"},
    ),
}


def run(pjpixel: dict[str, Any]) -> list[CheckMessage]:
    with override_settings(PJPIXEL=pjpixel):
        return check_settings() + check_markets() + check_credentials_set()


@pytest.mark.parametrize(("overrides", "expected", "text"), CASES.values(), ids=CASES.keys())
def test_check_markets(overrides: dict[str, Any], expected: list[str], text: str) -> None:
    pjpixel = overrides.get("PJPIXEL", overrides)
    messages = run(pjpixel)
    assert [m.id for m in messages] == [f"django_pjpixel.{code}" for code in expected]
    for message in messages:
        assert text in message.msg + (message.hint or "")
        assert message.hint
        assert message.is_serious() is (message.id or "").startswith("django_pjpixel.E")
        assert "s3cr3t" not in message.msg + (message.hint or "")


@pytest.mark.parametrize(("overrides", "expected", "text"), CASES.values(), ids=CASES.keys())
def test_check_command(overrides: dict[str, Any], expected: list[str], text: str) -> None:
    with override_settings(PJPIXEL=overrides.get("PJPIXEL", overrides)):
        output = check_command_output(expected)
    for code in expected:
        assert f"django_pjpixel.{code}" in output
    assert text in output
    assert output.count("HINT:") >= len(expected)


@pytest.mark.parametrize("pjpixel", CLEAN.values(), ids=CLEAN.keys())
def test_clean_markets(pjpixel: dict[str, Any]) -> None:
    assert run(pjpixel) == []


def test_a_markets_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SINGLE:
        monkeypatch.setenv(f"PJPIXEL_NO_{name}", MARKETS["no"][name])
    assert run(shop({"se": market("se"), "no": {}})) == []


def test_the_single_pixels_credentials_are_not_needed_with_markets() -> None:
    assert "PIXEL_ID" not in shop()
    with override_settings(PJPIXEL=shop()):
        assert check_settings() + check_credentials() == []
    with override_settings(PJPIXEL={**shop(), "PIXELS": {}}):
        codes = [m.id for m in check_credentials()]
    assert codes == ["django_pjpixel.E002", "django_pjpixel.E003", "django_pjpixel.E004"]


def test_without_a_pjpixel_dict_the_markets_say_nothing() -> None:
    with override_settings(PJPIXEL="pixel"):
        assert check_markets() == []
