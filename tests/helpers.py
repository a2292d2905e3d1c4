"""Helpers shared by the test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

from typing import Any


def connect(receivers: list[Any], signal: Any, receiver: Any) -> None:
    """Connect ``receiver`` for this test; the ``receivers`` fixture disconnects it."""
    signal.connect(receiver, weak=False)
    receivers.append((signal, receiver))
