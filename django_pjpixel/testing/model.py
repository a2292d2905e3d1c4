"""The Click & Conversion API's resources and rules, apart from HTTP.

What the API holds, as ``/work/shared/prisjakt-api.md`` states it: pixels,
shops, clients with their secrets and roles, clicks, events and bearer tokens,
and the rate-limit windows, all in one ``ApiState``; and the rules on them:
``validate_event`` checks an event body [seed, docs], ``ApiState.recent``
applies the 30-day duplicate window [docs], ``ApiState.count`` the rate limit
[docs]. ``ApiState`` takes no lock of its own: ``PrisjaktEmulator`` holds its
lock around every use.

Choices for the points the API notes leave open:

- ``signed_click_id`` is optional, but when present must match
  ``[A-Za-z0-9_-]{1,128}``; an event's ``click_id`` is the UUID in front of the
  signature (``<uuid>_<16 hex>``), else a UUID derived from the whole value,
  and the click is recorded so ``GET /clicks/{id}`` finds it.
- ``external_event_id`` is optional; when given it is 1 to 100 characters.
- Nested field errors are named by path: ``data.amount``, and in a ``PATCH``
  ``events[3].data.currency``.
- The 30-day duplicate window is counted from when the emulator stored the
  event (its ``clock``); an older event with the same ``external_event_id``
  no longer conflicts, and ``PATCH`` then creates a new event.
- Rate limiting is a fixed window per client id (``limit`` requests per
  ``period`` seconds).
- A client may be limited to some pixels (a market's credentials, its own
  market's pixel); another pixel's events are a 403 for it.
"""

from __future__ import annotations

import math
import re
import secrets
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django_pjpixel.testing.clock import Clock, format_time, parse_iso_time

CURRENCIES = frozenset({"DKK", "EUR", "GBP", "NOK", "NZD", "SEK"})
EVENT_NAMES = frozenset({"purchase"})
MAX_VALUE = 999_999_999
MAX_EXTERNAL_EVENT_ID = 100
DUPLICATE_WINDOW = timedelta(days=30)
TOKEN_LIFETIME = 86399
# Who may do what [open], read from the API notes: the portal names shop_user for the
# many-events PATCH and the listing, and no role for creating one event.
POST_ROLES = frozenset({"event_publisher", "shop_user", "admin"})
SHOP_USER_ROLES = frozenset({"shop_user", "admin"})

_CLICK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SIGNED_CLICK_RE = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_[0-9a-f]{16}"
)
_EVENT_KEYS = frozenset(
    {"event_name", "event_time", "external_event_id", "data", "signed_click_id"}
)
_DATA_KEYS = frozenset({"amount", "currency", "number_of_items"})


class Problem(Exception):
    """An error answer of the API, in its RFC 7807 shape [seed].

    ``title``, ``status``, ``detail`` and (validation errors) ``field_errors``
    make the body; ``headers`` go with the answer (``Retry-After``, ``Allow``).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        field_errors: dict[str, dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.field_errors = field_errors
        self.headers = headers or {}


def validation_problem(errors: dict[str, dict[str, Any]]) -> Problem:
    """The seed's 400 "Request validation failed", naming every invalid field [seed]."""
    return Problem(
        400,
        "Request validation failed",
        f"Request contains invalid fields: {', '.join(errors)}. See field_errors for more details.",
        errors,
    )


@dataclass
class Event:
    """One stored event; ``as_json`` is how the API shows it [seed, docs]."""

    pixel_id: str
    id: str
    external_event_id: str | None
    event_name: str
    event_time: str
    when: datetime
    data: dict[str, Any]
    signed_click_id: str | None
    click_id: str | None
    stored_at: datetime
    seq: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "click_id": self.click_id,
            "external_event_id": self.external_event_id,
            "event_name": self.event_name,
            "event_time": self.event_time,
            "data": dict(self.data),
            "signed_click_id": self.signed_click_id,
        }


@dataclass(frozen=True)
class Listing:
    """A pixel's events within a time range, counted from the newest (later stored first
    on a tie) [docs: "newest events first"]; ``ordered`` is every event of the pixel,
    oldest first, of which ``lo:hi`` are in the range."""

    ordered: list[Event]
    lo: int
    hi: int

    def __len__(self) -> int:
        return self.hi - self.lo

    def newest(self, start: int, stop: int) -> list[Event]:
        """The ``start``-th to the ``stop - 1``-th newest events of the range."""
        start, stop = max(start, 0), min(stop, len(self))
        if stop <= start:
            return []
        return self.ordered[self.hi - stop : self.hi - start][::-1]


@dataclass
class Client:
    """An API client: its secret and its roles, of ``admin``, ``shop_user``,
    ``event_publisher`` [docs]; ``pixels`` it may use (None: any pixel)."""

    id: str
    secret: str
    roles: list[str]
    pixels: frozenset[str] | None = None

    def may_use(self, pixel: str) -> bool:
        return self.pixels is None or pixel in self.pixels


class ApiState:
    """What the API holds, and the rules that read or change it.

    ``pixels``, ``shops`` (shop id to pixel ids), ``clients``, ``clicks`` (as
    ``GET /clicks/{id}`` shows them), ``events`` (in storing order), ``tokens``
    (token to client id and expiry) and rate ``windows`` (client id to window
    start and requests counted) are plain containers; ``clock`` is the time
    the API lives in.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pixels: set[str] = set()
        self.shops: dict[str, list[str]] = {}
        self.clients: dict[str, Client] = {}
        self.clicks: dict[str, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.tokens: dict[str, tuple[str, datetime]] = {}
        self.windows: dict[str, tuple[float, int]] = {}
        self._seq = 0
        # Each pixel's events sorted by time, kept until the events change (``changed``):
        # a listing of 100,000 events then costs a bisection per page, not a sort.
        self._sorted: dict[str, tuple[int, list[Event], list[tuple[datetime, int]]]] = {}
        self._version = 0

    def changed(self) -> None:
        """Say that ``events`` changed (added, removed, or an event's time or data)."""
        self._version += 1

    def clear(self) -> None:
        """Forget events, clicks, tokens and rate windows (not pixels, shops, clients)."""
        self.changed()
        self.events.clear()
        self.clicks.clear()
        self.tokens.clear()
        self.windows.clear()

    def add_click(self, click_id: str, **extra: Any) -> dict[str, Any]:
        """Record a click as ``GET /clicks/{click_id}`` shows it [docs]."""
        click = {"id": click_id, "timestamp": format_time(self.clock()), **extra}
        self.clicks[click_id] = click
        return dict(click)

    # -- events ----------------------------------------------------------------

    def listing(self, pixel: str, start: datetime, end: datetime) -> Listing:
        """The pixel's events whose time is within ``start`` to ``end``, both included."""
        cached = self._sorted.get(pixel)
        if cached is None or cached[0] != self._version:
            ordered = sorted(
                (e for e in self.events if e.pixel_id == pixel), key=lambda e: (e.when, e.seq)
            )
            cached = (self._version, ordered, [(e.when, e.seq) for e in ordered])
            self._sorted[pixel] = cached
        _, ordered, keys = cached
        lo = bisect_left(keys, (start, -1))
        hi = bisect_right(keys, (end, math.inf))
        return Listing(ordered, lo, max(lo, hi))

    def find(self, external: str | None, event_id: str | None, pixel: str | None) -> Event:
        """The newest stored event with this ``external_event_id`` or ``id`` (of ``pixel``)."""
        for event in reversed(self.events):
            if (
                (pixel is None or event.pixel_id == pixel)
                and (external is None or event.external_event_id == external)
                and (event_id is None or event.id == event_id)
            ):
                return event
        raise LookupError(f"no event with external_event_id={external!r}, id={event_id!r}")

    def remove(self, event: Event) -> None:
        """Forget one stored event."""
        self.events.remove(event)
        self.changed()

    def recent(self, pixel: str, external: str) -> Event | None:
        """The pixel's event with this ``external_event_id`` within the last 30 days [docs]."""
        since = self.clock() - DUPLICATE_WINDOW
        for event in reversed(self.events):
            if (
                event.pixel_id == pixel
                and event.external_event_id == external
                and event.stored_at > since
            ):
                return event
        return None

    def store(self, pixel: str, payload: Mapping[str, Any]) -> Event:
        """A new event from a valid body (or a seeded one), with a fresh id."""
        self._seq += 1
        event = Event(
            pixel_id=pixel,
            id=str(uuid.uuid4()),
            external_event_id=payload.get("external_event_id"),
            event_name="",
            event_time="",
            when=self.clock(),
            data={},
            signed_click_id=None,
            click_id=None,
            stored_at=self.clock(),
            seq=self._seq,
        )
        self.fill(event, payload)
        self.events.append(event)
        self.changed()
        return event

    def fill(self, event: Event, payload: Mapping[str, Any]) -> None:
        """Set ``event``'s fields from a body, recording its click."""
        self.changed()
        event.event_name = payload["event_name"]
        event.event_time = payload["event_time"]
        event.when = parse_iso_time(payload["event_time"]) or self.clock()
        event.data = dict(payload["data"])
        signed = payload.get("signed_click_id")
        event.signed_click_id = signed
        event.click_id = None
        if signed is not None:
            match = _SIGNED_CLICK_RE.fullmatch(signed)
            click_id = match.group(1) if match else str(uuid.uuid5(uuid.NAMESPACE_URL, signed))
            event.click_id = click_id
            if click_id not in self.clicks:
                self.clicks[click_id] = {
                    "id": click_id,
                    "timestamp": format_time(self.clock()),
                    "pixel_id": event.pixel_id,
                }

    # -- tokens ----------------------------------------------------------------

    def issue_token(self, client_id: str, lifetime: int) -> str:
        """A new bearer token for the client, valid ``lifetime`` seconds [docs]."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (client_id, self.clock() + timedelta(seconds=lifetime))
        return token

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Forget every token (or one client's); answers how many."""
        doomed = [t for t, (c, _) in self.tokens.items() if client_id in (None, c)]
        for token in doomed:
            del self.tokens[token]
        return len(doomed)

    def expire_tokens(self) -> None:
        """Make every token expire now; it stays known, but is refused."""
        now = self.clock()
        self.tokens = {t: (c, now) for t, (c, _) in self.tokens.items()}

    # -- rate limit -----------------------------------------------------------

    def window(self, key: str, period: float) -> tuple[float, int]:
        """The client's current window: its start (a timestamp) and requests counted."""
        now = self.clock().timestamp()
        start, used = self.windows.get(key, (now, 0))
        if now - start >= period:
            start, used = now, 0
        return start, used

    def count(self, key: str, limit: int, period: float) -> None:
        """Count one request of the client, or refuse it with a 429 past ``limit`` [docs]."""
        start, used = self.window(key, period)
        if used >= limit:
            self.windows[key] = (start, used)
            reset = start + period - self.clock().timestamp()
            raise Problem(
                429,
                "Too Many Requests",
                f"Rate limit of {limit} requests exceeded",
                headers={"Retry-After": str(max(1, math.ceil(reset)))},
            )
        self.windows[key] = (start, used + 1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_event(payload: object, prefix: str) -> dict[str, dict[str, Any]]:
    """The field errors of one event body (empty when it is valid) [seed, docs].

    ``prefix`` names the event within a ``PATCH`` body (``"events[3]."``).
    """
    errors: dict[str, dict[str, Any]] = {}

    def bad(name: str, message: str, value: Any) -> None:
        errors[f"{prefix}{name}"] = {"message": message, "value": value}

    if not isinstance(payload, dict):
        return {
            prefix.rstrip(".") or "body": {"message": "must be a JSON object", "value": payload}
        }
    for key in sorted(set(payload) - _EVENT_KEYS):
        bad(key, "unknown field", payload[key])
    name = payload.get("event_name")
    if name is None:
        bad("event_name", "required", None)
    elif name not in EVENT_NAMES:
        bad("event_name", "must be one of: purchase", name)
    time_value = payload.get("event_time")
    if time_value is None:
        bad("event_time", "required", None)
    elif parse_iso_time(time_value) is None:
        bad("event_time", "invalid ISO-8601 time (with a time zone)", time_value)
    external = payload.get("external_event_id")
    if external is not None and (
        not isinstance(external, str) or not 1 <= len(external) <= MAX_EXTERNAL_EVENT_ID
    ):
        bad(
            "external_event_id",
            f"must be a string of 1 to {MAX_EXTERNAL_EVENT_ID} characters",
            external,
        )
    signed = payload.get("signed_click_id")
    if signed is not None and (
        not isinstance(signed, str) or _CLICK_ID_RE.fullmatch(signed) is None
    ):
        bad("signed_click_id", "invalid signed click id", signed)
    data = payload.get("data")
    if data is None:
        bad("data", "required", None)
    elif not isinstance(data, dict):
        bad("data", "must be a JSON object", data)
    else:
        for key in sorted(set(data) - _DATA_KEYS):
            bad(f"data.{key}", "unknown field", data[key])
        for key in ("amount", "number_of_items"):
            value = data.get(key)
            if value is None:
                bad(f"data.{key}", "required", None)
            elif not _is_int(value):
                bad(f"data.{key}", "invalid integer", value)
            elif not 0 <= value <= MAX_VALUE:
                bad(f"data.{key}", f"must be between 0 and {MAX_VALUE}", value)
        currency = data.get("currency")
        if currency is None:
            bad("data.currency", "required", None)
        elif currency not in CURRENCIES:
            bad("data.currency", f"must be one of: {', '.join(sorted(CURRENCIES))}", currency)
    return errors
