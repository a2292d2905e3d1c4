"""What the shop sent beside what Prisjakt lists: one category per order, in SQL.

``reconcile(start, end)`` compares the ledger (``ConversionEvent``) with the
mirror (``PrisjaktEvent``, filled by ``sync``) for the purchases whose event
time is within ``start`` to ``end``, joined on the order id, which every event
carries as its ``external_event_id`` [seed]. Per order:

- ``matched``: sent (``sent``/``duplicate``) and listed once, with the same
  amount, number of items and currency. The amount is compared as sent
  (``api_amount``, rounded once from the shop's value), or as restated when
  Prisjakt accepted a refund or cancellation (``restated_*``); the API's amount is an
  integer [docs] in units the API leaves [open].
- ``amount_differs``: listed, but the amount, items or currency differ, or
  Prisjakt lists the order more than once (its amounts and items summed).
- ``missing_at_prisjakt``: sent, not listed, though it was sent at least
  ``RECONCILE_GRACE`` before the sync that listed the range started.
- ``unknown_to_shop``: listed with an ``external_event_id`` the ledger never
  sent (no row, or one ``failed``, ``skipped`` or ``dead``): the browser
  pixel, another system, an event without one. One per listed event.
- ``pending``: not final yet (``pending``/``sending``), or sent too recently
  to be listed by the last sync.

A ledger row that was never sent and is not listed either is no difference
and in no category. The comparison is only as good as the mirror: it needs a
complete sync of the range (``sync.covering_sync``), else ``NotSynced``.
A report costs three queries, however many orders: the covering sync, the
counts, and the differences (read in chunks as they are consumed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, ngettext

from django_pjpixel import markets
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import PjpixelError
from django_pjpixel.models import ConversionEvent, PrisjaktEvent, PrisjaktSync
from django_pjpixel.record.sync import covering_sync

MATCHED = "matched"
AMOUNT_DIFFERS = "amount_differs"
MISSING_AT_PRISJAKT = "missing_at_prisjakt"
UNKNOWN_TO_SHOP = "unknown_to_shop"
PENDING = "pending"
CATEGORIES = (MATCHED, AMOUNT_DIFFERS, MISSING_AT_PRISJAKT, UNKNOWN_TO_SHOP, PENDING)
# The categories that are a difference: the command exits 1 when one has an order.
DIFFERENCES = (AMOUNT_DIFFERS, MISSING_AT_PRISJAKT, UNKNOWN_TO_SHOP)

Status = ConversionEvent.Status
SENT_STATUSES = (str(Status.SENT), str(Status.DUPLICATE))
OPEN_STATUSES = (str(Status.PENDING), str(Status.SENDING))
CHUNK = 2000

# The columns every difference row has, in this order.
COLUMNS = (
    "category",
    "order_id",
    *(f"ours_{name}" for name in ("id", "status", "amount", "sent_amount", "currency")),
    *(f"ours_{name}" for name in ("items", "time", "sent_at")),
    *(f"pj_{name}" for name in ("id", "events", "amount", "currency", "currency_max")),
    *(f"pj_{name}" for name in ("items", "time")),
)


OURS_KEYS: tuple[str, ...] = ("id", "status", "amount", "amount_sent", "currency")
OURS_KEYS += ("number_of_items", "event_time", "sent_at")
PRISJAKT_KEYS = ("id", "events", "amount", "currency", "number_of_items", "event_time")
CSV_HEADER = (
    "category",
    "order_id",
    *(f"ours_{key}" for key in OURS_KEYS),
    *(f"prisjakt_{key}" for key in PRISJAKT_KEYS),
)


class NotSynced(PjpixelError):
    """No complete sync of Prisjakt's events holds the range: the comparison cannot be made."""


@dataclass(frozen=True)
class Difference:
    """One order (or listed event) in a category, with both sides as JSON-ready dicts.

    ``ours``: ``{"id", "status", "amount" (text, the shop's currency units),
    "amount_sent" (the API's integer), "currency", "number_of_items",
    "event_time", "sent_at"}`` (times ISO 8601), None for ``unknown_to_shop``.
    ``prisjakt``: ``{"id" (the first Prisjakt id), "events", "amount" (as
    listed, summed), "currency" ("DKK/SEK" when they differ),
    "number_of_items", "event_time"}``, None for ``missing_at_prisjakt``.
    """

    category: str
    order_id: str | None
    ours: dict[str, Any] | None
    prisjakt: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "order_id": self.order_id,
            "ours": self.ours,
            "prisjakt": self.prisjakt,
        }

    def as_row(self) -> list[Any]:
        """The cells of one CSV line, in the order of ``CSV_HEADER``."""
        ours, prisjakt = self.ours or {}, self.prisjakt or {}
        return [
            self.category,
            self.order_id,
            *(ours.get(key) for key in OURS_KEYS),
            *(prisjakt.get(key) for key in PRISJAKT_KEYS),
        ]


@dataclass
class Report:
    """The range, the sync it rests on, the orders per category; ``differences()`` lists them."""

    start: datetime
    end: datetime
    sync: PrisjaktSync
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def synced_at(self) -> datetime | None:
        return self.sync.finished_at

    @property
    def differs(self) -> bool:
        return any(self.counts.get(category) for category in DIFFERENCES)

    def differences(self, limit: int | None = None) -> Iterator[Difference]:
        """The orders in a difference category, by category then time (one query, chunked)."""
        connection = _connection()
        sql, params = _query(connection, self).differences(limit)
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CHUNK):
                for row in rows:
                    yield _difference(dict(zip(COLUMNS, row, strict=True)))

    @property
    def cutoff(self) -> datetime:
        """Events sent after this may not be listed yet by the sync: they are pending."""
        return self.sync.started_at - pjpixel_settings.RECONCILE_GRACE

    def as_json(self, differences: Sequence[Difference] | None = None) -> dict[str, Any]:
        """``{"from", "to", "synced_at", "counts", "differences"}`` (times ISO 8601)."""
        listed = self.differences() if differences is None else differences
        return {
            "from": _iso(self.start),
            "to": _iso(self.end),
            "synced_at": _iso(self.synced_at),
            "counts": dict(self.counts),
            "differences": [difference.as_json() for difference in listed],
        }


def reconcile(start: datetime, end: datetime, *, pixel_id: str | None = None) -> Report:
    """The counts per category for the purchases from ``start`` to ``end``.

    Raises ``NotSynced`` when no complete sync holds the range.
    """
    run = covering_sync(start, end, pixel_id)
    if run is None:
        key = markets.key_of(pixel_id or markets.market_of().pixel_id)
        command = f"manage.py pjpixel_sync --pixel {key}" if key else "manage.py pjpixel_sync"
        raise NotSynced(
            gettext(
                "Prisjakt's events of this range have not been synced completely: run "
                "%(command)s over it (or schedule django_pjpixel.tasks.sync_events)."
            )
            % {"command": command}
        )
    report = Report(start, end, run, dict.fromkeys(CATEGORIES, 0))
    connection = _connection()
    sql, params = _query(connection, report).counts()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for category, count in cursor.fetchall():
            report.counts[category] += int(count)
    return report


@dataclass
class _Query:
    """The SQL of one comparison: ours left-joined to the mirror, and the mirror's unknowns."""

    ours: str
    ours_params: list[Any]
    unknown: str
    unknown_params: list[Any]

    def counts(self) -> tuple[str, list[Any]]:
        sql = (
            f"SELECT category, COUNT(*) FROM ({self.ours}) ours_rows GROUP BY category "  # noqa: S608
            f"UNION ALL SELECT '{UNKNOWN_TO_SHOP}', COUNT(*) FROM ({self.unknown}) unknown_rows"
        )
        return sql, [*self.ours_params, *self.unknown_params]

    def differences(self, limit: int | None) -> tuple[str, list[Any]]:
        listed = ", ".join(f"'{category}'" for category in DIFFERENCES)
        sql = (
            f"SELECT * FROM ({self.ours} UNION ALL {self.unknown}) difference_rows "  # noqa: S608
            f"WHERE category IN ({listed}) "
            "ORDER BY category, COALESCE(ours_time, pj_time), order_id, pj_id"
        )
        params = [*self.ours_params, *self.unknown_params]
        if limit is not None:
            sql += " LIMIT %s"
            params.append(int(limit))
        return sql, params


def _query(connection: BaseDatabaseWrapper, report: Report) -> _Query:
    """The comparison of ``report``'s range, for the pixel of the sync it rests on."""
    start, end, cutoff = report.start, report.end, report.cutoff
    q = connection.ops.quote_name

    def col(model: type[ConversionEvent | PrisjaktEvent], alias: str, name: str) -> str:
        return f"{alias}.{q(str(getattr(model._meta.get_field(name), 'column', name)))}"

    def c(name: str) -> str:
        return col(ConversionEvent, "c", name)

    def m(name: str) -> str:
        return col(PrisjaktEvent, "m", name)

    def when(value: datetime) -> Any:
        return connection.ops.adapt_datetimefield_value(value)

    pixel = report.sync.pixel_id
    scale = 100 if pjpixel_settings.AMOUNT_UNITS == "minor" else 1
    ledger, mirror = q(ConversionEvent._meta.db_table), q(PrisjaktEvent._meta.db_table)
    in_range = f"{m('pixel_id')} = %s AND {m('event_time')} >= %s AND {m('event_time')} <= %s"
    range_params = [pixel, when(start), when(end)]
    # What Prisjakt should have now: the restated values where a refund or a
    # cancellation was accepted, else what was sent (rows recorded before
    # api_amount was kept: their amount rounded as it was sent then).
    sent = (
        f"COALESCE({c('restated_api_amount')}, {c('api_amount')}, ROUND({c('amount')} * {scale}))"
    )
    items = f"COALESCE({c('restated_number_of_items')}, {c('number_of_items')})"
    currency = f"COALESCE(NULLIF({c('restated_currency')}, ''), {c('currency')})"
    amount = f"COALESCE({c('restated_amount')}, {c('amount')})"
    category = (
        f"CASE WHEN {c('status')} IN (%s, %s) THEN '{PENDING}' "
        f"WHEN listed.n IS NULL THEN CASE WHEN COALESCE({c('sent_at')}, {c('created_at')}) <= %s "
        f"THEN '{MISSING_AT_PRISJAKT}' ELSE '{PENDING}' END "
        f"WHEN listed.n = 1 AND listed.amount = {sent} AND listed.items = {items} "
        f"AND listed.currency = {currency} AND listed.currency_max = {currency} "
        f"THEN '{MATCHED}' ELSE '{AMOUNT_DIFFERS}' END"
    )
    ours = (
        f"SELECT {category} AS category, {c('order_id')} AS order_id, {c('id')} AS ours_id, "  # noqa: S608
        f"{c('status')} AS ours_status, {amount} AS ours_amount, "
        f"{sent} AS ours_sent_amount, {currency} AS ours_currency, "
        f"{items} AS ours_items, {c('event_time')} AS ours_time, "
        f"{c('sent_at')} AS ours_sent_at, listed.first_id AS pj_id, listed.n AS pj_events, "
        "listed.amount AS pj_amount, listed.currency AS pj_currency, "
        "listed.currency_max AS pj_currency_max, listed.items AS pj_items, "
        "listed.event_time AS pj_time "
        f"FROM {ledger} c LEFT JOIN ("
        f"SELECT {m('external_event_id')} AS external_id, COUNT(*) AS n, "
        f"SUM({m('amount')}) AS amount, SUM({m('number_of_items')}) AS items, "
        f"MIN({m('currency')}) AS currency, MAX({m('currency')}) AS currency_max, "
        f"MIN({m('id')}) AS first_id, MIN({m('event_time')}) AS event_time "
        f"FROM {mirror} m WHERE {in_range} AND {m('external_event_id')} <> '' "
        f"GROUP BY {m('external_event_id')}) listed ON listed.external_id = {c('order_id')} "
        f"WHERE {c('pixel_id')} = %s AND {c('event_name')} = %s "
        f"AND {c('event_time')} >= %s AND {c('event_time')} <= %s "
        f"AND {c('status')} IN (%s, %s, %s, %s)"
    )
    ours_params = [
        *OPEN_STATUSES,
        when(cutoff),
        *range_params,
        pixel,
        "purchase",
        when(start),
        when(end),
        *OPEN_STATUSES,
        *SENT_STATUSES,
    ]
    unknown = (
        f"SELECT '{UNKNOWN_TO_SHOP}' AS category, {m('external_event_id')} AS order_id, "  # noqa: S608
        "NULL AS ours_id, NULL AS ours_status, NULL AS ours_amount, NULL AS ours_sent_amount, "
        "NULL AS ours_currency, NULL AS ours_items, NULL AS ours_time, NULL AS ours_sent_at, "
        f"{m('id')} AS pj_id, 1 AS pj_events, {m('amount')} AS pj_amount, "
        f"{m('currency')} AS pj_currency, {m('currency')} AS pj_currency_max, "
        f"{m('number_of_items')} AS pj_items, {m('event_time')} AS pj_time "
        f"FROM {mirror} m WHERE {in_range} AND NOT EXISTS (SELECT 1 FROM {ledger} c "
        f"WHERE {c('pixel_id')} = {m('pixel_id')} AND {c('order_id')} = {m('external_event_id')} "
        f"AND {c('status')} IN (%s, %s, %s, %s))"
    )
    return _Query(ours, ours_params, unknown, [*range_params, *OPEN_STATUSES, *SENT_STATUSES])


def describe(side: dict[str, Any] | None) -> str:
    """One side of a difference in a few words (``1234 SEK, 2 items``), or ``-``."""
    if not side:
        return "-"
    items = side.get("number_of_items")
    amount, currency = side.get("amount_sent", side.get("amount")), side.get("currency") or "?"
    values = {
        "amount": amount,
        "currency": currency,
        "items": items,
        "events": side.get("events", 1),
    }
    if isinstance(items, int):
        text = ngettext(
            "%(amount)s %(currency)s, %(items)s item",
            "%(amount)s %(currency)s, %(items)s items",
            items,
        )
    else:
        text = gettext("%(amount)s %(currency)s, %(items)s items")
    text %= values
    if side.get("events", 1) > 1:
        text += " " + gettext("(%(events)d events)") % values
    return text


def _connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_read(ConversionEvent)]


def _difference(row: dict[str, Any]) -> Difference:
    ours = None
    if row["ours_id"] is not None:
        ours = {
            "id": row["ours_id"],
            "status": row["ours_status"],
            "amount": str(_decimal(row["ours_amount"])),
            "amount_sent": _number(row["ours_sent_amount"]),
            "currency": row["ours_currency"],
            "number_of_items": row["ours_items"],
            "event_time": _iso(_datetime(row["ours_time"])),
            "sent_at": _iso(_datetime(row["ours_sent_at"])),
        }
    prisjakt = None
    if row["pj_id"] is not None:
        currencies = sorted({row["pj_currency"] or "", row["pj_currency_max"] or ""})
        prisjakt = {
            "id": row["pj_id"],
            "events": int(row["pj_events"]),
            "amount": _number(row["pj_amount"]),
            "currency": "/".join(currencies),
            "number_of_items": None if row["pj_items"] is None else int(row["pj_items"]),
            "event_time": _iso(_datetime(row["pj_time"])),
        }
    return Difference(row["category"], row["order_id"] or None, ours, prisjakt)


def _decimal(value: Any) -> Decimal | None:
    """A number as the database gave it (SQLite: a float) as a ``Decimal`` of 2 places."""
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _number(value: Any) -> int | str | None:
    """An API amount as JSON: an integer where it is one, else its decimal text."""
    amount = _decimal(value)
    if amount is None:
        return None
    return int(amount) if amount == amount.to_integral_value() else str(amount)


def _datetime(value: Any) -> datetime | None:
    """A time as the database gave it (SQLite: text; MySQL: naive UTC) as an aware one."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = value.replace(tzinfo=dt_timezone.utc)
    return value if isinstance(value, datetime) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else timezone.localtime(value).isoformat()
