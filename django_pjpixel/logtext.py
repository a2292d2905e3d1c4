"""Text from the API in a log line: one line, whatever the API sent, and no credential.

A problem's ``title`` or ``detail``, a field error, a request id or a listed
event's field is the API's text. Written into a log message as it came, a
``\\n`` or ``\\r\\n`` in it starts what a reader (or a log shipper) takes for a
new record: a forged log line. ``one_line`` writes every line break as its
escape, so each log call is one line.

The API's text may also echo a credential: the client secret, or the bearer
token of the request (an "invalid token <token>" detail). ``masked`` is the
one rule for them all: each value the caller knows to be secret (the client
secret, the current and the previous bearer tokens) and anything after
``Bearer `` becomes ``***``. It is applied where an answer becomes an error
(``problems``), so no exception, log record, ledger row or page carries one,
and again where text is shown or logged (``PrisjaktAPIError.__str__``, the
admin, ``pjpixel_check``) for rows written before the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

# Every character str.splitlines() breaks a line at.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPES = str.maketrans({ch: ch.encode("unicode_escape").decode("ascii") for ch in _LINE_BREAKS})
# "Bearer <credentials>" (RFC 6750: the scheme is case-insensitive), whatever the token.
_BEARER = re.compile(r"(\bbearer[ \t]+)[^\s\"'<>,;]+", re.IGNORECASE)
_BEARER_BYTES = re.compile(rb"(\bbearer[ \t]+)[^\s\"'<>,;]+", re.IGNORECASE)
# A nested value deeper than this is dropped rather than walked (a hostile answer).
_MAX_DEPTH = 100


def one_line(value: object) -> str:
    """``str(value)`` with each line break written as its escape (``\\n``, ``\\r``, ``\\x85``…)."""
    return str(value).translate(_ESCAPES)


def masked(text: str, hidden: Iterable[str] = ()) -> str:
    """``text`` with each of ``hidden`` and anything after ``Bearer `` replaced by ``***``."""
    for value in _longest_first(hidden):
        if value in text:
            text = text.replace(value, MASK)
    return _BEARER.sub(lambda match: match.group(1) + MASK, text)


def masked_bytes(body: bytes, hidden: Iterable[str] = ()) -> bytes:
    """``masked`` for a raw (UTF-8) body, before it is decoded."""
    for value in _longest_first(hidden):
        raw = value.encode()
        if raw in body:
            body = body.replace(raw, MASK.encode())
    return _BEARER_BYTES.sub(lambda match: match.group(1) + MASK.encode(), body)


def masked_value(value: Any, hidden: Iterable[str] = (), _depth: int = 0) -> Any:
    """``value`` (JSON-like: strings, dicts, lists) with every string, keys too, ``masked``.

    A nesting deeper than a hundred levels is replaced by ``***``: no text of
    it is kept unread.
    """
    hidden = tuple(hidden)
    if _depth > _MAX_DEPTH:
        return MASK
    if isinstance(value, str):
        return masked(value, hidden)
    if isinstance(value, dict):
        return {
            masked_value(k, hidden, _depth + 1): masked_value(v, hidden, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked_value(v, hidden, _depth + 1) for v in value]
    return value


def _longest_first(hidden: Iterable[str]) -> list[str]:
    # The longest first: a token that holds another hidden value is masked whole.
    return sorted({value for value in hidden if value}, key=len, reverse=True)
