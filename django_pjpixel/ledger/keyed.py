"""Locking outbox rows by primary key alone: exactly the rows named, and no other.

On MariaDB and MySQL (InnoDB) a locking statement locks every row its plan
reads, matching or not, and waits for those another transaction holds. A
plan through the ``(status, ...)`` indexes reads every pending or sending
row, so two senders each locking "their" rows by key and status wait for each
other's: a deadlock (seen with four concurrent ``deliver_due`` runs). So rows
are locked here by key alone (``FORCE INDEX (PRIMARY)``), their state is read
and judged in Python, and the ``UPDATE`` that follows names them by key alone
(an ``UPDATE`` reading the clustered index skips rows it does not change,
InnoDB's semi-consistent read). PostgreSQL locks only the rows a statement
returns or changes; SQLite has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections, models, router


def lock(
    model: type[models.Model], pks: Iterable[Any], *fields: str, using: str | None = None
) -> dict[Any, tuple[Any, ...]]:
    """Lock the rows ``pks`` of ``model`` until the transaction ends; ``{pk: (fields...)}``.

    Call it inside ``transaction.atomic`` (of ``using``, by default the
    model's database for writing). Rows that do not exist are left out.
    Without ``SELECT ... FOR UPDATE`` (SQLite) the rows are only read.
    """
    keys = sorted(set(pks))
    if not keys:
        return {}
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    rows = model._default_manager.using(alias).filter(pk__in=keys).order_by("pk")
    if connection.vendor == "mysql":
        meta = model._meta
        quote = connection.ops.quote_name
        table, key = quote(meta.db_table), quote(meta.pk.column)
        marks = ", ".join(["%s"] * len(keys))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {key} FROM {table} FORCE INDEX (PRIMARY) "  # noqa: S608 - names quoted
                f"WHERE {key} IN ({marks}) ORDER BY {key} FOR UPDATE",
                [meta.pk.get_db_prep_value(value, connection) for value in keys],
            )
    elif connection.features.has_select_for_update:
        rows = rows.select_for_update()
    return {values[0]: tuple(values[1:]) for values in rows.values_list("pk", *fields)}
