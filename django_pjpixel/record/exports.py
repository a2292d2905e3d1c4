"""CSV that a spreadsheet opens as data: cells it would run as a formula are neutralised.

OWASP's advice on CSV injection: a cell that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is read by Excel, LibreOffice and Google
Sheets as a formula, so such a cell gets a leading ``'`` and is shown as the
text it is. Lines end in ``\r\n`` (RFC 4180, the csv module's own), so a value
holding a bare carriage return is quoted: written with ``\n`` line ends it was
not, and a spreadsheet ended the row at the CR and read the rest of the value
as a row of its own, its first cell a live formula. Every CSV django-pjpixel
writes (``pjpixel_events``, ``pjpixel_reconcile``, the admin's reconciliation
export) is written by ``csv_lines``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as the text of one cell: ``None`` empty, a dict or list as JSON,
    anything else as ``str``; a leading ``'`` where it would start a formula."""
    if value is None:
        text = ""
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def csv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Each row as one line of CSV, ending in ``\\r\\n``, every cell through ``safe_cell``;
    a cell holding a line break (``\\r`` or ``\\n``) is quoted."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
