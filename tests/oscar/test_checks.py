"""The adapter's system checks, each directly and through ``manage.py check``."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_pjpixel.contrib.oscar import checks

CHECKS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "checks.md"


def check_output() -> str:
    """What ``manage.py check`` prints, errors included."""
    out, err = StringIO(), StringIO()
    try:
        call_command("check", stdout=out, stderr=err)
    except SystemCheckError as error:
        return str(error)
    return out.getvalue() + err.getvalue()


def test_the_shop_as_the_readme_sets_it_up_passes_every_check() -> None:
    assert "System check identified no issues" in check_output()


def test_atomic_requests_off_is_a_warning(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "ATOMIC_REQUESTS", False)
    [message] = checks.check_atomic_requests()
    assert isinstance(message, Warning)
    assert message.id == "django_pjpixel.oscar.W001"
    assert "order_placed" in message.msg
    assert 'DATABASES["default"]["ATOMIC_REQUESTS"] = True' in message.hint
    assert "django_pjpixel.oscar.W001" in check_output()


@pytest.mark.parametrize("currency", ["USD", "GBP", None])
def test_a_currency_prisjakt_does_not_accept_is_an_error(settings: Any, currency: str) -> None:
    settings.OSCAR_DEFAULT_CURRENCY = currency
    if currency == "GBP":
        assert checks.check_currency() == []
        return
    [message] = checks.check_currency()
    assert isinstance(message, Error)
    assert message.id == "django_pjpixel.oscar.E001"
    assert "DKK, EUR, GBP, NOK, NZD, SEK" in message.hint
    assert "django_pjpixel.oscar.E001" in check_output()


def test_an_amount_that_is_no_total_of_an_order_is_an_error(pjpixel: dict[str, Any]) -> None:
    pjpixel["OSCAR_AMOUNT"] = "total"
    [message] = checks.check_settings()
    assert message.id == "django_pjpixel.oscar.E002"
    assert "basket_total_excl_tax" in message.hint
    assert "django_pjpixel.oscar.E002" in check_output()


@pytest.mark.parametrize(
    ("paid", "cancelled", "named"),
    [
        ("Paid", [], "OSCAR_PAID_STATUSES"),
        (["Paid"], None, "OSCAR_CANCELLED_STATUSES"),
        (["Paid"], [1], "OSCAR_CANCELLED_STATUSES"),
        (["Paid", "Cancelled"], ["Cancelled"], "Cancelled is both"),
    ],
)
def test_status_settings_that_are_not_lists_of_distinct_statuses_are_errors(
    pjpixel: dict[str, Any], paid: Any, cancelled: Any, named: str
) -> None:
    pjpixel.update(OSCAR_PAID_STATUSES=paid, OSCAR_CANCELLED_STATUSES=cancelled)
    [message] = checks.check_settings()
    assert message.id == "django_pjpixel.oscar.E003"
    assert named in message.msg
    assert message.hint
    assert "django_pjpixel.oscar.E003" in check_output()


def test_a_status_no_order_can_reach_is_a_warning(pjpixel: dict[str, Any]) -> None:
    pjpixel["OSCAR_PAID_STATUSES"] = ["paid", "Pending"]  # Oscar's statuses are "Paid", ...
    [message] = checks.check_settings()
    assert isinstance(message, Warning)
    assert message.id == "django_pjpixel.oscar.W002"
    assert "'paid'" in message.msg
    assert "'Pending'" not in message.msg  # the initial status is one
    assert "django_pjpixel.oscar.W002" in check_output()


def test_without_a_status_pipeline_any_status_is_accepted(
    settings: Any, pjpixel: dict[str, Any]
) -> None:
    settings.OSCAR_ORDER_STATUS_PIPELINE = {}
    pjpixel["OSCAR_PAID_STATUSES"] = ["Betalt"]
    assert checks.check_settings() == []


def test_a_dashboard_without_the_prisjakt_page_is_a_warning(settings: Any) -> None:
    settings.OSCAR_DASHBOARD_NAVIGATION = [
        item for item in settings.OSCAR_DASHBOARD_NAVIGATION if item["label"] != "Prisjakt"
    ]
    [message] = checks.check_dashboard()
    assert message.id == "django_pjpixel.oscar.W003"
    assert 'apps.get_app_config("pjpixel_oscar").urls' in message.hint
    assert "pjpixel_dashboard:pjpixel-conversion-events" in message.hint
    assert "django_pjpixel.oscar.W003" in check_output()


def test_the_page_may_sit_in_a_submenu(settings: Any) -> None:
    entry = settings.OSCAR_DASHBOARD_NAVIGATION[-1]
    settings.OSCAR_DASHBOARD_NAVIGATION = [
        *settings.OSCAR_DASHBOARD_NAVIGATION[:-1],
        {"label": "Reports", "children": [entry]},
    ]
    assert checks.check_dashboard() == []


@pytest.mark.urls("tests.oscar.urls_oscar_only")
def test_a_menu_entry_for_a_page_the_urlconf_does_not_mount_is_an_error() -> None:
    [message] = checks.check_dashboard()
    assert isinstance(message, Error)
    assert message.id == "django_pjpixel.oscar.E004"
    assert "urls.py" in message.hint
    assert "django_pjpixel.oscar.E004" in check_output()


def test_the_docs_list_every_check_of_the_adapter() -> None:
    source = Path(checks.__file__).read_text(encoding="utf-8")
    in_code = set(re.findall(r"django_pjpixel\.oscar\.[EW]\d{3}", source))
    section = CHECKS_PAGE.read_text(encoding="utf-8").split("<!-- oscar-checks-table -->\n")[1]
    table = section.split("\n\n", 1)[0]
    documented = re.findall(r"^\| `(django_pjpixel\.oscar\.[EW]\d{3})` \| (\w+) \|", table, re.M)
    assert {check_id for check_id, _level in documented} == in_code
    for check_id, level in documented:
        assert level == ("warning" if ".W" in check_id else "error"), check_id
