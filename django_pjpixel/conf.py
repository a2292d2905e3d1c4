"""The ``PJPIXEL`` settings dict, read lazily through one typed object.

Every property reads ``django.conf.settings.PJPIXEL`` at use time, so
``override_settings(PJPIXEL={...})`` takes effect immediately. Values are
returned as configured; ``checks.py`` tells the shop when one is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings

DEFAULT_API_URL = "https://api.pj.nu/click-conversion"
DEFAULT_TOKEN_URL = "https://auth.pj.nu/oauth2/token"
DEFAULT_SCRIPT_URL = "https://cdn.pji.nu/libs/pjpixel/pjpixel.min.js"

# The currencies the API accepts (prisjakt-api.md, "Creating an event").
SUPPORTED_CURRENCIES = ("DKK", "EUR", "GBP", "NOK", "NZD", "SEK")

DEFAULTS: dict[str, Any] = {
    "PIXEL_ID": "",
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    "API_URL": DEFAULT_API_URL,
    # "headers": the seed's client-id/client-secret headers;
    # "oauth2": client-credentials bearer tokens from TOKEN_URL.
    "AUTH": "headers",
    "TOKEN_URL": DEFAULT_TOKEN_URL,
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    # The most one client call may take, all its requests together (a token, a
    # retry after a 401): a server that trickles its answer is cut off here.
    "REQUEST_DEADLINE": 15.0,
    # The most of an answer's body read, after decompression.
    "MAX_RESPONSE_BYTES": 1_048_576,
    "ENABLED": True,
    "DEFAULT_CURRENCY": "SEK",
    # [open] in the API: the project sends whole currency units ("major").
    "AMOUNT_UNITS": "major",
    "ATTRIBUTION_WINDOW": timedelta(days=30),
    # Dotted path to a callable ``request -> bool``; None means allowed.
    "CONSENT": None,
    # Where a visitor's click waits for the checkout: "session" or "cookie" (stores.py).
    "CLICK_STORE": "session",
    "COOKIE_NAME": "pjpixel_click",
    # A well-formed click id (clickids.py): by default the documented shape, a UUID v4,
    # "_" and 16 lowercase hex digits. Change it only if Prisjakt changes its format.
    "CLICK_ID_PATTERN": (
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}_[0-9a-f]{16}"
    ),
    # Prisjakt's browser script ({% pjpixel_script %}); New Zealand's is on PriceSpy's CDN.
    "SCRIPT_URL": DEFAULT_SCRIPT_URL,
    # How long click ids are kept in rows that are done with (retention.purge).
    "RETENTION": timedelta(days=90),
    # Retry policy for transient answers (network, timeout, 408/425/429/5xx).
    "RETRY_BASE_DELAY": 30.0,
    "RETRY_MAX_DELAY": 3600.0,
    "MAX_ATTEMPTS": 15,
    "MAX_AGE": timedelta(days=3),
    # How long a claimed row stays leased to one sender.
    "LEASE_SECONDS": 120.0,
    # The longest Celery countdown; a longer wait is left to deliver_due. A worker holds
    # a retried task's message unacknowledged for the countdown plus the run (at most
    # REQUEST_DEADLINE, 600 s): 600 + 600 s stays within RabbitMQ's consumer_timeout
    # (30 min by default) and Redis' visibility_timeout (1 h) with time to spare.
    "MAX_COUNTDOWN": 600.0,
    # Publishing to the broker after a checkout commits (in a background thread):
    # attempts, seconds a publish may block before new events skip the broker,
    # and events that may wait to be published.
    "PUBLISH_RETRIES": 2,
    "PUBLISH_TIMEOUT": 2.0,
    "PUBLISH_QUEUE_SIZE": 10_000,
    # deliver_due: events per many-events PATCH (1: one POST per event), events per run.
    "BATCH_SIZE": 100,
    "DELIVER_DUE_LIMIT": 10_000,
    # Requests of each rate-limit window deliver_due leaves unused (for the checkouts),
    # and the longest it waits in a worker for the window to reset rather than stop.
    "RATE_LIMIT_RESERVE": 10,
    "RATE_LIMIT_MAX_WAIT": 5.0,
    "MAX_PAGES": 200,
    # Several markets (markets.py): key -> {"PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET", and
    # optionally "API_URL", "AUTH", "TOKEN_URL"}; empty: the single pixel above. The
    # router chooses a purchase's market; the default one by PIXEL_CURRENCIES.
    "PIXELS": {},
    "PIXEL_ROUTER": "django_pjpixel.markets.route_by_currency",
    "PIXEL_CURRENCIES": {
        "SEK": "se",
        "NOK": "no",
        "DKK": "dk",
        "EUR": "fi",
        "GBP": "uk",
        "NZD": "nz",
    },
    # The django-oscar adapter (django_pjpixel.contrib.oscar): which total of an Oscar
    # order is the amount, and the order statuses that mean "paid" (reported then, not
    # when the order is placed) and "cancelled".
    "OSCAR_AMOUNT": "total_incl_tax",
    "OSCAR_PAID_STATUSES": (),
    "OSCAR_CANCELLED_STATUSES": (),
    # The mirror of Prisjakt's events: days sync_events lists back from now, and how
    # long after sending an event Prisjakt's listing may lack it before it counts missing.
    "SYNC_DAYS": 7,
    "RECONCILE_GRACE": timedelta(hours=1),
    # Delivery health: beyond these the admin shows a warning band and
    # `pjpixel_check --health` exits 1.
    "HEALTH_MAX_DUE_AGE": timedelta(minutes=15),
    "HEALTH_MAX_FAILED": 10,
    "HEALTH_MAX_DEAD": 0,
    "HEALTH_MAX_SYNC_AGE": timedelta(hours=3),
    # Consecutive failed deliveries in one process before one ERROR is logged.
    "FAILURE_STREAK": 5,
}


class PjpixelSettings:
    """Typed, lazy view of ``settings.PJPIXEL`` with defaults beside it."""

    @property
    def raw(self) -> dict[str, Any]:
        value = getattr(settings, "PJPIXEL", None)
        return value if isinstance(value, dict) else {}

    def get(self, name: str) -> Any:
        raw = self.raw
        if name in raw:
            return raw[name]
        if name in ("CLIENT_SECRET", "CLIENT_ID", "PIXEL_ID"):
            env = os.environ.get(f"PJPIXEL_{name}")
            if env:
                return env
        return DEFAULTS[name]

    @property
    def PIXEL_ID(self) -> str:
        return str(self.get("PIXEL_ID") or "")

    @property
    def CLIENT_ID(self) -> str:
        return str(self.get("CLIENT_ID") or "")

    @property
    def CLIENT_SECRET(self) -> str:
        return str(self.get("CLIENT_SECRET") or "")

    @property
    def API_URL(self) -> str:
        return str(self.get("API_URL")).rstrip("/")

    @property
    def AUTH(self) -> str:
        return str(self.get("AUTH"))

    @property
    def TOKEN_URL(self) -> str:
        return str(self.get("TOKEN_URL"))

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return float(self.get("CONNECT_TIMEOUT"))

    @property
    def READ_TIMEOUT(self) -> float:
        return float(self.get("READ_TIMEOUT"))

    @property
    def TIMEOUT(self) -> tuple[float, float]:
        return (self.CONNECT_TIMEOUT, self.READ_TIMEOUT)

    @property
    def REQUEST_DEADLINE(self) -> float:
        return float(self.get("REQUEST_DEADLINE"))

    @property
    def MAX_RESPONSE_BYTES(self) -> int:
        return int(self.get("MAX_RESPONSE_BYTES"))

    @property
    def ENABLED(self) -> bool:
        return bool(self.get("ENABLED"))

    @property
    def DEFAULT_CURRENCY(self) -> str:
        return str(self.get("DEFAULT_CURRENCY"))

    @property
    def AMOUNT_UNITS(self) -> str:
        return str(self.get("AMOUNT_UNITS"))

    @property
    def ATTRIBUTION_WINDOW(self) -> timedelta:
        return _as_timedelta(self.get("ATTRIBUTION_WINDOW"))

    @property
    def CONSENT(self) -> str | Callable[..., Any] | None:
        """A dotted path or a callable ``request -> bool``; None: allowed."""
        value = self.get("CONSENT")
        return value if value else None

    @property
    def CLICK_STORE(self) -> str:
        return str(self.get("CLICK_STORE"))

    @property
    def COOKIE_NAME(self) -> str:
        return str(self.get("COOKIE_NAME"))

    @property
    def CLICK_ID_PATTERN(self) -> str:
        return str(self.get("CLICK_ID_PATTERN"))

    @property
    def SCRIPT_URL(self) -> str:
        return str(self.get("SCRIPT_URL"))

    @property
    def RETENTION(self) -> timedelta:
        return _as_timedelta(self.get("RETENTION"))

    @property
    def RETRY_BASE_DELAY(self) -> float:
        return float(self.get("RETRY_BASE_DELAY"))

    @property
    def RETRY_MAX_DELAY(self) -> float:
        return float(self.get("RETRY_MAX_DELAY"))

    @property
    def MAX_ATTEMPTS(self) -> int:
        return int(self.get("MAX_ATTEMPTS"))

    @property
    def MAX_AGE(self) -> timedelta:
        return _as_timedelta(self.get("MAX_AGE"))

    @property
    def LEASE_SECONDS(self) -> float:
        return float(self.get("LEASE_SECONDS"))

    @property
    def MAX_COUNTDOWN(self) -> float:
        return float(self.get("MAX_COUNTDOWN"))

    @property
    def PUBLISH_RETRIES(self) -> int:
        return int(self.get("PUBLISH_RETRIES"))

    @property
    def PUBLISH_TIMEOUT(self) -> float:
        return float(self.get("PUBLISH_TIMEOUT"))

    @property
    def PUBLISH_QUEUE_SIZE(self) -> int:
        return int(self.get("PUBLISH_QUEUE_SIZE"))

    @property
    def BATCH_SIZE(self) -> int:
        return int(self.get("BATCH_SIZE"))

    @property
    def DELIVER_DUE_LIMIT(self) -> int:
        return int(self.get("DELIVER_DUE_LIMIT"))

    @property
    def RATE_LIMIT_RESERVE(self) -> int:
        return int(self.get("RATE_LIMIT_RESERVE"))

    @property
    def RATE_LIMIT_MAX_WAIT(self) -> float:
        return float(self.get("RATE_LIMIT_MAX_WAIT"))

    @property
    def MAX_PAGES(self) -> int:
        return int(self.get("MAX_PAGES"))

    @property
    def SYNC_DAYS(self) -> int:
        return int(self.get("SYNC_DAYS"))

    @property
    def RECONCILE_GRACE(self) -> timedelta:
        return _as_timedelta(self.get("RECONCILE_GRACE"))

    @property
    def HEALTH_MAX_DUE_AGE(self) -> timedelta:
        return _as_timedelta(self.get("HEALTH_MAX_DUE_AGE"))

    @property
    def HEALTH_MAX_FAILED(self) -> int:
        return int(self.get("HEALTH_MAX_FAILED"))

    @property
    def HEALTH_MAX_DEAD(self) -> int:
        return int(self.get("HEALTH_MAX_DEAD"))

    @property
    def HEALTH_MAX_SYNC_AGE(self) -> timedelta:
        return _as_timedelta(self.get("HEALTH_MAX_SYNC_AGE"))

    @property
    def FAILURE_STREAK(self) -> int:
        return int(self.get("FAILURE_STREAK"))

    @property
    def PIXELS(self) -> dict[str, Any]:
        """Market key to its settings; {} when unset or not a dict (the checks say so)."""
        value = self.get("PIXELS")
        return value if isinstance(value, dict) else {}

    @property
    def PIXEL_ROUTER(self) -> str | Callable[..., Any]:
        """A dotted path or a callable ``(purchase fields, request or None) -> market key``."""
        router: str | Callable[..., Any] = self.get("PIXEL_ROUTER")
        return router

    @property
    def PIXEL_CURRENCIES(self) -> dict[str, Any]:
        value = self.get("PIXEL_CURRENCIES")
        return value if isinstance(value, dict) else {}

    @property
    def OSCAR_AMOUNT(self) -> str:
        """The django-oscar ``Order`` total reported as the amount."""
        return str(self.get("OSCAR_AMOUNT"))

    @property
    def OSCAR_PAID_STATUSES(self) -> frozenset[str]:
        """Oscar order statuses meaning "paid"; empty: an order is paid when placed."""
        return as_statuses(self.get("OSCAR_PAID_STATUSES"))

    @property
    def OSCAR_CANCELLED_STATUSES(self) -> frozenset[str]:
        return as_statuses(self.get("OSCAR_CANCELLED_STATUSES"))


def as_statuses(value: Any) -> frozenset[str]:
    """A status setting as a set; one status given as a plain string counts as one."""
    if isinstance(value, str):
        return frozenset({value})
    try:
        return frozenset(str(status) for status in value)
    except TypeError:  # not iterable: the system checks name it
        return frozenset()


def _as_timedelta(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


pjpixel_settings = PjpixelSettings()
