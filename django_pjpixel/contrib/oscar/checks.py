"""System checks of the django-oscar adapter (ids ``django_pjpixel.oscar.E0xx``/``W0xx``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router

from django_pjpixel.conf import SUPPORTED_CURRENCIES, pjpixel_settings
from django_pjpixel.contrib.oscar.views import url_or_none
from django_pjpixel.models import ConversionEvent

# The totals of an Oscar order that PJPIXEL["OSCAR_AMOUNT"] may name: with or without
# VAT, with shipping and surcharges, or of the basket alone (without them).
AMOUNT_FIELDS = (
    "total_incl_tax",
    "total_excl_tax",
    "basket_total_incl_tax",
    "basket_total_excl_tax",
)
STATUS_SETTINGS = ("OSCAR_PAID_STATUSES", "OSCAR_CANCELLED_STATUSES")
DASHBOARD_URL_NAME = "pjpixel_dashboard:pjpixel-conversion-events"
DASHBOARD_HINT = (
    'Add path("dashboard/prisjakt/", apps.get_app_config("pjpixel_oscar").urls) to your '
    'urls.py, before Oscar\'s URLs, and {"label": "Prisjakt", "icon": "fas fa-chart-line", '
    f'"url_name": "{DASHBOARD_URL_NAME}"}} to OSCAR_DASHBOARD_NAVIGATION.'
)


@register(Tags.compatibility)
def check_atomic_requests(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Oscar sends ``order_placed`` after its own transaction has committed."""
    alias = router.db_for_write(ConversionEvent)
    if settings.DATABASES.get(alias, {}).get("ATOMIC_REQUESTS"):
        return []
    return [
        Warning(
            f'DATABASES["{alias}"]["ATOMIC_REQUESTS"] is off: Oscar sends order_placed after '
            "the order's own transaction has committed, so the Prisjakt event is written in a "
            "transaction of its own, and an order whose process dies in between is not reported.",
            hint=f'Set DATABASES["{alias}"]["ATOMIC_REQUESTS"] = True: the checkout request is '
            "then one transaction, holding both the order and its event.",
            id="django_pjpixel.oscar.W001",
        )
    ]


@register(Tags.compatibility)
def check_currency(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    currency = getattr(settings, "OSCAR_DEFAULT_CURRENCY", None)
    if currency in SUPPORTED_CURRENCIES:
        return []
    return [
        Error(
            f"OSCAR_DEFAULT_CURRENCY is {currency!r}, a currency Prisjakt does not accept: "
            "its orders are recorded as failed, and none is sent.",
            hint=f"Prisjakt accepts {', '.join(SUPPORTED_CURRENCIES)}. Set "
            "OSCAR_DEFAULT_CURRENCY to the currency your prices are in, one of those.",
            id="django_pjpixel.oscar.E001",
        )
    ]


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = pjpixel_settings.raw
    messages: list[CheckMessage] = []
    amount = raw.get("OSCAR_AMOUNT", "total_incl_tax")
    if amount not in AMOUNT_FIELDS:
        messages.append(
            Error(
                f'PJPIXEL["OSCAR_AMOUNT"] is {amount!r}, not a total of an Oscar order.',
                hint=f'Set PJPIXEL["OSCAR_AMOUNT"] to one of {", ".join(AMOUNT_FIELDS)}.',
                id="django_pjpixel.oscar.E002",
            )
        )
    for key in STATUS_SETTINGS:
        value = raw.get(key, ())
        if not _is_status_list(value):
            messages.append(
                Error(
                    f'PJPIXEL["{key}"] must be a list of Oscar order statuses, not {value!r}.',
                    hint=f'Set PJPIXEL["{key}"] = ["..."], the statuses as in '
                    "OSCAR_ORDER_STATUS_PIPELINE.",
                    id="django_pjpixel.oscar.E003",
                )
            )
    both = pjpixel_settings.OSCAR_PAID_STATUSES & pjpixel_settings.OSCAR_CANCELLED_STATUSES
    if both:
        messages.append(
            Error(
                f"{', '.join(sorted(both))} is both a paid and a cancelled status.",
                hint='Name each status in PJPIXEL["OSCAR_PAID_STATUSES"] or in '
                'PJPIXEL["OSCAR_CANCELLED_STATUSES"], not in both.',
                id="django_pjpixel.oscar.E003",
            )
        )
    messages.extend(_unknown_statuses(raw))
    return messages


def _is_status_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(status, str) for status in value
    )


def _unknown_statuses(raw: dict[str, Any]) -> Iterator[CheckMessage]:
    pipeline = getattr(settings, "OSCAR_ORDER_STATUS_PIPELINE", None) or {}
    if not isinstance(pipeline, dict) or not pipeline:
        return  # any status is allowed: Oscar has nothing to compare with
    known = set(pipeline) | {s for targets in pipeline.values() for s in targets}
    initial = getattr(settings, "OSCAR_INITIAL_ORDER_STATUS", None)
    for key in STATUS_SETTINGS:
        value = raw.get(key, ())
        if not _is_status_list(value):
            continue  # E003 names it
        unknown = sorted(set(value) - known - {initial})
        if unknown:
            yield Warning(
                f'PJPIXEL["{key}"] names {", ".join(map(repr, unknown))}, not a status of '
                "OSCAR_ORDER_STATUS_PIPELINE: no order ever reaches it.",
                hint="Check the spelling: statuses are compared exactly, capitals included.",
                id="django_pjpixel.oscar.W002",
            )


@register(Tags.urls)
def check_dashboard(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The Prisjakt page is reachable from Oscar's dashboard menu, and mounted."""
    navigation = getattr(settings, "OSCAR_DASHBOARD_NAVIGATION", [])
    if DASHBOARD_URL_NAME not in set(_url_names(navigation)):
        return [
            Warning(
                "The Prisjakt page is not in Oscar's dashboard: staff cannot see what was "
                "reported to Prisjakt, nor whether delivery is stalled.",
                hint=DASHBOARD_HINT,
                id="django_pjpixel.oscar.W003",
            )
        ]
    if url_or_none(DASHBOARD_URL_NAME) is None:
        return [
            Error(
                "OSCAR_DASHBOARD_NAVIGATION links the Prisjakt page, but your URLconf does "
                "not mount it: Oscar's dashboard menu fails on every page.",
                hint=DASHBOARD_HINT,
                id="django_pjpixel.oscar.E004",
            )
        ]
    return []


def _url_names(items: Any) -> Iterator[str]:
    for item in items if isinstance(items, list | tuple) else ():
        if isinstance(item, dict):
            if isinstance(item.get("url_name"), str):
                yield item["url_name"]
            yield from _url_names(item.get("children", ()))
