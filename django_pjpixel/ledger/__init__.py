"""What the shop reports: purchases, attached clicks and restatements, recorded as outbox rows.

``purchases`` (``track_purchase`` and the ``order_completed`` receiver),
``attaching`` (``attach_click``), ``restatements`` (``restate_purchase``),
``validation`` (one pass over a report's values), ``publisher`` (the
per-process thread that queues ``deliver_event`` after the commit), ``keyed``
(row locks by primary key), ``retention`` (the purge and ``pjpixel_erase``).
"""
