"""Text from the API in a log line: one line, whatever the API sent.

A problem's ``title`` or ``detail``, a field error, a request id or a listed
event's field is the API's text. Written into a log message as it came, a
``\\n`` or ``\\r\\n`` in it starts what a reader (or a log shipper) takes for a
new record: a forged log line. ``one_line`` writes every line break as its
escape, so each log call is one line.
"""

from __future__ import annotations

# Every character str.splitlines() breaks a line at.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = str.maketrans({ch: ch.encode("unicode_escape").decode("ascii") for ch in _LINE_BREAKS})


def one_line(value: object) -> str:
    """``str(value)`` with each line break written as its escape (``\\n``, ``\\r``, ``\\x85``…)."""
    return str(value).translate(_ESCAPES)
