"""System checks for the ``PJPIXEL`` settings (ids ``django_pjpixel.E0xx``/``W0xx``)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import django
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router
from django.utils.module_loading import import_string

from django_pjpixel.conf import DEFAULTS, SUPPORTED_CURRENCIES, pjpixel_settings

_MIDDLEWARE = "django_pjpixel.middleware.PjclidMiddleware"
_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"

_NUMBERS: dict[str, tuple[float, float | None]] = {
    "CONNECT_TIMEOUT": (0.001, 300),
    "READ_TIMEOUT": (0.001, 300),
    "REQUEST_DEADLINE": (0.01, 600),
    "MAX_RESPONSE_BYTES": (1024, None),
    "RETRY_BASE_DELAY": (0, None),
    "RETRY_MAX_DELAY": (0, None),
    "MAX_ATTEMPTS": (1, None),
    "LEASE_SECONDS": (1, None),
    # With a request's 600 s at most, 5 minutes short of RabbitMQ's consumer_timeout
    # (1800 s by default): a retried message is held for the countdown and the run.
    "MAX_COUNTDOWN": (1, 900),
    "PUBLISH_RETRIES": (0, 10),
    "PUBLISH_TIMEOUT": (0.01, 60),
    "PUBLISH_QUEUE_SIZE": (1, None),
    "BATCH_SIZE": (1, 1000),
    "DELIVER_DUE_LIMIT": (1, None),
    "MAX_PAGES": (1, None),
    "RATE_LIMIT_RESERVE": (0, None),
    "RATE_LIMIT_MAX_WAIT": (0, 300),
    "SYNC_DAYS": (1, 3650),
    "HEALTH_MAX_FAILED": (0, None),
    "HEALTH_MAX_DEAD": (0, None),
    "FAILURE_STREAK": (1, None),
}
_INTEGERS = {
    "MAX_RESPONSE_BYTES",
    "MAX_ATTEMPTS",
    "PUBLISH_RETRIES",
    "PUBLISH_QUEUE_SIZE",
    "BATCH_SIZE",
    "DELIVER_DUE_LIMIT",
    "MAX_PAGES",
    "RATE_LIMIT_RESERVE",
    "SYNC_DAYS",
    "HEALTH_MAX_FAILED",
    "HEALTH_MAX_DEAD",
    "FAILURE_STREAK",
}
_DURATIONS = (
    "ATTRIBUTION_WINDOW",
    "MAX_AGE",
    "RETENTION",
    "RECONCILE_GRACE",
    "HEALTH_MAX_DUE_AGE",
    "HEALTH_MAX_SYNC_AGE",
)
_CHOICES = {
    "AUTH": ("headers", "oauth2"),
    "AMOUNT_UNITS": ("major", "minor"),
    "CLICK_STORE": ("session", "cookie"),
}
# RFC 6265's token: what a cookie's name may be made of.
_COOKIE_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SECRET_IN_CLEAR = "the client secret would travel unencrypted"
# Seconds: a shorter SQLite busy timeout (Python's default is 5) is hardly a wait at all.
SQLITE_MIN_TIMEOUT = 5


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(
    key: str,
    value: Any,
    errors: list[CheckMessage],
    name: str = "",
    risk: str = _SECRET_IN_CLEAR,
) -> None:
    """E005/E006 for the URL setting ``key`` (written ``name``, default ``PJPIXEL["key"]``)."""
    name = name or f'PJPIXEL["{key}"]'
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(
            Error(
                f"{name} must be an absolute http(s) URL, not {value!r}.",
                hint=f"Set {name} to an absolute https URL, as {DEFAULTS[key]!r}.",
                id="django_pjpixel.E005",
            )
        )
    elif parts.scheme != "https" and not is_loopback(parts.hostname):
        errors.append(
            Error(
                f"{name} uses plain http to {parts.hostname}: {risk}.",
                hint="Use https; plain http is accepted only for a loopback emulator "
                "(127.0.0.1, ::1, localhost).",
                id="django_pjpixel.E006",
            )
        )
    elif parts.username or parts.password:
        errors.append(
            Error(
                f"{name} must not carry credentials in the URL.",
                hint='Put them in PJPIXEL["CLIENT_ID"] and PJPIXEL["CLIENT_SECRET"].',
                id="django_pjpixel.E005",
            )
        )


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "PJPIXEL", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return [
            Error(
                "settings.PJPIXEL must be a dict.",
                hint='Set PJPIXEL = {"PIXEL_ID": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ...}.',
                id="django_pjpixel.E001",
            )
        ]
    messages: list[CheckMessage] = []
    unknown = sorted(map(str, set(raw) - set(DEFAULTS)))
    if unknown:
        messages.append(
            Warning(
                f"PJPIXEL has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(DEFAULTS)}. Check the spelling.",
                id="django_pjpixel.W001",
            )
        )
    enabled = raw.get("ENABLED", True)
    if not isinstance(enabled, bool):
        messages.append(_type_error("ENABLED", enabled, "True or False"))
    # Unset credentials: credential_checks (a warning; an error at deployment).
    check_url("API_URL", raw.get("API_URL", DEFAULTS["API_URL"]), messages)
    if raw.get("AUTH", "headers") == "oauth2":
        check_url("TOKEN_URL", raw.get("TOKEN_URL", DEFAULTS["TOKEN_URL"]), messages)
    if "SCRIPT_URL" in raw:
        risk = "anyone on the way could change the script the shop's pages run"
        check_url("SCRIPT_URL", raw["SCRIPT_URL"], messages, risk=risk)
    cookie_name = raw.get("COOKIE_NAME", DEFAULTS["COOKIE_NAME"])
    if not isinstance(cookie_name, str) or not _COOKIE_NAME_RE.fullmatch(cookie_name):
        messages.append(_type_error("COOKIE_NAME", cookie_name, "a cookie name"))
    if "CLICK_ID_PATTERN" in raw and not _is_regex(raw["CLICK_ID_PATTERN"]):
        messages.append(_type_error("CLICK_ID_PATTERN", raw["CLICK_ID_PATTERN"], "a regex"))
    for key, choices in _CHOICES.items():
        if key in raw and raw[key] not in choices:
            messages.append(_type_error(key, raw[key], " or ".join(repr(c) for c in choices)))
    for key, (low, high) in _NUMBERS.items():
        if key in raw:
            messages.extend(_check_number(key, raw[key], low, high))
    for key in _DURATIONS:
        if key in raw:
            value = raw[key]
            seconds = (
                value.total_seconds()
                if isinstance(value, timedelta)
                else value
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else None
            )
            if seconds is None or not _is_positive_duration(seconds):
                messages.append(_type_error(key, value, "a positive timedelta or seconds"))
    currency = raw.get("DEFAULT_CURRENCY", DEFAULTS["DEFAULT_CURRENCY"])
    if currency not in SUPPORTED_CURRENCIES:
        messages.append(
            Error(
                f'PJPIXEL["DEFAULT_CURRENCY"] is {currency!r}, which Prisjakt does not accept.',
                hint=f"Use one of {', '.join(SUPPORTED_CURRENCIES)}.",
                id="django_pjpixel.E008",
            )
        )
    consent = raw.get("CONSENT")
    if consent is not None:
        messages.extend(_check_consent(consent))
    session_store = raw.get("CLICK_STORE", DEFAULTS["CLICK_STORE"]) == "session"
    messages.extend(_check_middleware(session_store))
    if session_store:
        messages.extend(_check_session_age())
    messages.extend(_check_retention())
    messages.extend(_check_database())
    return messages


def _type_error(key: str, value: Any, expected: str) -> CheckMessage:
    return Error(
        f'PJPIXEL["{key}"] is {value!r}; expected {expected}.',
        hint=f'Fix PJPIXEL["{key}"] or remove it to use the default ({DEFAULTS[key]!r}).',
        id="django_pjpixel.E007",
    )


def _is_regex(value: Any) -> bool:
    try:
        re.compile(value)
    except (re.error, TypeError):
        return False
    return True


def _check_number(key: str, value: Any, low: float, high: float | None) -> list[CheckMessage]:
    integer = key in _INTEGERS
    ok_type = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not (
        isinstance(value, bool)
    )
    expected = f"{'a whole number' if integer else 'a number'} ≥ {low}" + (
        f" and ≤ {high}" if high is not None else ""
    )
    if (
        not ok_type
        or (isinstance(value, float) and not math.isfinite(value))
        or value < low
        or (high is not None and value > high)
    ):
        return [_type_error(key, value, expected)]
    return []


def _is_positive_duration(seconds: float) -> bool:
    try:
        timedelta(seconds=seconds)  # NaN, infinity and huge values do not fit
    except (OverflowError, ValueError):
        return False
    return seconds > 0


def _check_consent(consent: Any) -> list[CheckMessage]:
    hook: Callable[..., Any] | None = None
    if callable(consent):
        hook = consent
    elif isinstance(consent, str):
        try:
            hook = import_string(consent)
        except ImportError:
            hook = None
    if hook is None or not callable(hook):
        return [
            Error(
                f'PJPIXEL["CONSENT"] is {consent!r}, which is not an importable callable.',
                hint="Give the dotted path of a function taking the request and "
                'returning True when the visitor consented, e.g. "shop.consent.pjpixel_allowed".',
                id="django_pjpixel.E009",
            )
        ]
    return []


def _check_middleware(session_store: bool) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", []) or [])
    if _MIDDLEWARE not in middleware:
        return [
            Warning(
                f"{_MIDDLEWARE} is not in MIDDLEWARE: click ids from ?pjclid= are not captured.",
                hint=f"Add {_MIDDLEWARE!r} to MIDDLEWARE after {_SESSION_MIDDLEWARE!r}.",
                id="django_pjpixel.W002",
            )
        ]
    if (
        session_store
        and _SESSION_MIDDLEWARE in middleware
        and middleware.index(_SESSION_MIDDLEWARE) > middleware.index(_MIDDLEWARE)
    ):
        return [
            Error(
                f"{_MIDDLEWARE} comes before {_SESSION_MIDDLEWARE} in MIDDLEWARE.",
                hint="Move it after SessionMiddleware: it stores the click in the session.",
                id="django_pjpixel.E010",
            )
        ]
    return []


def _check_session_age() -> list[CheckMessage]:
    try:
        window = pjpixel_settings.ATTRIBUTION_WINDOW
    except (TypeError, ValueError, OverflowError):
        return []  # reported as E007 above
    age = getattr(settings, "SESSION_COOKIE_AGE", 1209600)
    expire_at_close = getattr(settings, "SESSION_EXPIRE_AT_BROWSER_CLOSE", False)
    if (isinstance(age, (int, float)) and age < window.total_seconds()) or expire_at_close:
        return [
            Warning(
                "Sessions end before the attribution window does: a visitor who buys "
                f"later than SESSION_COOKIE_AGE ({age} s) after the click is not attributed.",
                hint=f"Raise SESSION_COOKIE_AGE to at least {int(window.total_seconds())} "
                "(the attribution window) and keep SESSION_EXPIRE_AT_BROWSER_CLOSE off, "
                'lower PJPIXEL["ATTRIBUTION_WINDOW"], or keep the click in a cookie of its '
                'own: PJPIXEL["CLICK_STORE"] = "cookie".',
                id="django_pjpixel.W003",
            )
        ]
    return []


def sqlite_advice(
    database: Mapping[str, Any], django_version: tuple[Any, ...] = django.VERSION
) -> dict[str, str]:
    """What an SQLite database that several processes write to lacks: {what: the option}."""
    if not str(database.get("ENGINE", "")).endswith("sqlite3"):
        return {}
    options = database.get("OPTIONS") or {}
    missing = {}
    timeout = options.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        missing["a busy timeout"] = '"timeout": 20'
    elif timeout < SQLITE_MIN_TIMEOUT:
        missing[f"a busy timeout of {SQLITE_MIN_TIMEOUT} s or more"] = '"timeout": 20'
    mode = str(options.get("transaction_mode") or "").upper()
    if django_version >= (5, 1) and mode not in ("IMMEDIATE", "EXCLUSIVE"):
        missing["IMMEDIATE transactions"] = '"transaction_mode": "IMMEDIATE"'
    return missing


def _check_database() -> list[CheckMessage]:
    alias = router.db_for_write(apps.get_model("django_pjpixel", "ConversionEvent"))
    missing = sqlite_advice(settings.DATABASES.get(alias) or {})
    if not missing:
        return []
    return [
        Warning(
            f"The database {alias!r} is SQLite without {' or '.join(missing)}: the web "
            "processes, the Celery worker and pjpixel_deliver all write to one file, and a "
            "transaction that meets another's lock fails with 'database is locked' (a paid "
            "order not recorded, a pjpixel_deliver run that dies).",
            hint=f'Add {", ".join(missing.values())} to DATABASES[{alias!r}]["OPTIONS"], '
            'or use PostgreSQL or MariaDB/MySQL. See the docs, "Deployment", "SQLite".',
            id="django_pjpixel.W004",
        )
    ]


def _check_retention() -> list[CheckMessage]:
    try:
        window, retention = pjpixel_settings.ATTRIBUTION_WINDOW, pjpixel_settings.RETENTION
    except (TypeError, ValueError, OverflowError):
        return []  # reported as E007 above
    if retention >= window:
        return []
    return [
        Warning(
            f'PJPIXEL["RETENTION"] ({retention}) is shorter than the attribution window '
            f"({window}): clicks attached to orders not paid yet are erased before "
            "their window ends.",
            hint='Raise PJPIXEL["RETENTION"] to at least PJPIXEL["ATTRIBUTION_WINDOW"].',
            id="django_pjpixel.W005",
        )
    ]
