"""``manage.py pjpixel_erase --order ID | --click ID``: what it erased, and its exit status."""

from __future__ import annotations

from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError
from django.utils import timezone

from django_pjpixel.management.commands.pjpixel_erase import Command
from django_pjpixel.models import ConversionEvent, OrderClick
from tests.helpers import CLICK, make_event

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("pjpixel_erase", *args, stdout=out)
    return out.getvalue()


def exit_status(*args: str) -> int:
    """The status ``manage.py pjpixel_erase ARGS`` exits with."""
    # At the end manage.py closes the database connections: not the test's own.
    try:
        with mock.patch("django.core.management.base.connections.close_all"):
            Command().run_from_argv(["manage.py", "pjpixel_erase", *args])
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


@pytest.fixture
def order() -> None:
    """ORD-1 paid and attached; ORD-2 paid, through the same click."""
    make_event("ORD-1")
    make_event("ORD-2")
    OrderClick.objects.create(order_id="ORD-1", click_id=CLICK, captured_at=timezone.now())


@pytest.mark.usefixtures("order")
def test_erase_an_order_prints_the_rows_per_table() -> None:
    assert run("--order", "ORD-1") == (
        "conversion events: 1\nclicks attached to orders: 1\nevents at Prisjakt: 0\nErased.\n"
    )
    assert ConversionEvent.objects.get(order_id="ORD-1").click_id == ""
    assert ConversionEvent.objects.get(order_id="ORD-2").click_id == CLICK
    assert not OrderClick.objects.exists()


@pytest.mark.usefixtures("order")
def test_erase_a_click() -> None:
    assert run("--click", CLICK) == (
        "conversion events: 2\nclicks attached to orders: 1\nevents at Prisjakt: 0\nErased.\n"
    )
    assert set(ConversionEvent.objects.values_list("click_id", flat=True)) == {""}


@pytest.mark.usefixtures("order")
def test_exit_status_0_when_it_erased() -> None:
    assert exit_status("--order", "ORD-1") == 0


def test_exit_status_1_when_nothing_held_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_status("--click", CLICK) == 1
    assert "Nothing held that id" in capsys.readouterr().err
    with pytest.raises(CommandError) as excinfo:
        run("--order", "nobody")
    assert excinfo.value.returncode == 1


@pytest.mark.parametrize(
    "args",
    [(), ("--order", "ORD-1", "--click", CLICK), ("--order", "")],
    ids=["neither", "both", "empty"],
)
def test_exit_status_2_on_wrong_arguments(args: tuple[str, ...]) -> None:
    assert exit_status(*args) == 2


def test_exit_status_2_when_the_database_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with mock.patch(
        "django_pjpixel.management.commands.pjpixel_erase.erase",
        side_effect=DatabaseError("connection refused"),
    ):
        assert exit_status("--order", "ORD-1") == 2
    assert "connection refused" in capsys.readouterr().err
