"""The signals of django-pjpixel: the objects only, each with its arguments.

Receivers and helpers live where their work is: ``purchases`` (the
``order_completed`` receiver, ``track_purchase``, ``connect_order_signal``),
``restatements`` (``connect_restatement_signal``) and ``delivery`` (which
sends ``pre_send`` and ``post_send``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal

if TYPE_CHECKING:
    from django_pjpixel.ledger.purchases import connect_order_signal, track_purchase
    from django_pjpixel.ledger.restatements import connect_restatement_signal

__all__ = [
    "Cancel",
    "connect_order_signal",
    "connect_restatement_signal",
    "order_completed",
    "post_send",
    "pre_send",
    "track_purchase",
]

# Sent by the shop when an order is paid. Arguments: sender, order_id (a str,
# int or UUID), amount, currency, number_of_items, event_time=None,
# request=None, signed_click_id=None, pixel=None (a market key of
# PJPIXEL["PIXELS"]). ``purchases.on_order_completed`` records it, and never raises.
order_completed = Signal()

# Sent before an event is delivered. Arguments: sender (ConversionEvent),
# event, payload (dict, may be modified). A receiver cancels delivery by
# returning ``Cancel(reason)``; the event becomes ``skipped`` with that reason.
pre_send = Signal()

# Sent after each delivery attempt. Arguments: sender (ConversionEvent),
# event, status (the event's new status), error (PrisjaktAPIError or None).
post_send = Signal()


@dataclass(frozen=True)
class Cancel:
    """What a ``pre_send`` receiver returns to cancel delivery; ``reason`` is kept."""

    reason: str = "cancelled by a pre_send receiver"


def __getattr__(name: str) -> Any:
    # ``django_pjpixel.signals.connect_order_signal`` is where the docs have
    # always pointed; the function lives with the rest of the purchase code.
    if name in {"connect_order_signal", "track_purchase"}:
        from django_pjpixel.ledger import purchases

        return getattr(purchases, name)
    if name == "connect_restatement_signal":
        from django_pjpixel.ledger import restatements

        return restatements.connect_restatement_signal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
