"""The admin's pages. Django imports ``django_pjpixel.admin`` only, so this imports every
module that registers a ``ModelAdmin``.

``outbox`` (the conversion events, with the "Prisjakt events" page and the app
index's health band), ``restatements``, ``mirror`` (Prisjakt's events as
mirrored, with the "Reconciliation" page), ``events`` (the live "Prisjakt
events" page), ``charts``, ``filters`` (the market filter and column).
"""

from django_pjpixel.admin import mirror, outbox, restatements

__all__ = ["mirror", "outbox", "restatements"]
