"""A shop's history written fast: ``INSERT … SELECT`` over a number series, no ORM row by row.

``seed(first, last)`` writes the orders ``first``..``last`` (1 is the newest),
``RATE`` a day going back from ``now``, so a bigger history is the same
recent days with older ones behind them: the outbox rows (``id`` rising with
time, as a live shop's do), a restatement of every 50th, the mirror's copy of
nine in ten. Every 1000th order failed, gave up or was skipped; the newest
``PENDING`` are pending; click ids older than ``RETENTION_DAYS`` are erased,
as ``purge`` leaves them. PostgreSQL numbers the rows with
``generate_series``, MariaDB with its sequence engine (``seq_1_to_N``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from django_pjpixel.models import ConversionEvent, PrisjaktEvent, PrisjaktSync, Restatement

RATE = 3_000  # orders a day: the smaller history (100,000) still holds the 30 days measured
STEP_US = 86_400_000_000 // RATE  # microseconds between two orders
TOP_ID = 100_000_000  # the newest order's row id; older rows have smaller ids
PENDING = 200
RETENTION_DAYS = 5
CHUNK = 500_000
WIDTH = 9  # rows an INSERT writes (MariaDB's undo log stays small)


def _numbers(first: int, last: int) -> str:
    if connection.vendor == "postgresql":
        return f"generate_series({first}::bigint, {last}::bigint) AS s(n)"
    return f"(SELECT seq AS n FROM seq_{first}_to_{last}) AS s"


def ident(prefix: str, number: int) -> str:
    """An id as ``_text`` writes it: fixed width, so ids of a time range sit together in an
    index, as a shop's numbered orders do."""
    return f"{prefix}{number:0{WIDTH}d}"


def _text(prefix: str, expression: str) -> str:
    if connection.vendor == "postgresql":
        return f"'{prefix}' || lpad(({expression})::text, {WIDTH}, '0')"
    return f"CONCAT('{prefix}', LPAD({expression}, {WIDTH}, '0'))"


def _before(expression: str) -> str:
    """``now`` (the first parameter) less ``expression`` microseconds."""
    if connection.vendor == "postgresql":
        return f"(%s::timestamptz - ({expression}) * interval '1 microsecond')"
    return f"TIMESTAMPADD(MICROSECOND, -({expression}), %s)"


def table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)  # type: ignore[attr-defined]


def _events(first: int, last: int, now: datetime, pixel: str) -> None:
    when = _before(f"n * {STEP_US}")
    adapted = connection.ops.adapt_datetimefield_value(now)
    retention_us = RETENTION_DAYS * 86_400_000_000
    status = (
        f"CASE WHEN n <= {PENDING} THEN 'pending' WHEN MOD(n, 1000) = 1 THEN 'failed'"
        " WHEN MOD(n, 1000) = 2 THEN 'dead' WHEN MOD(n, 1000) = 3 THEN 'skipped' ELSE 'sent' END"
    )
    columns = {
        "id": f"{TOP_ID} - n",
        "pixel_id": "%s",
        "attempts": "1",
        "problem_type": "''",
        "problem_title": "''",
        "problem_detail": "''",
        "field_errors": "'{}'",
        "request_id": _text("req-", "n"),
        "remote_event_id": "''",
        "updated_at": when,
        "sent_at": f"CASE WHEN n > {PENDING} AND MOD(n, 1000) > 3 THEN {when} END",
        "order_id": _text("order-", "n"),
        "event_name": "'purchase'",
        "event_time": when,
        "amount": "100 + MOD(n, 900)",
        "api_amount": "100 + MOD(n, 900)",
        "currency": "CASE WHEN MOD(n, 10) = 0 THEN 'NOK' ELSE 'SEK' END",
        "number_of_items": "1",
        "click_id": f"CASE WHEN n * {STEP_US} < {retention_us} THEN {_text('click-', 'n')}"
        " ELSE '' END",
        "click_captured_at": when,
        "status": status,
        "skip_reason": "''",
        "created_at": when,
        "restated_currency": "''",
        "restated_at": f"CASE WHEN MOD(n, 50) = 7 THEN {when} END",
    }
    # Each ``when`` takes ``now``; the pixel is the second column.
    params: list[object] = []
    for expression in columns.values():
        params += [pixel] if expression == "%s" else [adapted] * expression.count("%s")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table(ConversionEvent)} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns.values())} FROM {_numbers(first, last)}",
            params,
        )


def _restatements_and_mirror(first: int, last: int, now: datetime) -> None:
    adapted = connection.ops.adapt_datetimefield_value(now)
    low, high = TOP_ID - last, TOP_ID - first
    events = table(ConversionEvent)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table(Restatement)} (pixel_id, attempts, problem_type, problem_title,"
            " problem_detail, field_errors, request_id, remote_event_id, updated_at, sent_at,"
            " event_id, order_id, reason, old_amount, old_currency, amount, number_of_items,"
            " currency, status, skip_reason, created_at)"
            " SELECT pixel_id, 1, '', '', '', '{}', '', '', restated_at, restated_at, id,"
            " order_id, 'refund', amount, currency, 0, 0, currency, 'sent', '', restated_at"
            f" FROM {events} WHERE id BETWEEN %s AND %s AND restated_at IS NOT NULL",
            [low, high],
        )
        cursor.execute(
            f"INSERT INTO {table(PrisjaktEvent)} (id, pixel_id, click_id, external_event_id,"
            " event_name, event_time, amount, currency, number_of_items, data, first_seen,"
            f" last_seen) SELECT {_text('ev-', 'id')}, pixel_id, click_id, order_id, event_name,"
            " event_time, amount, currency, number_of_items, '{}', %s, %s"
            f" FROM {events} WHERE id BETWEEN %s AND %s AND MOD(id, 10) <> 0",
            [adapted, adapted, low, high],
        )


def seed(first: int, last: int, now: datetime, pixel: str) -> None:
    """The orders ``first``..``last`` back from ``now``, their restatements and mirror."""
    for start in range(first, last + 1, CHUNK):
        end = min(last, start + CHUNK - 1)
        _events(start, end, now, pixel)
        _restatements_and_mirror(start, end, now)
    if first == 1:
        PrisjaktSync.objects.create(
            pixel_id=pixel,
            start=now - timedelta(days=30),
            end=now,
            started_at=now,
            finished_at=now,
            complete=True,
        )
    analyze()


def analyze() -> None:
    """The tables as a live shop's are: vacuumed and analysed (autovacuum would be busy with
    two million new rows while the pages are timed), MariaDB's statistics fresh."""
    with connection.cursor() as cursor:
        for model in (ConversionEvent, Restatement, PrisjaktEvent):
            if connection.vendor == "postgresql":
                cursor.execute(f"VACUUM ANALYZE {table(model)}")
            else:
                cursor.execute(f"ANALYZE TABLE {table(model)}")
                cursor.fetchall()
