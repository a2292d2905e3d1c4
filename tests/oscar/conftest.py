"""Fixtures of the Oscar shop (``tests/oscar/settings.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.oscar.shop import stock_the_shop


@pytest.fixture
def products(db: None) -> tuple[Any, Any]:
    """Headphones (149.50 NOK) and a cable (99 NOK), ten of each in stock."""
    return stock_the_shop()


@pytest.fixture
def delivered(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> Callable[[], Any]:
    """``with delivered():`` runs what the commits inside queued: delivery, eagerly."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
