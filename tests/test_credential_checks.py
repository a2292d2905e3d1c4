"""Unset credentials never block setting up a shop; they fail ``check --deploy``."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_pjpixel.credential_checks import check_credentials, check_credentials_set
from tests.helpers import MARKETS, markets

BASE: dict[str, Any] = dict(settings.PJPIXEL)
SINGLE = ("PIXEL_ID", "CLIENT_ID", "CLIENT_SECRET")


def without(*keys: str, **extra: Any) -> dict[str, Any]:
    return {**{k: v for k, v in BASE.items() if k not in keys}, **extra}


def shop(pixels: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**without(*SINGLE), "PIXELS": pixels, **extra}


@pytest.fixture(autouse=True)
def _no_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for prefix in ("PJPIXEL", "PJPIXEL_SE", "PJPIXEL_NO"):
        for name in SINGLE:
            monkeypatch.delenv(f"{prefix}_{name}", raising=False)


# Each case: PJPIXEL (None: unset), the deployment check's ids, and what W007 says.
CASES: dict[str, tuple[Any, list[str], str]] = {
    "no PJPIXEL": (
        None,
        ["E002", "E003", "E004"],
        'PJPIXEL["PIXEL_ID"], PJPIXEL["CLIENT_ID"] and PJPIXEL["CLIENT_SECRET"] are not set',
    ),
    "empty": ({}, ["E002", "E003", "E004"], "PJPIXEL_PIXEL_ID, PJPIXEL_CLIENT_ID"),
    "E002 missing": (without("PIXEL_ID"), ["E002"], 'PJPIXEL["PIXEL_ID"] is not set'),
    "E002 blank": (without(PIXEL_ID="   "), ["E002"], "fails on django_pjpixel.E002."),
    "E003 missing": (without("CLIENT_ID"), ["E003"], 'PJPIXEL["CLIENT_ID"] is not set'),
    "E003 not a string": (without(CLIENT_ID=1234), ["E003"], "PJPIXEL_CLIENT_ID"),
    "E004 missing": (
        without("CLIENT_SECRET"),
        ["E004"],
        "manage.py check --deploy fails on django_pjpixel.E004",
    ),
    "E004 empty": (without(CLIENT_SECRET=""), ["E004"], "PJPIXEL_CLIENT_SECRET"),
    "a market's secret": (
        shop({"se": MARKETS["se"], "no": {**MARKETS["no"], "CLIENT_SECRET": ""}}),
        ["E004"],
        'PJPIXEL["PIXELS"]["no"]["CLIENT_SECRET"] is not set',
    ),
    "a market's pixel and client": (
        shop({"se": {"CLIENT_SECRET": "x"}, "no": MARKETS["no"]}),
        ["E002", "E003"],
        "PJPIXEL_SE_PIXEL_ID, PJPIXEL_SE_CLIENT_ID",
    ),
}


def run(pjpixel: Any) -> tuple[list[CheckMessage], list[CheckMessage]]:
    """(the normal run's messages, the deployment run's)."""
    with override_settings(PJPIXEL=pjpixel):
        if pjpixel is None:
            del settings.PJPIXEL
        return check_credentials_set(), check_credentials()


@pytest.mark.parametrize(("pjpixel", "deploy", "warning"), CASES.values(), ids=CASES.keys())
def test_unset_credentials_warn_and_fail_only_at_deployment(
    pjpixel: Any, deploy: list[str], warning: str
) -> None:
    normal, errors = run(pjpixel)
    assert [m.id for m in errors] == [f"django_pjpixel.{code}" for code in deploy]
    assert all(m.is_serious() and m.hint for m in errors)
    [w007] = normal
    assert w007.id == "django_pjpixel.W007"
    assert not w007.is_serious()
    assert warning in w007.msg + " " + (w007.hint or "")
    for code in deploy:
        assert f"django_pjpixel.{code}" in (w007.hint or "")


CLEAN = {
    "tests/settings.py": BASE,
    "disabled, nothing set": {"ENABLED": False},
    "ENABLED not a bool (E007 says so)": without(*SINGLE, ENABLED="yes"),
    "not a dict (E001 says so)": "pixel",
    "two markets": shop(markets("se", "no")),
    "disabled markets": shop({"se": {}, "no": {}}, ENABLED=False),
}


@pytest.mark.parametrize("pjpixel", CLEAN.values(), ids=CLEAN.keys())
def test_nothing_to_say(pjpixel: Any) -> None:
    assert run(pjpixel) == ([], [])


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PJPIXEL_CLIENT_SECRET", "from-env")
    monkeypatch.setenv("PJPIXEL_NO_CLIENT_SECRET", "from-env")
    assert run(without("CLIENT_SECRET")) == ([], [])
    no = {name: value for name, value in MARKETS["no"].items() if name != "CLIENT_SECRET"}
    assert run(shop({"no": no})) == ([], [])


def test_the_hints_name_the_fix_and_never_the_secret() -> None:
    _normal, [e002] = run(without("PIXEL_ID"))
    assert 'PJPIXEL["PIXEL_ID"]' in (e002.hint or "")
    assert "PJPIXEL_PIXEL_ID" in (e002.hint or "")
    assert "Business Center" in (e002.hint or "")
    normal, errors = run(shop({"no": {**MARKETS["no"], "PIXEL_ID": ""}}))
    for message in normal + errors:
        assert "s3cr3t" not in message.msg + (message.hint or "")
        assert 'PJPIXEL["ENABLED"] = False' in (message.hint or "")


def test_check_warns_and_passes_with_the_secret_unset() -> None:
    stdout, stderr = StringIO(), StringIO()
    with override_settings(PJPIXEL=without("CLIENT_SECRET")):
        call_command("check", stdout=stdout, stderr=stderr)
    assert "django_pjpixel.W007" in stderr.getvalue()
    assert 'PJPIXEL["CLIENT_SECRET"] is not set' in stderr.getvalue()
    assert "System check identified 1 issue" in stderr.getvalue()


def test_check_deploy_fails_naming_the_secret() -> None:
    with (
        override_settings(PJPIXEL=without("CLIENT_SECRET")),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check", deploy=True, stdout=StringIO(), stderr=StringIO())
    report = str(excinfo.value)
    assert '(django_pjpixel.E004) PJPIXEL["CLIENT_SECRET"] is not set.' in report
    assert "PJPIXEL_CLIENT_SECRET" in report


def test_check_deploy_passes_once_set() -> None:
    stdout = StringIO()
    with override_settings(DEBUG=False, SECRET_KEY="x" * 60):
        call_command("check", "django_pjpixel", deploy=True, stdout=stdout, stderr=StringIO())
    assert "E00" not in stdout.getvalue()


@pytest.mark.django_db
def test_migrate_and_makemigrations_run_with_the_secret_unset() -> None:
    """The install's first steps: they run the system checks (skip_checks=False, as
    manage.py does), which must not stop them for want of a secret."""
    stdout = StringIO()
    with override_settings(PJPIXEL=without("CLIENT_SECRET")):
        call_command("migrate", skip_checks=False, stdout=stdout, stderr=StringIO())
        call_command(
            "makemigrations",
            "django_pjpixel",
            check=True,
            dry_run=True,
            skip_checks=False,
            stdout=stdout,
            stderr=StringIO(),
        )
    assert "No migrations to apply." in stdout.getvalue()
    assert "No changes detected" in stdout.getvalue()
