"""Retention and erasure of click ids: ``purge`` (periodic) and ``erase`` (on request).

The shop and Prisjakt are joint controllers of the click id (GDPR Art. 26),
so the shop keeps it no longer than it needs it. ``purge`` erases, in
batches, the click ids of rows written more than ``PJPIXEL["RETENTION"]``
ago (default 90 days) that are done with: a ``ConversionEvent`` that is final
(sent, duplicate, failed, skipped, gave up) keeps its row, without the click
id; an ``OrderClick``, which is nothing without its click, is deleted.
``erase`` does the same at once, whatever the age, for one order or one
click id; an event not sent yet is then skipped, never sent.

Every table holding a click id is listed once, in ``CLICK_COLUMNS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models, router, transaction
from django.db.models import Q

from django_pjpixel import times
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.models import FINAL_STATUSES, ConversionEvent, OrderClick, PrisjaktEvent

PURGE_BATCH = 1000
ERASED_REASON = "click id erased"


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


def erase(*, order_id: str | None = None, click_id: str | None = None) -> dict[str, int]:
    """Erase one order's or one click id's clicks from every table now; counts per table."""
    if (order_id is None) == (click_id is None):
        raise TypeError("erase() takes order_id or click_id, one of them")
    counts: dict[str, int] = {}
    for column in CLICK_COLUMNS:
        field_name, value = (
            (column.order_field, order_id) if click_id is None else (column.click_field, click_id)
        )
        where = Q(**{field_name: value})
        counts[column.label] = _erase_where(column, where, PURGE_BATCH, settle=True)
    return counts


def _erase_where(column: ClickColumn, where: Q, batch_size: int, *, settle: bool) -> int:
    """Erase the click ids of the rows ``where`` picks; ``settle``: first settle those not done."""
    manager = column.model._default_manager
    alias = router.db_for_write(column.model)
    rows = manager.using(alias).filter(where).exclude(**{column.click_field: ""}).order_by("pk")
    erased, after = 0, None
    while True:
        batch = rows if after is None else rows.filter(pk__gt=after)
        keys = list(batch.values_list("pk", flat=True)[:batch_size])
        if not keys:
            return erased
        after = keys[-1]
        with transaction.atomic(using=alias):
            chosen = rows.filter(pk__in=keys)  # still as chosen: rows change meanwhile
            if column.delete_row:
                erased += chosen.delete()[1].get(column.label, 0)
                continue
            if settle and column.undone:
                chosen.exclude(column.done).update(**column.undone)
            erased += chosen.update(**{column.click_field: ""})
