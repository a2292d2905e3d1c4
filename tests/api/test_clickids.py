"""The click rule (``api/clickids``): well-formed, odd or junk; the pattern a setting.

Where the rule applies (every place a click enters) is ``tests/test_click_ids.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pjpixel.api.clickids import ClickShape, best, click_shape, replaces
from tests.test_click_ids import CLICK, JUNK, NEWER, ODD, ODD_TOKENS


def test_the_documented_shape_is_well_formed() -> None:
    assert click_shape(CLICK) is ClickShape.WELL_FORMED
    assert click_shape(NEWER) is ClickShape.WELL_FORMED


@pytest.mark.parametrize("value", ODD_TOKENS)
def test_another_plausible_shape_is_odd(value: str) -> None:
    assert click_shape(value) is ClickShape.ODD


@pytest.mark.parametrize("value", [*JUNK, "", "a" * 129, CLICK + "\n", None, 42])
def test_placeholders_and_junk_are_refused(value: Any) -> None:
    assert click_shape(value) is ClickShape.JUNK


def test_the_pattern_is_a_setting(pjpixel: dict[str, Any]) -> None:
    pjpixel["CLICK_ID_PATTERN"] = r"[0-9a-f]{8}-[0-9a-f-]{27}_[0-9a-f]{20}"
    assert click_shape(CLICK + "abcd") is ClickShape.WELL_FORMED
    assert click_shape(CLICK) is ClickShape.ODD
    # A setting never lets in what cannot be a click at all.
    pjpixel["CLICK_ID_PATTERN"] = r".*"
    assert click_shape("undefined") is ClickShape.JUNK
    assert click_shape("a b" * 10) is ClickShape.JUNK


def test_a_pattern_that_does_not_compile_is_logged_and_the_documented_one_used(
    pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["CLICK_ID_PATTERN"] = "[0-9a-f"
    assert click_shape(CLICK) is ClickShape.WELL_FORMED
    assert "CLICK_ID_PATTERN" in caplog.text


def test_which_click_wins() -> None:
    assert replaces(NEWER, CLICK)
    assert replaces(CLICK, ODD)
    assert not replaces(ODD, CLICK)
    assert replaces(ODD, None)
    assert not replaces("undefined", None)
    assert best(["null", ODD, CLICK]) == CLICK
    assert best(["null", ODD]) == ODD
    assert best(["null", "undefined"]) is None
