"""Signals of django-pjpixel, and ``track_purchase``.

order_completed: sent by the shop when an order is paid. Arguments:
    sender, order_id, amount, currency, number_of_items, event_time=None,
    request=None, signed_click_id=None.
pre_send: sent before an event is delivered. Arguments: sender
    (ConversionEvent), event, payload (dict, may be modified). A receiver
    cancels delivery by returning ``Cancel(reason)``; the event becomes
    ``skipped`` with that reason.
post_send: sent after each delivery attempt. Arguments: sender
    (ConversionEvent), event, status (the event's new status), error
    (PrisjaktAPIError or None).
"""

from __future__ import annotations

from django.dispatch import Signal

order_completed = Signal()
pre_send = Signal()
post_send = Signal()
