"""The click rule: which ``pjclid`` values are clicks, and which click wins.

One rule for every place a click enters (the landing's ``?pjclid=``, both
click stores, the checkout form's ``pjpixel_click_id``, ``signed_click_id=``,
``attach_click``, the payload sent). A value is of one of three shapes:

- ``WELL_FORMED``: it matches ``PJPIXEL["CLICK_ID_PATTERN"]``, by default the
  one shape every public sample has, a UUID v4, ``_`` and 16 lowercase hex
  digits (prisjakt-api.md, "The click id");
- ``ODD``: not that shape, but plausibly a signed click all the same (20 to
  128 of ``[A-Za-z0-9_-]``, letters and digits both): what a change of format
  at Prisjakt would look like, or a value some proxy re-cased;
- ``JUNK``: anything else: a placeholder (``undefined``, ``null``, an
  unexpanded ``{pjclid}``), a CDN's stand-in (``PANTHEON_STRIPPED``), a word,
  an empty or over-long value, characters outside ``[A-Za-z0-9_-]``. Refused
  everywhere, as if absent.

A well-formed click always wins over an odd one and is never replaced by one
(``replaces``). A purchase whose only click is odd is held, never sent on its
own say-so (``attribution.SKIP_ODD_CLICK``).
"""

from __future__ import annotations

import enum
import logging
import re
from functools import lru_cache

from django_pjpixel.conf import DEFAULTS, pjpixel_settings

logger = logging.getLogger("django_pjpixel.clickids")

# The documented shape [docs][ref]: a UUID v4, an underscore, 16 lowercase hex digits.
DEFAULT_CLICK_ID_PATTERN: str = DEFAULTS["CLICK_ID_PATTERN"]
# What any click must be, whatever the pattern says: safe in a header, a cookie, a log.
SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A plausible signed click of another shape: long enough to carry an id and a
# signature, with letters and digits both (a word or a placeholder has no digit).
PLAUSIBLE = re.compile(r"(?=[^0-9]*[0-9])(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9_-]{20,128}")
# Stand-ins seen where a click should be, refused even when the pattern would match.
PLACEHOLDERS = frozenset({"undefined", "null", "none", "nil", "nan", "false", "true", "pjclid"})


class ClickShape(enum.Enum):
    WELL_FORMED = "well-formed"
    ODD = "odd"
    JUNK = "junk"


def click_shape(value: object) -> ClickShape:
    """The shape of ``value`` as a click id (see the module's text). Never raises for a value."""
    if not isinstance(value, str) or SAFE.fullmatch(value) is None:
        return ClickShape.JUNK
    if value.lower() in PLACEHOLDERS:
        return ClickShape.JUNK
    if _pattern(pjpixel_settings.CLICK_ID_PATTERN).fullmatch(value):
        return ClickShape.WELL_FORMED
    if PLAUSIBLE.fullmatch(value):
        return ClickShape.ODD
    return ClickShape.JUNK


def is_valid_click_id(value: object) -> bool:
    """Whether ``value`` may be a click at all: well-formed, or odd (not junk)."""
    return click_shape(value) is not ClickShape.JUNK


def is_well_formed(value: object) -> bool:
    return click_shape(value) is ClickShape.WELL_FORMED


def replaces(new: str, kept: str | None) -> bool:
    """Whether click ``new`` may take the place of ``kept`` (None: nothing kept).

    Junk never does; an odd click never replaces a well-formed one; otherwise
    the newer click wins.
    """
    shape = click_shape(new)
    if shape is ClickShape.JUNK:
        return False
    return shape is ClickShape.WELL_FORMED or kept is None or not is_well_formed(kept)


def best(candidates: list[str]) -> str | None:
    """The first well-formed of ``candidates`` (in order of preference), else the first odd."""
    usable = [value for value in candidates if is_valid_click_id(value)]
    return next((value for value in usable if is_well_formed(value)), None) or next(
        iter(usable), None
    )


@lru_cache(maxsize=8)
def _pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled; one that does not compile (check ``E007``) is the default's."""
    try:
        return re.compile(pattern)
    except re.error as err:
        logger.error(
            'PJPIXEL["CLICK_ID_PATTERN"] is not a regular expression (%s): the documented '
            "shape is used; fix the setting or remove it.",
            err,
        )
        return re.compile(DEFAULT_CLICK_ID_PATTERN)
