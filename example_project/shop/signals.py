"""The shop's own signals, as a shop has them before it installs django-pjpixel.

order_paid: sent when the payment provider confirms an order, inside the
    transaction that marks it paid. Arguments: sender (Order), order.
order_refunded: sent when staff cancel or refund an order, inside the
    transaction that records it. Arguments: sender (Order), order, amount
    (what the order counts at now: 0 when cancelled), reason.
"""

from __future__ import annotations

from django.dispatch import Signal

order_paid = Signal()
order_refunded = Signal()
