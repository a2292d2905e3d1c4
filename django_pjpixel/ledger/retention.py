"""Retention and erasure of click ids: ``purge`` (periodic) and ``erase`` (on request).

The shop and Prisjakt are joint controllers of the click id (GDPR Art. 26),
so the shop keeps it no longer than it needs it. ``purge`` erases, in
batches, the click ids of rows written more than ``PJPIXEL["RETENTION"]``
ago (default 90 days) that are done with: a ``ConversionEvent`` that is final
(sent, duplicate, failed, skipped, gave up) keeps its row, without the click
id; an ``OrderClick``, which is nothing without its click, is deleted.
``erase`` does the same at once, whatever the age, for one order or one
click id; an event not sent yet is then skipped, never sent.

Every table holding a click id is listed once, in ``CLICK_COLUMNS``. A click id
also stands where it was copied: a 400's ``field_errors`` echo the
``signed_click_id`` sent [seed], a problem's detail may quote it, the mirror
keeps the event as listed (``data``). Each erasure replaces those copies by
``[erased]`` too, in every text and JSON column of the app's models
(``copy_columns``, found from the models, so a new column is covered): the
rows ``purge`` ages (and their restatements), the rows of the order ``erase``
is given, every row for a click id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import models, router, transaction
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Cast

from django_pjpixel import times
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.models import (
    FINAL_STATUSES,
    ConversionEvent,
    OrderClick,
    PrisjaktEvent,
    Restatement,
)

PURGE_BATCH = 1000
ERASED_REASON = "click id erased"
# What a copy of an erased click id becomes in a text or JSON column.
ERASED = "[erased]"
# erase()'s count of rows that held a copy only.
COPIES = "copies"


@dataclass(frozen=True)
class ClickColumn:
    """A table holding click ids, and how they are found, aged and erased."""

    model: type[models.Model]
    click_field: str
    order_field: str  # the shop's order id: what ``erase(order_id=...)`` looks for
    written_at: str  # retention counts from it
    done: Q = field(default_factory=Q)  # rows ``purge`` may erase; others are still in use
    delete_row: bool = False  # the row is nothing without its click
    # What an erased row that is not ``done`` becomes (by ``erase`` only).
    undone: dict[str, Any] = field(default_factory=dict)
    # Rows of other tables that belong to one of these (model, the path to it), and
    # may hold copies of its click id: a restatement's answer echoes its event's click.
    related: tuple[tuple[type[models.Model], str], ...] = ()

    @property
    def label(self) -> str:
        return self.model._meta.label


CLICK_COLUMNS: tuple[ClickColumn, ...] = (
    ClickColumn(
        ConversionEvent,
        "click_id",
        "order_id",
        "created_at",
        done=Q(status__in=FINAL_STATUSES),
        undone={
            # Never sent now; a sender holding the row finds its lease gone.
            "status": ConversionEvent.Status.SKIPPED,
            "skip_reason": ERASED_REASON,
            "next_attempt_at": None,
            "leased_until": None,
            "lease_token": None,
        },
        related=((Restatement, "event"),),
    ),
    ClickColumn(OrderClick, "click_id", "order_id", "created_at", delete_row=True),
    # The mirror of Prisjakt's listing. A later sync of an old range lists the
    # click id again; the next purge erases it again.
    ClickColumn(PrisjaktEvent, "click_id", "external_event_id", "first_seen"),
)


def purge(*, now: datetime | None = None, batch_size: int = PURGE_BATCH) -> dict[str, int]:
    """Erase the click ids older than ``RETENTION`` from rows done with; counts per table.

    Rows are taken ``batch_size`` at a time in key order, each batch in a
    transaction of its own, so a large first purge neither holds long locks
    nor reads the table more than once.
    """
    cutoff = times.as_django((now or times.now()) - pjpixel_settings.RETENTION)
    counts: dict[str, int] = {}
    for column in CLICK_COLUMNS:
        aged = column.done & Q(**{f"{column.written_at}__lt": cutoff})
        counts[column.label] = _erase_where(column, aged, batch_size, settle=False)
    return counts


def erase(
    *, order_id: str | None = None, click_id: str | None = None, everywhere: bool = False
) -> dict[str, int]:
    """Erase one order's or one click id's clicks from every table now; counts per table.

    With ``click_id`` the click id leaves every row of every table that holds
    it, its copies too, found through the click columns' indexes (so the cost
    is that click's rows, not the history); with ``order_id`` the order's click
    ids leave the order's rows and the rows of no order (another order
    attributed to the same click keeps it: erase the click id for that).
    ``everywhere`` also reads every row of every table for copies in rows whose
    click column was cleared before (by a version older than this one): a full
    scan, slow on a long history. ``COPIES`` counts, when there were any, the
    rows that held a copy only.
    """
    if (order_id is None) == (click_id is None):
        raise TypeError("erase() takes order_id or click_id, one of them")
    counts: dict[str, int] = {}
    clicks = {click_id} if click_id is not None else set()
    for column in CLICK_COLUMNS:
        field_name, value = (
            (column.order_field, order_id) if click_id is None else (column.click_field, click_id)
        )
        where = Q(**{field_name: value})
        if order_id is not None:
            clicks.update(_clicks_of(column, where))
        counts[column.label] = _erase_where(column, where, PURGE_BATCH, settle=True)
    copies = 0
    for model in app_models():
        rows = model._default_manager.using(router.db_for_write(model)).all()
        order_field = ORDER_FIELDS.get(model._meta.label)
        if order_id is not None and order_field is not None:
            rows = rows.filter(**{order_field: order_id})
        elif click_id is not None and not everywhere and model._meta.label in FOUND_BY_CLICK:
            continue  # its rows holding the click were found by the click column above
        for click in sorted(clicks):
            copies += _erase_copies(rows, click)
    if copies:
        counts[COPIES] = copies
    return counts


def _erase_where(column: ClickColumn, where: Q, batch_size: int, *, settle: bool) -> int:
    """Erase the click ids of the rows ``where`` picks; ``settle``: first settle those not done."""
    manager = column.model._default_manager
    alias = router.db_for_write(column.model)
    # "> ''" rather than "<> ''": a range of the click id's index, so a run reads the rows
    # that still hold a click id, not the years of rows erased before.
    rows = manager.using(alias).filter(where, **{f"{column.click_field}__gt": ""}).order_by("pk")
    erased, after = 0, None
    while True:
        batch = rows if after is None else rows.filter(pk__gt=after)
        keys = list(batch.values_list("pk", flat=True)[:batch_size])
        if not keys:
            return erased
        after = keys[-1]
        with transaction.atomic(using=alias):
            chosen = rows.filter(pk__in=keys)  # still as chosen: rows change meanwhile
            _erase_copies(chosen, F(column.click_field))
            for model, path in column.related:
                related = model._default_manager.using(alias).filter(**{f"{path}__in": keys})
                _erase_copies(related, F(f"{path}__{column.click_field}"))
            if column.delete_row:
                erased += chosen.delete()[1].get(column.label, 0)
                continue
            if settle and column.undone:
                chosen.exclude(column.done).update(**column.undone)
            erased += chosen.update(**{column.click_field: ""})


# The shop's order id in each table that has one: a key, never a copy to erase.
ORDER_FIELDS: dict[str, str] = {
    **{column.label: column.order_field for column in CLICK_COLUMNS},
    Restatement._meta.label: "order_id",
}


CLICK_FIELDS: dict[str, str] = {column.label: column.click_field for column in CLICK_COLUMNS}
# The tables whose rows holding a click are found through a click column's index: the
# click's own rows, and the rows that belong to them (a restatement of its event).
FOUND_BY_CLICK = frozenset(
    [column.label for column in CLICK_COLUMNS]
    + [model._meta.label for column in CLICK_COLUMNS for model, _path in column.related]
)


def app_models() -> list[type[models.Model]]:
    return list(apps.get_app_config("django_pjpixel").get_models())


def copy_columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The text and JSON columns of ``model`` where a copy of a click id may stand: not
    its key, the shop's order id, nor the click column (``CLICK_COLUMNS`` erase it)."""
    keys = {ORDER_FIELDS.get(model._meta.label), CLICK_FIELDS.get(model._meta.label)}
    return [
        column
        for column in model._meta.concrete_fields
        if isinstance(column, (models.CharField, models.TextField, models.JSONField))
        and not column.primary_key
        and column.name not in keys
    ]


def _clicks_of(column: ClickColumn, where: Q) -> list[str]:
    rows = column.model._default_manager.using(router.db_for_write(column.model)).filter(where)
    return [click for click in rows.values_list(column.click_field, flat=True) if click]


def _erase_copies(rows: QuerySet[Any], click: str | F) -> int:
    """Replace ``click`` (a click id, or the path to each row's) by ``[erased]`` in every
    text and JSON column of ``rows`` holding it; how many rows changed."""
    model = rows.model
    columns = copy_columns(model)
    holding, texts = Q(), {}
    for column in columns:
        name = column.name
        if isinstance(column, models.JSONField):
            name = f"pjpixel_text_{column.name}"
            texts[name] = Cast(column.name, models.TextField())
        holding |= Q(**{f"{name}__contains": click})
    own = click if isinstance(click, F) else Value(click)
    found = (
        rows.annotate(pjpixel_click=own, **texts)
        .filter(holding)
        .exclude(pjpixel_click="")
        .values("pk", "pjpixel_click", *(column.name for column in columns))
    )
    changed = 0
    for found_row in found:
        value = str(found_row["pjpixel_click"])
        update = {
            column.name: _without(found_row[column.name], value)
            for column in columns
            if _without(found_row[column.name], value) != found_row[column.name]
        }
        if update:
            changed += (
                rows.model._default_manager.using(rows.db)
                .filter(pk=found_row["pk"])
                .update(**update)
            )
    return changed


def _without(value: Any, click: str) -> Any:
    if isinstance(value, str):
        return value.replace(click, ERASED)
    if isinstance(value, dict):
        return {_without(k, click): _without(v, click) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(v, click) for v in value]
    return value
