"""Fixtures of the Oscar shop (``tests/oscar/settings.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import django_pjpixel
from django_pjpixel.contrib.oscar import receivers
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


@pytest.fixture
def no_restate_purchase(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A django-pjpixel without ``restate_purchase``; its warning not given yet."""
    monkeypatch.setattr(django_pjpixel, "restate_purchase", None, raising=False)
    receivers._warn_cancellations_not_reported.cache_clear()
    yield
    receivers._warn_cancellations_not_reported.cache_clear()
