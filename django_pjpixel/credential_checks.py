"""The credentials' checks: a warning while a shop is set up, errors at deployment.

A new install has no client secret yet (it is asked of Prisjakt, or comes from
the production environment), and the install's first step is ``migrate``. So an
unset ``PIXEL_ID``, ``CLIENT_ID`` or ``CLIENT_SECRET`` never stops ``migrate``,
``makemigrations``, ``runserver``, ``collectstatic`` or a test run: the normal
checks warn (``W007``, one a pixel, naming every unset credential), and only
Django's deployment checks, ``manage.py check --deploy``, fail on them
(``E002`` the pixel id, ``E003`` the client id, ``E004`` the client secret),
as ``pjpixel_check`` does. Until they are set, purchases are recorded and wait.

The single pixel is checked unless ``PJPIXEL["PIXELS"]`` names markets; then
each market is, its messages naming its key (``market_checks`` checks the rest
of a market).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.markets import (
    CREDENTIALS,
    env_name,
    is_market,
    market_setting,
    setting_name,
)

_IDS = {
    "PIXEL_ID": "django_pjpixel.E002",
    "CLIENT_ID": "django_pjpixel.E003",
    "CLIENT_SECRET": "django_pjpixel.E004",
}
_WHAT = {
    "PIXEL_ID": "your pixel id from Business Center (Integrations > Conversion Tracking; "
    "formerly Settings > Conversion Pixel)",
    "CLIENT_ID": "the client id Prisjakt gave you",
    "CLIENT_SECRET": "the client secret Prisjakt gave you",
}
_MARKET_WHAT = {
    "PIXEL_ID": "the market's pixel id from Business Center",
    "CLIENT_ID": "the client id Prisjakt gave you for the market",
    "CLIENT_SECRET": "the client secret Prisjakt gave you for the market",
}
_OFF = 'Set PJPIXEL["ENABLED"] = False to run without it.'


def unset_credentials() -> list[tuple[str, list[str]]]:
    """Each pixel's unset credentials: (market key, "" for the single pixel; names).

    Nothing while ``PJPIXEL`` is not a dict (``E001``) or ``ENABLED`` is not
    ``True`` (off, or ``E007``).
    """
    raw = getattr(settings, "PJPIXEL", None)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict) or raw.get("ENABLED", True) is not True:
        return []
    pixels = pjpixel_settings.PIXELS
    if not pixels:
        entries: list[tuple[str, Mapping[str, Any] | None]] = [("", None)]
    else:
        entries = [(key, entry) for key, entry in pixels.items() if is_market(key, entry)]
    found = []
    for key, entry in entries:
        unset = [name for name in CREDENTIALS if not _is_set(_value(key, entry, name))]
        if unset:
            found.append((key, unset))
    return found


def _value(key: str, entry: Mapping[str, Any] | None, name: str) -> Any:
    return pjpixel_settings.get(name) if entry is None else market_setting(key, entry, name)


def _is_set(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


@register(Tags.compatibility)
def check_credentials_set(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W007: a pixel's credentials are unset (``check --deploy`` fails on them)."""
    messages: list[CheckMessage] = []
    for key, unset in unset_credentials():
        names = [setting_name(key, name) for name in unset]
        codes = ", ".join(_IDS[name] for name in unset)
        envs = ", ".join(env_name(key, name) for name in unset)
        one = len(unset) == 1
        messages.append(
            Warning(
                f"{_join(names)} {'is' if one else 'are'} not set: purchases are recorded, "
                f"but none is sent to Prisjakt until {'it is' if one else 'they are'}.",
                hint=f"Set {'it' if one else 'them'} (or the environment "
                f"{'variable' if one else 'variables'} {envs}) before you deploy: "
                f"manage.py check --deploy fails on {codes}. {_OFF}",
                id="django_pjpixel.W007",
            )
        )
    return messages


@register(Tags.compatibility, deploy=True)
def check_credentials(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002-E004, deployment checks only: a pixel's credential is unset."""
    messages: list[CheckMessage] = []
    for key, unset in unset_credentials():
        for name in unset:
            what = (_MARKET_WHAT if key else _WHAT)[name]
            messages.append(
                Error(
                    f"{setting_name(key, name)} is not set.",
                    hint=f"Set {setting_name(key, name) if not key else 'it'} to {what}, or "
                    f"the environment variable {env_name(key, name)}. {_OFF}",
                    id=_IDS[name],
                )
            )
    return messages


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
