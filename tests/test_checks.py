from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.http import HttpRequest
from django.test import override_settings

from django_pjpixel.checks import check_settings, is_loopback, sqlite_advice
from tests.helpers import check_command_output

BASE: dict[str, Any] = dict(settings.PJPIXEL)
PJCLID = "django_pjpixel.middleware.PjclidMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
MIDDLEWARE: list[str] = list(settings.MIDDLEWARE)
NOT_CALLABLE = "a string"


def consent_hook(request: HttpRequest) -> bool:
    return True


def pjpixel(**extra: Any) -> dict[str, Any]:
    return {"PJPIXEL": {**BASE, **extra}}


@pytest.fixture(autouse=True)
def _no_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"PJPIXEL_{key}", raising=False)


# Each case: the settings overridden, and exactly the ids check_settings() reports.
CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    # E001: PJPIXEL is not a dict
    "E001 string": ({"PJPIXEL": "pixel"}, ["E001"]),
    "E001 list": ({"PJPIXEL": [("PIXEL_ID", "x")]}, ["E001"]),
    # E005: not an absolute http(s) URL, or credentials in it
    "E005 no scheme": (pjpixel(API_URL="api.pj.nu/click-conversion"), ["E005"]),
    "E005 ftp": (pjpixel(API_URL="ftp://api.pj.nu/"), ["E005"]),
    "E005 no host": (pjpixel(API_URL="https://"), ["E005"]),
    "E005 not a string": (pjpixel(API_URL=42), ["E005"]),
    "E005 broken IPv6": (pjpixel(API_URL="https://[::1/x"), ["E005"]),
    "E005 credentials": (pjpixel(API_URL="https://id:secret@api.pj.nu/x"), ["E005"]),
    "E005 token url": (pjpixel(AUTH="oauth2", TOKEN_URL="auth.pj.nu"), ["E005"]),
    # E006: plain http beyond loopback
    "E006 api": (pjpixel(API_URL="http://api.pj.nu/click-conversion"), ["E006"]),
    "E006 token": (pjpixel(AUTH="oauth2", TOKEN_URL="http://auth.pj.nu/token"), ["E006"]),
    "E006 private address": (pjpixel(API_URL="http://10.0.0.5:8000"), ["E006"]),
    "E005 script url": (pjpixel(SCRIPT_URL="cdn.pji.nu/libs/pjpixel/pjpixel.min.js"), ["E005"]),
    "E006 script url": (pjpixel(SCRIPT_URL="http://cdn.pji.nu/pjpixel.min.js"), ["E006"]),
    # E007: the click id pattern is not a regular expression
    "E007 click pattern unbalanced": (pjpixel(CLICK_ID_PATTERN="[0-9a-f"), ["E007"]),
    "E007 click pattern not a string": (pjpixel(CLICK_ID_PATTERN=42), ["E007"]),
    "a click pattern": (pjpixel(CLICK_ID_PATTERN=r"[0-9a-f]{40}"), []),
    # E007: wrong type or out of range
    "E007 ENABLED": (pjpixel(ENABLED="yes"), ["E007"]),
    "E007 AUTH": (pjpixel(AUTH="basic"), ["E007"]),
    "E007 AMOUNT_UNITS": (pjpixel(AMOUNT_UNITS="cents"), ["E007"]),
    "E007 timeout zero": (pjpixel(CONNECT_TIMEOUT=0), ["E007"]),
    "E007 timeout too long": (pjpixel(READ_TIMEOUT=301), ["E007"]),
    "E007 timeout string": (pjpixel(READ_TIMEOUT="10"), ["E007"]),
    "E007 timeout bool": (pjpixel(READ_TIMEOUT=True), ["E007"]),
    "E007 timeout NaN": (pjpixel(CONNECT_TIMEOUT=float("nan")), ["E007"]),
    "E007 infinite delay": (pjpixel(RETRY_MAX_DELAY=float("inf")), ["E007"]),
    "E007 negative delay": (pjpixel(RETRY_BASE_DELAY=-1), ["E007"]),
    "E007 attempts float": (pjpixel(MAX_ATTEMPTS=1.5), ["E007"]),
    "E007 attempts zero": (pjpixel(MAX_ATTEMPTS=0), ["E007"]),
    "E007 publish retries": (pjpixel(PUBLISH_RETRIES=11), ["E007"]),
    "E007 batch size": (pjpixel(BATCH_SIZE=1001), ["E007"]),
    # A countdown past RabbitMQ's patience (consumer_timeout, 30 min) once the run is added.
    "E007 countdown": (pjpixel(MAX_COUNTDOWN=901.0), ["E007"]),
    "E007 countdown of the old default": (pjpixel(MAX_COUNTDOWN=3000.0), ["E007"]),
    "E007 window zero": (pjpixel(ATTRIBUTION_WINDOW=timedelta(0)), ["E007"]),
    "E007 window negative": (pjpixel(ATTRIBUTION_WINDOW=-5), ["E007"]),
    "E007 window string": (pjpixel(ATTRIBUTION_WINDOW="30 days"), ["E007"]),
    "E007 window list": (pjpixel(ATTRIBUTION_WINDOW=[30]), ["E007"]),
    "E007 window infinite": (pjpixel(ATTRIBUTION_WINDOW=float("inf")), ["E007"]),
    "E007 window NaN": (pjpixel(ATTRIBUTION_WINDOW=float("nan")), ["E007"]),
    "E007 window huge": (pjpixel(ATTRIBUTION_WINDOW=10**20), ["E007"]),
    "E007 max age bool": (pjpixel(MAX_AGE=True), ["E007"]),
    "E007 CLICK_STORE": (pjpixel(CLICK_STORE="database"), ["E007"]),
    "E007 COOKIE_NAME empty": (pjpixel(COOKIE_NAME=""), ["E007"]),
    "E007 COOKIE_NAME space": (pjpixel(COOKIE_NAME="pjpixel click"), ["E007"]),
    "E007 COOKIE_NAME semicolon": (pjpixel(COOKIE_NAME="a;b"), ["E007"]),
    "E007 COOKIE_NAME not a string": (pjpixel(COOKIE_NAME=7), ["E007"]),
    "E007 RETENTION": (pjpixel(RETENTION="90 days"), ["E007"]),
    "E007 sync days zero": (pjpixel(SYNC_DAYS=0), ["E007"]),
    "E007 grace negative": (pjpixel(RECONCILE_GRACE=timedelta(hours=-1)), ["E007"]),
    "E007 due age string": (pjpixel(HEALTH_MAX_DUE_AGE="15 minutes"), ["E007"]),
    "E007 failed negative": (pjpixel(HEALTH_MAX_FAILED=-1), ["E007"]),
    "E007 streak zero": (pjpixel(FAILURE_STREAK=0), ["E007"]),
    # E008: a currency Prisjakt does not accept
    "E008": (pjpixel(DEFAULT_CURRENCY="USD"), ["E008"]),
    "E008 lower case": (pjpixel(DEFAULT_CURRENCY="sek"), ["E008"]),
    # E009: CONSENT is not an importable callable
    "E009 no module": (pjpixel(CONSENT="shop.nowhere.allowed"), ["E009"]),
    "E009 no dot": (pjpixel(CONSENT="allowed"), ["E009"]),
    "E009 not callable": (pjpixel(CONSENT="tests.test_checks.NOT_CALLABLE"), ["E009"]),
    "E009 wrong type": (pjpixel(CONSENT=42), ["E009"]),
    # E010: PjclidMiddleware before SessionMiddleware
    "E010": ({"MIDDLEWARE": [PJCLID, SESSIONS]}, ["E010"]),
    # W001: unknown keys
    "W001": (pjpixel(PIXELID="typo"), ["W001"]),
    "W001 mixed key types": ({"PJPIXEL": {**BASE, 7: 1, "TIMEOUT": 1}}, ["W001"]),
    # W002: PjclidMiddleware missing
    "W002": ({"MIDDLEWARE": [m for m in MIDDLEWARE if m != PJCLID]}, ["W002"]),
    "W002 None": ({"MIDDLEWARE": None}, ["W002"]),
    # W003: sessions end before the window does
    "W003 age": ({"SESSION_COOKIE_AGE": 60 * 60 * 24 * 14}, ["W003"]),
    "W003 browser close": ({"SESSION_EXPIRE_AT_BROWSER_CLOSE": True}, ["W003"]),
    "W003 longer window": (pjpixel(ATTRIBUTION_WINDOW=timedelta(days=60)), ["W003"]),
    "W003 window in seconds": (pjpixel(ATTRIBUTION_WINDOW=40 * 86400), ["W003"]),
    # W005: click ids erased before the window ends
    "W005": (pjpixel(RETENTION=timedelta(days=29)), ["W005"]),
    "W005 longer window": (
        {**pjpixel(ATTRIBUTION_WINDOW=timedelta(days=100)), "SESSION_COOKIE_AGE": 10**8},
        ["W005"],
    ),
}

CLEAN: dict[str, dict[str, Any]] = {
    "tests/settings.py": {},
    "disabled without credentials": {"PJPIXEL": {"ENABLED": False}},
    "loopback http 127.0.0.1": pjpixel(API_URL="http://127.0.0.1:8000/click-conversion"),
    "loopback http ::1": pjpixel(API_URL="http://[::1]:8000"),
    "loopback http localhost": pjpixel(API_URL="http://localhost:8000"),
    "oauth2": pjpixel(AUTH="oauth2"),
    "bad token url unused": pjpixel(AUTH="headers", TOKEN_URL="nonsense"),
    "consent callable": pjpixel(CONSENT=consent_hook),
    "consent path": pjpixel(CONSENT="tests.test_checks.consent_hook"),
    "shorter window, default age": {
        **pjpixel(ATTRIBUTION_WINDOW=timedelta(days=7)),
        "SESSION_COOKIE_AGE": 60 * 60 * 24 * 14,
    },
    "every number at a bound": pjpixel(
        CONNECT_TIMEOUT=300,
        READ_TIMEOUT=0.001,
        RETRY_BASE_DELAY=0,
        MAX_ATTEMPTS=1,
        PUBLISH_RETRIES=10,
        BATCH_SIZE=1000,
        AMOUNT_UNITS="minor",
        MAX_AGE=60,
        DEFAULT_CURRENCY="EUR",
    ),
    "no session middleware": {"MIDDLEWARE": [PJCLID]},
    # The cookie store needs no session: neither its age (W003) nor its middleware (E010).
    "cookie store, short sessions": {
        **pjpixel(CLICK_STORE="cookie"),
        "SESSION_COOKIE_AGE": 3600,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
    },
    "cookie store, before sessions": {
        **pjpixel(CLICK_STORE="cookie"),
        "MIDDLEWARE": [PJCLID, SESSIONS],
    },
    "session store named": pjpixel(CLICK_STORE="session", COOKIE_NAME="__Host-pj.click"),
    "script on PriceSpy's CDN": pjpixel(SCRIPT_URL="https://cdn.pricespy.co.nz/pjpixel.min.js"),
    "script on a loopback emulator": pjpixel(SCRIPT_URL="http://127.0.0.1:8765/pjpixel.min.js"),
    "retention as long as the window": pjpixel(RETENTION=30 * 86400),
}


def run(overrides: dict[str, Any]) -> list[CheckMessage]:
    with override_settings(**overrides):
        return check_settings()


@pytest.mark.parametrize(("overrides", "expected"), CASES.values(), ids=CASES.keys())
def test_check_settings(overrides: dict[str, Any], expected: list[str]) -> None:
    messages = run(overrides)
    assert [m.id for m in messages] == [f"django_pjpixel.{code}" for code in expected]
    for message in messages:
        assert message.hint
        assert message.msg
        assert message.is_serious() is (message.id or "").startswith("django_pjpixel.E")


# MIDDLEWARE = None crashes the admin's own checks: direct calls only.
COMMAND_CASES = {name: case for name, case in CASES.items() if name != "W002 None"}


@pytest.mark.parametrize(
    ("overrides", "expected"), COMMAND_CASES.values(), ids=COMMAND_CASES.keys()
)
def test_check_command(overrides: dict[str, Any], expected: list[str]) -> None:
    with override_settings(**overrides):
        output = check_command_output(expected)
    for code in expected:
        assert f"django_pjpixel.{code}" in output
    assert output.count("HINT:") >= len(expected)


@pytest.mark.parametrize("overrides", CLEAN.values(), ids=CLEAN.keys())
def test_clean_configuration(overrides: dict[str, Any]) -> None:
    assert run(overrides) == []


def test_clean_configuration_through_the_command() -> None:
    stdout, stderr = StringIO(), StringIO()
    call_command("check", stdout=stdout, stderr=stderr)
    assert "System check identified no issues" in stdout.getvalue()
    assert stderr.getvalue() == ""


def test_missing_pjpixel_setting(settings: Any) -> None:
    """The credentials are credential_checks' (W007, and E002-E004 at deployment)."""
    del settings.PJPIXEL
    assert check_settings() == []


def test_messages_never_show_the_secret() -> None:
    overrides = pjpixel(API_URL="https://id:s3cr3t-never-shown@api.pj.nu/x", PIXELID=1)
    for message in run(overrides):
        assert "s3cr3t-never-shown" not in message.msg
        assert "s3cr3t-never-shown" not in (message.hint or "")


def test_hints_name_the_fix() -> None:
    [w003] = run({"SESSION_COOKIE_AGE": 3600})
    assert "2592000" in (w003.hint or "")
    [e010] = run({"MIDDLEWARE": [PJCLID, SESSIONS]})
    assert "after SessionMiddleware" in (e010.hint or "")
    assert 'PJPIXEL["CLICK_STORE"] = "cookie"' in (w003.hint or "")
    [e006] = run(pjpixel(SCRIPT_URL="http://cdn.pji.nu/pjpixel.min.js"))
    assert "script" in e006.msg
    assert "secret" not in e006.msg


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, False),
        ("", False),
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("api.pj.nu", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str | None, expected: bool) -> None:
    assert is_loopback(host) is expected


SQLITE = "django.db.backends.sqlite3"


@pytest.mark.parametrize(
    ("database", "version", "missing"),
    [
        ({"ENGINE": "django.db.backends.postgresql"}, (5, 2), []),
        ({"ENGINE": SQLITE}, (5, 2), ["a busy timeout", "IMMEDIATE transactions"]),
        ({"ENGINE": SQLITE}, (4, 2), ["a busy timeout"]),
        ({"ENGINE": SQLITE, "OPTIONS": {"timeout": 20}}, (4, 2), []),
        ({"ENGINE": SQLITE, "OPTIONS": {"timeout": 20}}, (5, 1), ["IMMEDIATE transactions"]),
        ({"ENGINE": SQLITE, "OPTIONS": {"timeout": 1}}, (4, 2), ["a busy timeout of 5 s or more"]),
        ({"ENGINE": SQLITE, "OPTIONS": {"timeout": True}}, (4, 2), ["a busy timeout"]),
        (
            {"ENGINE": SQLITE, "OPTIONS": {"timeout": 20, "transaction_mode": "immediate"}},
            (6, 0),
            [],
        ),
        (
            {"ENGINE": SQLITE, "OPTIONS": {"timeout": 5, "transaction_mode": "EXCLUSIVE"}},
            (5, 2),
            [],
        ),
        (
            {"ENGINE": SQLITE, "OPTIONS": {"timeout": 20, "transaction_mode": "DEFERRED"}},
            (5, 2),
            ["IMMEDIATE transactions"],
        ),
    ],
)
def test_w004_names_what_a_shared_sqlite_file_lacks(
    database: dict[str, Any], version: tuple[int, int], missing: list[str]
) -> None:
    assert list(sqlite_advice(database, version)) == missing


def test_w004_is_reported_for_the_outbox_database(settings: Any) -> None:
    with mock.patch.dict(settings.DATABASES, {"default": {"ENGINE": SQLITE, "NAME": "x"}}):
        messages = [m for m in check_settings() if m.id == "django_pjpixel.W004"]
    (message,) = messages
    assert "'default' is SQLite without a busy timeout" in message.msg
    assert '"timeout": 20' in str(message.hint)
