"""System checks of several markets: ``PJPIXEL["PIXELS"]``, ``PIXEL_ROUTER``, ``PIXEL_CURRENCIES``.

Every message names the market's key. A market's URLs and ``AUTH`` are the
single pixel's checks (``E005`` to ``E007``), as are its unset credentials
(``credential_checks``: ``W007``, and ``E002`` to ``E004`` at deployment);
what only markets have is ``E011`` to ``E015``, ``W006``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from django_pjpixel.checks import check_url
from django_pjpixel.conf import DEFAULTS, SUPPORTED_CURRENCIES
from django_pjpixel.markets import (
    DEFAULT_ROUTER,
    KEY_RE,
    MARKET_SETTINGS,
    all_markets,
    market_setting,
    route_by_currency,
)

_EXAMPLE = '{"se": {"PIXEL_ID": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ...}, "no": {...}}'


@register(Tags.compatibility)
def check_markets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "PJPIXEL", None)
    if not isinstance(raw, dict):
        return []  # E001 says so
    pixels = raw.get("PIXELS")
    if not pixels:
        return _unused(raw)
    if not isinstance(pixels, dict):
        return [
            Error(
                f'PJPIXEL["PIXELS"] must be a dict of markets, not {type(pixels).__name__}.',
                hint=f'Set PJPIXEL["PIXELS"] = {_EXAMPLE}.',
                id="django_pjpixel.E011",
            )
        ]
    messages: list[CheckMessage] = []
    for key, entry in pixels.items():
        messages.extend(_check_market(key, entry))
    messages.extend(_check_shared_pixels())
    router = raw.get("PIXEL_ROUTER", DEFAULTS["PIXEL_ROUTER"])
    messages.extend(_check_router(router))
    if router in (DEFAULT_ROUTER, route_by_currency):
        messages.extend(_check_currencies(raw))
    return messages


def _unused(raw: Mapping[str, Any]) -> list[CheckMessage]:
    given = [key for key in ("PIXEL_ROUTER", "PIXEL_CURRENCIES") if key in raw]
    if not given:
        return []
    return [
        Warning(
            f"PJPIXEL sets {' and '.join(given)} but no PIXELS: every purchase goes to "
            'PJPIXEL["PIXEL_ID"], and they are not used.',
            hint=f'Name your markets in PJPIXEL["PIXELS"] = {_EXAMPLE}, or remove '
            f"{' and '.join(given)}.",
            id="django_pjpixel.W006",
        )
    ]


def _check_market(key: object, entry: object) -> list[CheckMessage]:
    if not isinstance(key, str) or KEY_RE.fullmatch(key) is None:
        return [
            Error(
                f'PJPIXEL["PIXELS"] has the key {key!r}, which cannot name a market.',
                hint='Name each market with a short lowercase word, as "se", "no" or "uk" '
                "(its environment variables are named after it: PJPIXEL_NO_CLIENT_SECRET).",
                id="django_pjpixel.E011",
            )
        ]
    where = f'PJPIXEL["PIXELS"]["{key}"]'
    if not isinstance(entry, Mapping):
        return [
            Error(
                f"{where} must be a dict, not {type(entry).__name__}.",
                hint=f'Set {where} = {{"PIXEL_ID": ..., "CLIENT_ID": ..., "CLIENT_SECRET": ...}}.',
                id="django_pjpixel.E011",
            )
        ]
    messages: list[CheckMessage] = []
    unknown = sorted(map(str, set(entry) - set(MARKET_SETTINGS)))
    if unknown:
        messages.append(
            Error(
                f"{where} has keys a market does not take: {', '.join(unknown)}.",
                hint=f"A market takes {', '.join(MARKET_SETTINGS)}; every other setting is "
                "PJPIXEL's own, for all markets. Check the spelling.",
                id="django_pjpixel.E012",
            )
        )
    auth = market_setting(key, entry, "AUTH")
    if "AUTH" in entry and auth not in ("headers", "oauth2"):
        messages.append(
            Error(
                f"{where}[\"AUTH\"] is {auth!r}; expected 'headers' or 'oauth2'.",
                hint=f'Fix {where}["AUTH"], or remove it to use PJPIXEL["AUTH"].',
                id="django_pjpixel.E007",
            )
        )
    if "API_URL" in entry:
        check_url("API_URL", entry["API_URL"], messages, f'{where}["API_URL"]')
    if "TOKEN_URL" in entry and auth == "oauth2":
        check_url("TOKEN_URL", entry["TOKEN_URL"], messages, f'{where}["TOKEN_URL"]')
    return messages


def _check_shared_pixels() -> list[CheckMessage]:
    owners: dict[str, list[str]] = {}
    for market in all_markets():
        if market.pixel_id:
            owners.setdefault(market.pixel_id, []).append(market.key)
    return [
        Error(
            f'The markets {" and ".join(keys)} of PJPIXEL["PIXELS"] have the same PIXEL_ID '
            f"{pixel!r}.",
            hint="Each market reports to a pixel of its own. Two currencies reporting to one "
            'pixel are one market: route both to it (PJPIXEL["PIXEL_CURRENCIES"]).',
            id="django_pjpixel.E015",
        )
        for pixel, keys in owners.items()
        if len(keys) > 1
    ]


def _check_router(router: Any) -> list[CheckMessage]:
    found: Any = router
    if isinstance(router, str):
        try:
            found = import_string(router)
        except ImportError:
            found = None
    if callable(found):
        return []
    return [
        Error(
            f'PJPIXEL["PIXEL_ROUTER"] is {router!r}, which is not an importable callable.',
            hint="Give the dotted path of a function (purchase fields, request or None) -> "
            f"market key, as {DEFAULT_ROUTER!r} (the default: by currency).",
            id="django_pjpixel.E013",
        )
    ]


def _check_currencies(raw: Mapping[str, Any]) -> list[CheckMessage]:
    """The default router's map: every currency it names goes to a configured market."""
    currencies = raw.get("PIXEL_CURRENCIES", DEFAULTS["PIXEL_CURRENCIES"])
    if not isinstance(currencies, dict):
        return [_currency_error(f"is {currencies!r}, not a dict of currency to market key")]
    keys = {market.key for market in all_markets()}
    messages = []
    for currency, key in currencies.items() if "PIXEL_CURRENCIES" in raw else ():
        if currency not in SUPPORTED_CURRENCIES:
            messages.append(_currency_error(f"names {currency!r}, which Prisjakt does not accept"))
        elif key not in keys:
            messages.append(_currency_error(f"sends {currency} to {key!r}, which is not a market"))
    default = raw.get("DEFAULT_CURRENCY", DEFAULTS["DEFAULT_CURRENCY"])
    if currencies.get(default) not in keys and default in SUPPORTED_CURRENCIES:
        messages.append(
            Error(
                f'PJPIXEL["DEFAULT_CURRENCY"] {default} goes to no market of PJPIXEL["PIXELS"] '
                "by PIXEL_CURRENCIES: a purchase reported without a currency would fail.",
                hint='Set PJPIXEL["DEFAULT_CURRENCY"] to a currency of one of your markets '
                f"({', '.join(sorted(keys))}), or map {default} to one in "
                'PJPIXEL["PIXEL_CURRENCIES"].',
                id="django_pjpixel.E014",
            )
        )
    return messages


def _currency_error(what: str) -> CheckMessage:
    markets = ", ".join(market.key for market in all_markets())
    return Error(
        f'PJPIXEL["PIXEL_CURRENCIES"] {what}.',
        hint=f"Map each of {', '.join(SUPPORTED_CURRENCIES)} you sell in to one of your "
        f'markets ({markets}) of PJPIXEL["PIXELS"], or leave it out: a purchase in a '
        "currency without a market is recorded failed.",
        id="django_pjpixel.E014",
    )
