"""Markets: several Prisjakt pixels (SE, NO, DK, FI, UK, NZ), each with its own credentials.

Prisjakt runs a site per market, and a shop listed in several has a pixel
(and often credentials) per market. ``PJPIXEL["PIXELS"]`` names them::

    "PIXELS": {"se": {"PIXEL_ID": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ...}, "no": {...}}

A market's ``PIXEL_ID``, ``CLIENT_ID`` and ``CLIENT_SECRET`` may come from the
environment instead, as ``PJPIXEL_<KEY>_<NAME>`` (``PJPIXEL_NO_CLIENT_SECRET``);
its ``API_URL``, ``AUTH`` and ``TOKEN_URL`` default to the top-level ones.
Without ``PIXELS`` the single-pixel settings are the one market (key ``""``),
and every row is sent to its pixel, as it always was.

A purchase's market is the shop's ``pixel=`` (a market key), else the one
``PJPIXEL["PIXEL_ROUTER"]`` names (by default ``route_by_currency``, through
``PIXEL_CURRENCIES``). A purchase that routes nowhere is an ``InvalidInput``
naming the field, which ``purchases`` keeps as a ``failed`` row. A row keeps
its market's pixel id, by which ``client.get_client`` and ``backlog`` find the
market again: each market's rows go out with its own credentials, paced under
its own rate limit (Prisjakt's is per client id).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import Q
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput, PjpixelConfigurationError

if TYPE_CHECKING:
    from django.http import HttpRequest

logger = logging.getLogger("django_pjpixel.markets")

# What a market's dict holds; the credentials may come from the environment.
CREDENTIALS = ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET")
MARKET_SETTINGS = (*CREDENTIALS, "API_URL", "AUTH", "TOKEN_URL")
# A market's key, also part of its environment variables' names (PJPIXEL_NO_...).
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
DEFAULT_ROUTER = "django_pjpixel.markets.route_by_currency"
# The pixel id of the failed row of a purchase that routes to no market.
UNROUTED = ""


class ClientSettings(TypedDict):
    """The ``PrisjaktClient`` arguments of a market."""

    api_url: str
    pixel_id: str
    client_id: str
    client_secret: str
    auth: str
    token_url: str


@dataclass(frozen=True)
class Market:
    """A pixel and the credentials that report to it; ``key`` is "" for the single pixel."""

    key: str
    pixel_id: str
    client_id: str
    client_secret: str = field(repr=False)
    api_url: str
    auth: str
    token_url: str

    @property
    def pause_key(self) -> tuple[str, str]:
        """What ``deliver_due`` paces by: Prisjakt's rate limit is per client id [docs]."""
        return (self.api_url, self.client_id)

    def setting_name(self, name: str) -> str:
        """Where this market's setting ``name`` is written, for messages."""
        return setting_name(self.key, name)

    def missing(self) -> list[str]:
        """Where this market's unset credentials are written."""
        values = (
            ("PIXEL_ID", self.pixel_id),
            ("CLIENT_ID", self.client_id),
            ("CLIENT_SECRET", self.client_secret),
        )
        return [self.setting_name(name) for name, value in values if not value.strip()]

    @property
    def credentials_hint(self) -> str:
        return f"check {self.setting_name('CLIENT_ID')} and {self.setting_name('CLIENT_SECRET')}"

    def client_settings(self) -> ClientSettings:
        """The ``PrisjaktClient`` arguments that make this market's client."""
        return {
            "api_url": self.api_url,
            "pixel_id": self.pixel_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth": self.auth,
            "token_url": self.token_url,
        }


@dataclass(frozen=True)
class Lane:
    """Rows ``deliver_due`` sends with one market's client, paced under its rate limit."""

    market: Market | None  # None: rows of a pixel no market has
    rows: Q | None  # None: every row (the single pixel's settings)
    waiting: Q | None  # the rows that wait with these for a rate-limit reset

    @property
    def pause_key(self) -> tuple[str, str]:
        return self.market.pause_key if self.market is not None else ("", "")

    @property
    def client_id(self) -> str:
        return self.market.client_id if self.market is not None else ""


def setting_name(key: str, name: str) -> str:
    """``PJPIXEL["CLIENT_SECRET"]``, or a market's ``PJPIXEL["PIXELS"]["no"]["CLIENT_SECRET"]``."""
    return f'PJPIXEL["PIXELS"]["{key}"]["{name}"]' if key else f'PJPIXEL["{name}"]'


def env_name(key: str, name: str) -> str:
    """A setting's environment variable: ``PJPIXEL_NO_CLIENT_SECRET``, ``PJPIXEL_CLIENT_ID``."""
    return f"PJPIXEL_{key.upper()}_{name}" if key else f"PJPIXEL_{name}"


def is_configured() -> bool:
    """Whether ``PJPIXEL["PIXELS"]`` names markets; else the single pixel is the one."""
    return bool(pjpixel_settings.PIXELS)


def single() -> Market:
    """The single-pixel settings as a market."""
    conf = pjpixel_settings
    return Market(
        "",
        conf.PIXEL_ID,
        conf.CLIENT_ID,
        conf.CLIENT_SECRET,
        conf.API_URL,
        conf.AUTH,
        conf.TOKEN_URL,
    )


def market_setting(key: str, entry: Mapping[str, Any], name: str) -> Any:
    """A market's setting: its own, else (credentials) the environment's, else the top level's."""
    if name in entry:
        return entry[name]
    if name in CREDENTIALS:
        return os.environ.get(env_name(key, name), "")
    return pjpixel_settings.get(name)


def is_market(key: object, entry: object) -> bool:
    """Whether ``PIXELS[key] = entry`` can be a market (the checks name what cannot)."""
    return isinstance(key, str) and KEY_RE.fullmatch(key) is not None and isinstance(entry, Mapping)


def all_markets() -> list[Market]:
    """The markets in the settings' order; without ``PIXELS``, the single pixel alone."""
    pixels = pjpixel_settings.PIXELS
    if not pixels:
        return [single()]
    return [_market(key, entry) for key, entry in pixels.items() if is_market(key, entry)]


def _market(key: str, entry: Mapping[str, Any]) -> Market:
    def text(name: str) -> str:
        return str(market_setting(key, entry, name) or "")

    return Market(
        key=key,
        pixel_id=text("PIXEL_ID"),
        client_id=text("CLIENT_ID"),
        client_secret=text("CLIENT_SECRET"),
        api_url=text("API_URL").rstrip("/"),
        auth=text("AUTH"),
        token_url=text("TOKEN_URL"),
    )


def keys_text() -> str:
    """The configured markets, for messages."""
    keys = [market.key for market in all_markets() if market.key]
    return f"markets: {', '.join(keys)}" if keys else 'PJPIXEL["PIXELS"] is not set'


def market_of(pixel_id: str | None = None) -> Market:
    """The market of the pixel ``pixel_id`` (a row's); None: the first market.

    Without ``PIXELS``, every pixel is the single pixel's, as it always was.
    ``PjpixelConfigurationError`` for a pixel no market has (its rows wait,
    then die, as for any configuration error).
    """
    found = all_markets()
    if not is_configured() or (pixel_id is None and found):
        return found[0]
    for market in found:
        if market.pixel_id == pixel_id:
            return market
    raise PjpixelConfigurationError(
        f'No market of PJPIXEL["PIXELS"] has the pixel id {pixel_id!r} ({keys_text()}): '
        'put its market back in PJPIXEL["PIXELS"] to send that pixel\'s events.'
    )


def market_named(key: str) -> Market:
    """The configured market ``key``; ``InvalidInput`` naming ``pixel`` when there is none."""
    found = all_markets() if is_configured() else []
    for candidate in found:
        if candidate.key == key:
            if not candidate.pixel_id:
                raise InvalidInput("pixel", f"{candidate.setting_name('PIXEL_ID')} is not set")
            return candidate
    raise InvalidInput("pixel", f"{key!r} is not a market ({keys_text()})")


def key_of(pixel_id: str) -> str | None:
    """The key of the market whose pixel is ``pixel_id``, as ``pixel=`` takes it.

    None without ``PIXELS`` (the single pixel has no key to name) and for a
    pixel no market has.
    """
    if not is_configured():
        return None
    keys = [m.key for m in all_markets() if m.pixel_id and m.pixel_id == pixel_id]
    return keys[0] if keys else None


def pixel_ids() -> list[str]:
    """The pixel ids of the markets that have one (without ``PIXELS``: the single pixel's,
    set or not). A market without its ``PIXEL_ID`` (check E002) has no rows or sync."""
    if not is_configured():
        return [single().pixel_id]
    return [market.pixel_id for market in all_markets() if market.pixel_id]


def label(pixel_id: str) -> str:
    """A pixel as the admin shows it: its market's key beside it where there is one."""
    if pixel_id == UNROUTED:
        return gettext("(no market)")
    keys = [m.key for m in all_markets() if m.key and m.pixel_id == pixel_id]
    return f"{', '.join(keys)}: {pixel_id}" if keys else pixel_id


# -- routing a purchase ------------------------------------------------------------


def route(
    fields: Mapping[str, Any], request: HttpRequest | None = None, pixel: str | None = None
) -> Market:
    """The market of a purchase: ``pixel`` (a market key) if given, else the router's.

    ``fields`` are the purchase's (``order_id``, ``amount``, ``currency``,
    ``number_of_items``, ``event_time``). ``InvalidInput`` names what routes
    nowhere: ``pixel`` for a key that is not a market (the shop's or the
    router's, or a router that fails), or the router's own field
    (``currency`` for ``route_by_currency``).
    """
    if pixel is None and not is_configured():
        return single()
    key = _ask_router(fields, request) if pixel is None else pixel
    return market_named(key)


def _ask_router(fields: Mapping[str, Any], request: HttpRequest | None) -> str:
    path = pjpixel_settings.PIXEL_ROUTER
    try:
        router = import_string(path) if isinstance(path, str) else path
    except ImportError as err:
        raise InvalidInput("pixel", f'PJPIXEL["PIXEL_ROUTER"] {path!r} cannot be imported') from err
    try:
        key = router(dict(fields), request)
    except InvalidInput:
        raise
    except Exception as err:
        logger.exception("pjpixel: the pixel router %r failed", path)
        raise InvalidInput("pixel", f"the router {path!r} failed: {type(err).__name__}") from err
    return str(key)


def route_by_currency(purchase: Mapping[str, Any], request: HttpRequest | None = None) -> str:
    """The default ``PIXEL_ROUTER``: the market ``PIXEL_CURRENCIES`` maps the currency to.

    SEK→se, NOK→no, DKK→dk, EUR→fi, GBP→uk, NZD→nz unless the shop maps them
    otherwise. A currency mapped to no configured market is refused, naming
    ``currency``.
    """
    currency = purchase.get("currency")
    key = pjpixel_settings.PIXEL_CURRENCIES.get(currency) if isinstance(currency, str) else None
    if key is None:
        raise InvalidInput("currency", f'{currency!r} has no market in PJPIXEL["PIXEL_CURRENCIES"]')
    if not any(m.key == key for m in all_markets()):
        raise InvalidInput(
            "currency", f"{currency} goes to the market {key!r}, which is not set ({keys_text()})"
        )
    return str(key)


def pixel_of_invalid(
    reported: Mapping[str, Any], request: HttpRequest | None = None, pixel: str | None = None
) -> str:
    """The pixel of the ``failed`` row of a purchase with a bad value.

    Its market's where the purchase routes all the same (so the order reported
    again with good values replaces that row), else ``UNROUTED``.
    """
    currency = reported.get("currency")
    fields = {
        **reported,
        "currency": pjpixel_settings.DEFAULT_CURRENCY if currency is None else currency,
    }
    try:
        return route(fields, request, pixel).pixel_id
    except InvalidInput:
        return UNROUTED


# -- sending -------------------------------------------------------------------


def lanes() -> list[Lane]:
    """``deliver_due``'s lanes: one a market, and one for pixels no market has.

    Without ``PIXELS``, one lane of every row, as it always was. The rows that
    wait with a market's at the rate limit are those of every market sharing
    its credentials (the limit is per client id).
    """
    if not is_configured():
        return [Lane(single(), None, None)]
    found = [market for market in all_markets() if market.pixel_id]
    result = []
    for market in found:
        sharing = [other.pixel_id for other in found if other.pause_key == market.pause_key]
        result.append(Lane(market, Q(pixel_id=market.pixel_id), Q(pixel_id__in=sharing)))
    orphans = ~Q(pixel_id__in=[market.pixel_id for market in found])
    result.append(Lane(None, orphans, orphans))
    return result
