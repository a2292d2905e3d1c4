"""``exports``: CSV cells a spreadsheet would run as a formula are neutralised (OWASP)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.record import sync
from django_pjpixel.record.exports import csv_lines, safe_cell
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import earlier_today
from tests.test_commands_admin import run


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("order-10041", "order-10041"),
        ("a=b", "a=b"),
        (1234, "1234"),
        (-5, "'-5"),
        (None, ""),
        ({"a": "ö"}, '{"a": "ö"}'),
        ([1, 2], "[1, 2]"),
    ],
)
def test_a_cell_that_would_start_a_formula_gets_a_quote(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_lines_are_csv_with_safe_cells() -> None:
    lines = list(csv_lines([["a", "=1+1"], ["b, c", None]]))
    assert lines == ["a,'=1+1\r\n", '"b, c",\r\n']
    assert list(csv.reader(io.StringIO("".join(lines)))) == [["a", "'=1+1"], ["b, c", ""]]


# A value Prisjakt lists (an external_event_id anyone's browser may set) with a bare CR:
# unquoted, a spreadsheet ends the row there and runs the rest as a formula of a new row.
CR_VALUE = 'order-1\r=HYPERLINK("http://evil.example","click")'


def rows_of(text: str) -> list[list[str]]:
    """The rows a spreadsheet reads: every line break outside quotes ends a row."""
    assert text.endswith("\r\n")
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_bare_carriage_return_is_quoted_and_stays_in_its_cell() -> None:
    text = "".join(csv_lines([["id", "external_event_id"], ["e1", CR_VALUE], ["e2", "x\ny"]]))
    assert text == (
        'id,external_event_id\r\ne1,"order-1\r=HYPERLINK(""http://evil.example"",""click"")"'
        '\r\ne2,"x\ny"\r\n'
    )
    assert rows_of(text) == [["id", "external_event_id"], ["e1", CR_VALUE], ["e2", "x\ny"]]


@pytest.mark.django_db
def test_pjpixel_events_neutralises_its_cells(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_foreign_event(external_event_id='=HYPERLINK("http://evil.example","click")')
    today = timezone.localdate().isoformat()
    out, _ = run("pjpixel_events", "--from", today, "--to", today)
    [header, row] = rows_of(out)
    assert row[header.index("external_event_id")] == '\'=HYPERLINK("http://evil.example","click")'


@pytest.mark.django_db
def test_pjpixel_events_keeps_a_carriage_return_in_its_cell(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_foreign_event(external_event_id=CR_VALUE)
    today = timezone.localdate().isoformat()
    out, _ = run("pjpixel_events", "--from", today, "--to", today)
    [header, row] = rows_of(out)
    assert row[header.index("external_event_id")] == CR_VALUE


@pytest.mark.django_db
def test_pjpixel_reconcile_keeps_a_carriage_return_in_its_cell(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    pjpixel_api.add_foreign_event(
        external_event_id=CR_VALUE, event_time=timezone.now() - timedelta(hours=1)
    )
    sync.sync_recent()
    out = io.StringIO()
    with pytest.raises(CommandError):  # exit status 1: something differs
        call_command("pjpixel_reconcile", "--format", "csv", stdout=out)
    [header, row] = rows_of(out.getvalue())
    assert row[header.index("order_id")] == CR_VALUE


@pytest.mark.django_db
def test_the_admin_export_keeps_a_carriage_return_in_its_cell(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    [_now, earlier] = earlier_today(2, step=timedelta(hours=1))
    pjpixel_api.add_foreign_event(external_event_id=CR_VALUE, event_time=earlier)
    sync.sync_recent()
    today = timezone.localdate().isoformat()
    # The dates as a crafted link may send them: a CR LF after each.
    response = admin_client.get(
        reverse("admin:django_pjpixel_reconciliation_csv"),
        {"from": f"{today}\r\n", "to": f"{today}\r\n"},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="pjpixel-reconciliation-{today}-{today}.csv"'
    )
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    [header, row] = rows_of(text)
    assert row[header.index("order_id")] == CR_VALUE
