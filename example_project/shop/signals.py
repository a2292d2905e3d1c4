"""The shop's own signals, as a shop has them before it installs django-pjpixel.

order_paid: sent when the payment provider confirms an order, inside the
    transaction that marks it paid. Arguments: sender (Order), order.
"""

from __future__ import annotations

from django.dispatch import Signal

order_paid = Signal()
