"""``pjpixel_reconcile``: its formats and its exit status, against the emulator."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from django_pjpixel.models import ConversionEvent
from django_pjpixel.record import reconciliation, sync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.record.test_reconciliation import order

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status


def reconcile(*args: str) -> tuple[int, str, str]:
    """The exit status, stdout and stderr-or-error of one run."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("pjpixel_reconcile", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), str(error)
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def differing(pjpixel_api: PrisjaktEmulator) -> PrisjaktEmulator:
    order(pjpixel_api, "ok")
    order(pjpixel_api, "=cmd|' /C calc'!A0", listed=False)  # missing, and a formula
    order(pjpixel_api, "cheaper", amount="500.00")
    pjpixel_api.change_event("cheaper", amount=450)
    pjpixel_api.add_foreign_event(event_time=timezone.now() - timedelta(hours=1))
    sync.sync_recent()
    return pjpixel_api


def test_the_table_and_exit_1_when_something_differs(differing: PrisjaktEmulator) -> None:
    status, out, error = reconcile()
    assert status == 1
    assert "3 orders differ between the shop and Prisjakt." in error
    today = timezone.localdate()
    assert f"Orders from {today - timedelta(days=6)} to {today};" in out
    lines = out.splitlines()
    assert "matched                      1" in lines
    assert "amount_differs               1" in lines
    assert "missing_at_prisjakt          1" in lines
    assert "unknown_to_shop              1" in lines
    assert "pending                      0" in lines
    [cheaper] = [line for line in lines if line.startswith("amount_differs") and "cheaper" in line]
    assert "500 SEK, 2 items" in cheaper
    assert cheaper.endswith("450 SEK, 2 items")
    assert any(line.startswith("unknown_to_shop       browser-") for line in lines)


def test_exit_0_when_nothing_differs(pjpixel_api: PrisjaktEmulator) -> None:
    order(pjpixel_api, "ok")
    order(pjpixel_api, "later", status=Status.PENDING, sent=None, listed=False)
    sync.sync_recent()
    status, out, err = reconcile()
    assert (status, err) == (0, "")
    assert "pending                      1" in out.splitlines()
    assert "category" not in out  # no differences listed


def test_csv_lists_the_differences_with_safe_cells(differing: PrisjaktEmulator) -> None:
    status, out, _ = reconcile("--format", "csv")
    assert status == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["category"] for row in rows] == [
        "amount_differs",
        "missing_at_prisjakt",
        "unknown_to_shop",
    ]
    assert rows[1]["order_id"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["ours_amount"] == "500.00"
    assert rows[0]["prisjakt_amount"] == "450"
    assert rows[2]["ours_id"] == ""
    assert list(rows[0]) == list(reconciliation.CSV_HEADER)


def test_json_is_the_documented_report(differing: PrisjaktEmulator) -> None:
    status, out, _ = reconcile("--format", "json")
    assert status == 1
    data = json.loads(out)
    assert list(data) == ["from", "to", "synced_at", "counts", "differences"]
    assert data["counts"] == {
        "matched": 1,
        "amount_differs": 1,
        "missing_at_prisjakt": 1,
        "unknown_to_shop": 1,
        "pending": 0,
    }
    first = data["differences"][0]
    assert set(first) == {"category", "order_id", "ours", "prisjakt"}
    assert first["ours"]["amount_sent"] == 500
    assert data["differences"][1]["prisjakt"] is None
    assert data["synced_at"] is not None


def test_json_without_differences(pjpixel_api: PrisjaktEmulator) -> None:
    sync.sync_recent()
    status, out, _ = reconcile("--format", "json")
    assert status == 0
    assert json.loads(out)["differences"] == []


def test_a_range_of_days(differing: PrisjaktEmulator) -> None:
    long_ago = (timezone.localdate() - timedelta(days=30)).isoformat()
    status, _, error = reconcile("--from", long_ago, "--to", long_ago)
    assert status == 2
    assert "pjpixel_sync" in error
    call_command("pjpixel_sync", "--from", long_ago, "--to", long_ago, stdout=io.StringIO())
    assert reconcile("--from", long_ago, "--to", long_ago)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-03-01"], "Give --from and --to together."),
        (["--from", "2025-03-02", "--to", "2025-03-01"], "must not be before"),
    ],
)
def test_exit_2_when_it_cannot_run(args: list[str], message: str) -> None:
    status, _, error = reconcile(*args)
    assert status == 2
    assert message in error


def test_exit_2_on_a_database_error(
    differing: PrisjaktEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("relation does not exist")

    monkeypatch.setattr("django_pjpixel.management.commands.pjpixel_reconcile.reconcile", broken)
    status, _, error = reconcile()
    assert status == 2
    assert "relation does not exist" in error
