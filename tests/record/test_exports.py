"""``exports``: CSV cells a spreadsheet would run as a formula are neutralised (OWASP)."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from django_pjpixel.record.exports import csv_lines, safe_cell
from django_pjpixel.testing.emulator import PrisjaktEmulator
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
    assert lines == ["a,'=1+1\n", '"b, c",\n']
    assert list(csv.reader(io.StringIO("".join(lines)))) == [["a", "'=1+1"], ["b, c", ""]]


@pytest.mark.django_db
def test_pjpixel_events_neutralises_its_cells(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_foreign_event(external_event_id='=HYPERLINK("http://evil.example","click")')
    today = timezone.localdate().isoformat()
    out, _ = run("pjpixel_events", "--from", today, "--to", today)
    [header, row] = list(csv.reader(io.StringIO(out)))
    assert row[header.index("external_event_id")] == '\'=HYPERLINK("http://evil.example","click")'
