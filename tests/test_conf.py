from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings

from django_pjpixel.conf import (
    DEFAULT_API_URL,
    DEFAULT_SCRIPT_URL,
    DEFAULT_TOKEN_URL,
    DEFAULTS,
    SUPPORTED_CURRENCIES,
    pjpixel_settings,
)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"PJPIXEL_{name}", raising=False)
    return monkeypatch


@override_settings(PJPIXEL={})
def test_defaults(no_env: pytest.MonkeyPatch) -> None:
    conf = pjpixel_settings
    assert conf.raw == {}
    assert conf.PIXEL_ID == ""
    assert conf.CLIENT_ID == ""
    assert conf.CLIENT_SECRET == ""
    assert conf.API_URL == DEFAULT_API_URL == "https://api.pj.nu/click-conversion"
    assert conf.AUTH == "headers"
    assert conf.TOKEN_URL == DEFAULT_TOKEN_URL == "https://auth.pj.nu/oauth2/token"
    assert conf.CONNECT_TIMEOUT == 3.05
    assert conf.READ_TIMEOUT == 10.0
    assert conf.TIMEOUT == (3.05, 10.0)
    assert conf.ENABLED is True
    assert conf.DEFAULT_CURRENCY == "SEK"
    assert conf.AMOUNT_UNITS == "major"
    assert timedelta(days=30) == conf.ATTRIBUTION_WINDOW
    assert conf.CONSENT is None
    assert conf.CLICK_STORE == "session"
    assert conf.COOKIE_NAME == "pjpixel_click"
    assert conf.SCRIPT_URL == DEFAULT_SCRIPT_URL == "https://cdn.pji.nu/libs/pjpixel/pjpixel.min.js"
    assert timedelta(days=90) == conf.RETENTION
    assert conf.RETRY_BASE_DELAY == 30.0
    assert conf.RETRY_MAX_DELAY == 3600.0
    assert conf.MAX_ATTEMPTS == 15
    assert timedelta(days=3) == conf.MAX_AGE
    assert conf.LEASE_SECONDS == 120.0
    assert conf.MAX_COUNTDOWN == 600.0
    assert conf.PUBLISH_RETRIES == 2
    assert conf.PUBLISH_TIMEOUT == 2.0
    assert conf.BATCH_SIZE == 100
    assert conf.DELIVER_DUE_LIMIT == 10_000
    assert conf.MAX_PAGES == 200


def test_every_default_has_a_property() -> None:
    for name in DEFAULTS:
        assert isinstance(getattr(type(pjpixel_settings), name), property), name


def test_supported_currencies() -> None:
    assert set(SUPPORTED_CURRENCIES) == {"DKK", "EUR", "GBP", "NOK", "NZD", "SEK"}


def test_test_settings_are_read() -> None:
    assert pjpixel_settings.PIXEL_ID == "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
    assert pjpixel_settings.CLIENT_ID == "test-client"
    assert pjpixel_settings.CLIENT_SECRET == "s3cr3t-never-shown"


def test_override_settings_takes_effect_without_reload() -> None:
    with override_settings(PJPIXEL={"PIXEL_ID": "other", "READ_TIMEOUT": 30}):
        assert pjpixel_settings.PIXEL_ID == "other"
        assert pjpixel_settings.TIMEOUT == (3.05, 30.0)
    assert pjpixel_settings.PIXEL_ID == "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
    assert pjpixel_settings.READ_TIMEOUT == 10.0


def test_settings_fixture_takes_effect(settings: Any) -> None:
    settings.PJPIXEL = {"AUTH": "oauth2", "MAX_PAGES": "7"}
    assert pjpixel_settings.AUTH == "oauth2"
    assert pjpixel_settings.MAX_PAGES == 7


@pytest.mark.parametrize("value", [None, "not a dict", ["PIXEL_ID"]])
def test_pjpixel_that_is_not_a_dict_reads_as_empty(value: object, no_env: object) -> None:
    with override_settings(PJPIXEL=value):
        assert pjpixel_settings.raw == {}
        assert pjpixel_settings.API_URL == DEFAULT_API_URL


def test_missing_pjpixel_reads_as_empty(settings: Any, no_env: object) -> None:
    del settings.PJPIXEL
    assert pjpixel_settings.raw == {}
    assert pjpixel_settings.PIXEL_ID == ""


@override_settings(PJPIXEL={"API_URL": "https://api.schibsted.com/prisjakt/click/"})
def test_api_url_loses_its_trailing_slash() -> None:
    assert pjpixel_settings.API_URL == "https://api.schibsted.com/prisjakt/click"


@override_settings(PJPIXEL={})
def test_environment_supplies_missing_credentials(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("PJPIXEL_CLIENT_SECRET", "from-env-secret")
    no_env.setenv("PJPIXEL_CLIENT_ID", "from-env-client")
    no_env.setenv("PJPIXEL_PIXEL_ID", "from-env-pixel")
    assert pjpixel_settings.CLIENT_SECRET == "from-env-secret"
    assert pjpixel_settings.CLIENT_ID == "from-env-client"
    assert pjpixel_settings.PIXEL_ID == "from-env-pixel"


def test_the_dict_wins_over_the_environment(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("PJPIXEL_CLIENT_SECRET", "from-env-secret")
    assert pjpixel_settings.CLIENT_SECRET == "s3cr3t-never-shown"


@override_settings(PJPIXEL={})
def test_empty_environment_value_falls_back_to_default(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("PJPIXEL_CLIENT_SECRET", "")
    assert pjpixel_settings.CLIENT_SECRET == ""


@override_settings(PJPIXEL={})
def test_environment_is_read_only_for_credentials(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("PJPIXEL_API_URL", "https://evil.example")
    assert pjpixel_settings.API_URL == DEFAULT_API_URL


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(days=7), timedelta(days=7)),
        (3600, timedelta(hours=1)),
        (90.5, timedelta(seconds=90.5)),
        ("60", timedelta(minutes=1)),
    ],
)
def test_windows_accept_timedelta_or_seconds(value: object, expected: timedelta) -> None:
    with override_settings(PJPIXEL={"ATTRIBUTION_WINDOW": value, "MAX_AGE": value}):
        assert expected == pjpixel_settings.ATTRIBUTION_WINDOW
        assert expected == pjpixel_settings.MAX_AGE


@override_settings(PJPIXEL={"CONSENT": "shop.consent.allowed", "ENABLED": 0, "CLIENT_ID": None})
def test_values_are_coerced() -> None:
    assert pjpixel_settings.CONSENT == "shop.consent.allowed"
    assert pjpixel_settings.ENABLED is False
    assert pjpixel_settings.CLIENT_ID == ""


def test_mirror_and_health_defaults() -> None:
    conf = pjpixel_settings
    assert conf.SYNC_DAYS == 7
    assert timedelta(hours=1) == conf.RECONCILE_GRACE
    assert timedelta(minutes=15) == conf.HEALTH_MAX_DUE_AGE
    assert (conf.HEALTH_MAX_FAILED, conf.HEALTH_MAX_DEAD, conf.FAILURE_STREAK) == (10, 0, 5)
    assert timedelta(hours=3) == conf.HEALTH_MAX_SYNC_AGE
    with override_settings(PJPIXEL={"RECONCILE_GRACE": 60, "HEALTH_MAX_SYNC_AGE": 7200}):
        assert timedelta(minutes=1) == conf.RECONCILE_GRACE
        assert timedelta(hours=2) == conf.HEALTH_MAX_SYNC_AGE
