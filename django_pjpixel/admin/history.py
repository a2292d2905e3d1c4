"""The admin's lists over years of history: pages that cost the same at ten million rows.

The outbox keeps every row (retention erases click ids, not rows), so its
lists, the restatements' and the mirror's grow with the shop's history. What
each page does about it is written down in ``docs/explanation/scale.md``:

- ``EstimatedPaginator``: the row count exact up to ``EXACT_UP_TO``, above it
  the database's own estimate (PostgreSQL's and MariaDB's ``EXPLAIN``), shown
  as "about N"; pages beyond the ``DEEPEST`` row are not offered (an
  ``OFFSET`` of millions reads millions): a filter or a date narrows the list.
- ``HistoryAdmin``: that paginator, no second count of the whole table
  (``show_full_result_count``), search by exact id (``field__exact``).
- ``distinct_values``: the pixel filter's choices by skipping through an index
  that starts with the column, one probe per value, not a read of the table.
- ``ChoicesFilter``: the choices of a column no index leads with from a fixed list
  (the supported currencies), plus the value chosen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_pjpixel.conf import SUPPORTED_CURRENCIES

# Counted exactly up to this many rows (a bounded COUNT); beyond, the planner's estimate.
EXACT_UP_TO = 1_000
# The deepest row a page of an estimated list reaches: 200 pages of 50.
DEEPEST = 10_000


if TYPE_CHECKING:
    BasePaginator = Paginator[Any]
else:  # Paginator is generic for the type checker only
    BasePaginator = Paginator


class EstimatedPaginator(BasePaginator):
    """Counts at most ``EXACT_UP_TO + 1`` rows; above that the planner's estimate.

    ``estimated`` says which the count is. SQLite, a small shop's database,
    has no estimate to give: its count is exact.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return super().count
        if connections[rows.db].vendor not in ("postgresql", "mysql"):
            return rows.count()
        bounded = count_at_most(rows, EXACT_UP_TO)
        if bounded <= EXACT_UP_TO:
            return bounded
        self.estimated = True
        return max(estimate(rows), bounded)

    @cached_property
    def num_pages(self) -> int:
        pages = super().num_pages
        if not self.estimated:
            return pages
        return min(pages, max(1, math.ceil(DEEPEST / self.per_page)))


def count_at_most(rows: QuerySet[Any], most: int) -> int:
    """The rows of ``rows``, counted up to ``most + 1`` (a bounded read of an index)."""
    return int(rows.order_by().values("pk")[: most + 1].count())


def estimate(rows: QuerySet[Any]) -> int:
    """How many rows ``rows`` has, as the database's planner estimates it (no row is read)."""
    connection = connections[rows.db]
    sql, params = rows.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return int(plan[0]["Plan"]["Plan Rows"])
        cursor.execute(f"EXPLAIN EXTENDED {sql}", params)
        names = [column[0].lower() for column in cursor.description]
        first = dict(zip(names, cursor.fetchone(), strict=False))
    filtered = float(first.get("filtered") or 100)
    return int(float(first.get("rows") or 0) * filtered / 100)


class HistoryAdmin:
    """A read-only list over a table that keeps growing (mix in before ``ModelAdmin``)."""

    paginator: ClassVar[type] = EstimatedPaginator
    show_full_result_count = False


def distinct_values(model: type[Model], column: str) -> list[str]:
    """The distinct non-null values of ``column``, read through an index that starts with it.

    One index probe per value, not a read of the table: MariaDB and MySQL do
    so for ``SELECT DISTINCT`` ("Using index for group-by"); PostgreSQL has no
    such skip scan, so a recursive query asks for the next value after the
    last one found.
    """
    alias = router.db_for_read(model)
    connection = connections[alias]
    if connection.vendor == "mysql":
        rows = model._default_manager.using(alias).order_by(column).values_list(column)
        return [str(value) for (value,) in rows.distinct() if value is not None]
    name = connection.ops.quote_name(column)  # a concrete column named as its field
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE found (value) AS ("  # noqa: S608 (quoted names, no input)
            f" SELECT MIN({name}) FROM {table}"
            f" UNION ALL"
            f" SELECT (SELECT MIN({name}) FROM {table} WHERE {name} > found.value)"
            f" FROM found WHERE found.value IS NOT NULL"
            f") SELECT value FROM found WHERE value IS NOT NULL"
        )
        return [str(value) for (value,) in cursor.fetchall()]


class ChoicesFilter(admin.SimpleListFilter):
    """Rows by a column's value, the choices from ``values`` rather than a scan of the rows."""

    values: Sequence[str] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = list(self.values)
        chosen = self.value()
        if chosen is not None and chosen not in values:
            values.append(chosen)
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(**{str(self.parameter_name): value})


class CurrencyFilter(ChoicesFilter):
    title = _("currency")
    parameter_name = "currency"

    values = SUPPORTED_CURRENCIES


class EventNameFilter(ChoicesFilter):
    title = _("event name")
    parameter_name = "event_name"
    values = ("purchase",)
