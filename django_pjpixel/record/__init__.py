"""Prisjakt's record in the shop: the mirror of its events, and the shop's side beside it.

``sync`` (``sync_events``: the listing into ``PrisjaktEvent``),
``reconciliation`` (the shop's events against the mirror), ``totals`` (a
range's totals), ``ranges`` (the date-range forms of the admin's pages and the
commands), ``exports`` (their CSV files).
"""
