"""The vectors in ``tests/seed.py`` are the seed page's own, character for character."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import seed

SEED_PAGE = Path(__file__).resolve().parents[2] / "shared" / "seed-conversion-tracking.txt"


@pytest.mark.skipif(
    not SEED_PAGE.is_file(), reason=f"the project's shared notes are not at {SEED_PAGE}"
)
@pytest.mark.parametrize("name", ["BODY", "NOT_FOUND", "VALIDATION", "LINK_LINE"])
def test_vector_is_on_the_seed_page(name: str) -> None:
    assert getattr(seed, name) in SEED_PAGE.read_text(encoding="utf-8")


def test_body_fills_both_placeholders() -> None:
    filled = seed.body("order-1", "click-1")
    assert '"external_event_id": "order-1"' in filled
    assert '"signed_click_id": "click-1"' in filled
    assert "<" not in filled
