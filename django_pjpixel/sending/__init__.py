"""Getting outbox rows to Prisjakt.

``outbox`` (the row's state machine: claim, lease, record an outcome),
``delivery`` (``deliver_event``: one row), ``backlog`` (``deliver_due``: what
is due, in batches within the rate limit), ``restating`` (restatements'
``PATCH``).
"""
