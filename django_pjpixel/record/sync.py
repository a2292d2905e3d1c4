"""The mirror of Prisjakt's record: ``sync_events`` lists a pixel's events into ``PrisjaktEvent``.

What the API gives and how it is read:

- ``GET /pixels/{pixel}/events?from=&to=&page=`` lists a range, newest first,
  a page at a time, the next page named by the ``Link`` header's
  ``rel="next"`` [seed, docs]; ``client.list_events`` fetches one page. A
  range longer than 60 days is refused [docs], so a longer one is listed as
  consecutive ranges of at most 60 days.
- "The data is not stable": an event may appear again on the next page
  [docs]. Events are de-duplicated by Prisjakt's ``id`` within a page and
  against the page before it; a repeat further away is written again under
  the same key, which changes nothing. No page is fetched twice: the walk
  ends at the last page, at a ``next`` link to a page already read, or after
  ``MAX_PAGES`` pages of one range.
- Each page is upserted in one statement (``bulk_create`` with
  ``update_conflicts``: PostgreSQL, SQLite, MariaDB/MySQL) as it arrives, so
  memory holds one page whatever the count.

Every run is recorded as a ``PrisjaktSync``. A run that read every page of
its range is ``complete``: it then removes the mirror's events of that range
that Prisjakt no longer lists (their ``last_seen`` is older than the run),
so the mirror is what Prisjakt listed at its last complete sync, and only a
complete run vouches for an event's absence (``covering_sync``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connections, router
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_pjpixel import markets
from django_pjpixel.api.client import MAX_LIST_RANGE, PrisjaktClient, get_client
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
)
from django_pjpixel.models import PrisjaktEvent, PrisjaktSync

logger = logging.getLogger("django_pjpixel.sync")

# Mirror fields an upsert rewrites: all but the key and ``first_seen``.
UPDATED_FIELDS = tuple(
    field.name
    for field in PrisjaktEvent._meta.concrete_fields
    if field.name not in ("id", "first_seen")
)
MAX_AMOUNT = Decimal("1e12")  # what the mirror's amount column holds (14 digits, 2 decimals)


@dataclass(frozen=True)
class Progress:
    """Where a run is, after each page: for a progress bar.

    ``span`` is the 1-based range of ``spans`` (ranges of at most 60 days);
    ``page`` the page just read of that range and ``last`` its last page
    (``None`` where the ``Link`` header does not say); ``pages`` and
    ``events`` count the whole run so far (``events``: listed, repeats of the
    page before left out).
    """

    span: int
    spans: int
    page: int
    last: int | None
    pages: int
    events: int


OnPage = Callable[[Progress], object]


def spans(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``start`` to ``end`` as consecutive ranges of at most 60 days (in UTC)."""
    if end < start:
        raise InvalidInput("to", "must not be before from")
    start, end = start.astimezone(dt_timezone.utc), end.astimezone(dt_timezone.utc)
    result = []
    while True:
        stop = min(start + MAX_LIST_RANGE, end)
        result.append((start, stop))
        if stop >= end:
            return result
        start = stop


def sync_recent(
    days: int | None = None, *, on_page: OnPage | None = None, pixel_id: str | None = None
) -> PrisjaktSync:
    """``sync_events`` over the last ``days`` (default ``PJPIXEL["SYNC_DAYS"]``) up to now,
    for ``pixel_id`` (a market's; default the first market's, or the single pixel)."""
    now = timezone.now()
    start = now - timedelta(days=days or pjpixel_settings.SYNC_DAYS)
    return sync_events(start, now, on_page=on_page, client=get_client(pixel_id), now=now)


def sync_every_market(days: int | None = None) -> dict[str, PrisjaktSync | Exception]:
    """``sync_recent`` for each market's pixel with its own client: pixel id → its run,
    or what stopped it (one market refused does not stop the others)."""
    runs: dict[str, PrisjaktSync | Exception] = {}
    for pixel_id in [market.pixel_id for market in markets.all_markets()]:  # set or not
        try:
            runs[pixel_id] = sync_recent(days, pixel_id=pixel_id)
        except (PrisjaktAPIError, PjpixelConfigurationError) as err:
            logger.warning("pjpixel: the sync of pixel %s failed: %s", pixel_id, err)
            runs[pixel_id] = err
    return runs


def sync_events(
    start: datetime,
    end: datetime,
    *,
    on_page: OnPage | None = None,
    client: PrisjaktClient | None = None,
    now: datetime | None = None,
) -> PrisjaktSync:
    """List the pixel's events from ``start`` to ``end`` into the mirror; the run's record.

    Raises what listing raises (``PrisjaktAPIError``, ``PjpixelConfigurationError``,
    ``InvalidInput``), after recording the run as incomplete with the error;
    what was stored before the error stays.
    """
    client = client or get_client()
    ranges = spans(start, end)
    run: PrisjaktSync = PrisjaktSync.objects.create(
        pixel_id=client.pixel_id, start=start, end=end, started_at=now or timezone.now()
    )
    walk = _Walk(run, len(ranges), on_page)
    complete = True
    try:
        for index, span in enumerate(ranges):  # every range, even after one stopped early
            complete = walk.range(client, index, *span) and complete
    except Exception as err:
        _finish(run, walk, complete=False, error=f"{type(err).__name__}: {err}")
        raise
    removed = 0
    if complete:
        removed, _ = PrisjaktEvent.objects.filter(
            pixel_id=run.pixel_id,
            event_time__gte=start,
            event_time__lte=end,
            last_seen__lt=run.started_at,
        ).delete()
    _finish(run, walk, complete=complete, error="" if complete else walk.stopped)
    logger.info(
        "pjpixel: synced %d events of Prisjakt's in %d pages (%s); %d no longer listed",
        run.events,
        run.pages,
        "complete" if complete else walk.stopped,
        removed,
        extra={"pjpixel_sync": run.pk},
    )
    return run


class _Walk:
    """One run's pages: fetched, de-duplicated, upserted, counted, reported."""

    def __init__(self, run: PrisjaktSync, spans: int, on_page: OnPage | None) -> None:
        self.run = run
        self.spans = spans
        self.on_page = on_page
        self.pages = 0
        self.listed = 0
        self.stopped = ""

    def range(self, client: PrisjaktClient, index: int, start: datetime, end: datetime) -> bool:
        """Read every page of one range; False when the walk had to stop early."""
        number, read = 1, {1}
        previous: set[str] = set()
        while True:
            page = client.list_events(start=start, end=end, page=number)
            self.pages += 1
            previous = self.store(page.events, previous)
            if self.on_page is not None:
                self.on_page(
                    Progress(index + 1, self.spans, number, page.last, self.pages, self.listed)
                )
            if page.next is None:
                return True
            if page.next in read:
                self.stopped = f"the next link of page {number} led back to page {page.next}"
            elif len(read) >= pjpixel_settings.MAX_PAGES:
                self.stopped = f"stopped at the page cap (MAX_PAGES = {len(read)})"
            if self.stopped:
                logger.warning("pjpixel: the sync of Prisjakt's events %s", self.stopped)
                return False
            number = page.next
            read.add(number)

    def store(self, events: list[dict[str, Any]], previous: set[str]) -> set[str]:
        """Upsert one page's events (the page before's repeats left out); the page's ids."""
        rows: dict[str, PrisjaktEvent] = {}
        for event in events:
            row = mirror_row(event, self.run.pixel_id, self.run.started_at)
            if row is not None and row.id not in previous:
                rows[row.id] = row
        upsert(list(rows.values()))
        self.listed += len(rows)
        return set(rows)


def _finish(run: PrisjaktSync, walk: _Walk, *, complete: bool, error: str) -> None:
    run.finished_at = timezone.now()
    run.complete = complete
    run.pages = walk.pages
    run.error = error[: _length(PrisjaktSync, "error")]
    run.events = PrisjaktEvent.objects.filter(
        pixel_id=run.pixel_id, last_seen=run.started_at
    ).count()
    run.save(update_fields=["finished_at", "complete", "pages", "error", "events"])


def upsert(rows: list[PrisjaktEvent]) -> None:
    """Insert the rows, or update those whose Prisjakt id is already mirrored: one statement."""
    if not rows:
        return
    features = connections[router.db_for_write(PrisjaktEvent)].features
    PrisjaktEvent.objects.bulk_create(
        rows,
        update_conflicts=True,
        # MariaDB/MySQL upsert on any unique key and refuse to be told which.
        unique_fields=["id"] if features.supports_update_conflicts_with_target else None,
        update_fields=list(UPDATED_FIELDS),
    )


def mirror_row(event: dict[str, Any], pixel_id: str, seen: datetime) -> PrisjaktEvent | None:
    """The mirror's row for one listed event; None for an event without a usable ``id``.

    A listed event is ``{"id", "click_id", "external_event_id", "event_name",
    "event_time", "data": {"amount", "currency", "number_of_items"}}`` [docs];
    a field missing or of the wrong type is left empty, a string too long for
    its column is cut.
    """
    event_id = event.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= _length(PrisjaktEvent, "id"):
        logger.warning("pjpixel: ignored a listed event without a usable id")
        return None
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    return PrisjaktEvent(
        id=event_id,
        pixel_id=pixel_id,
        click_id=_text(event.get("click_id"), "click_id"),
        external_event_id=_text(event.get("external_event_id"), "external_event_id"),
        event_name=_text(event.get("event_name"), "event_name"),
        event_time=_time(event.get("event_time")),
        amount=_amount(data.get("amount")),
        currency=_text(data.get("currency"), "currency").upper(),
        number_of_items=_whole(data.get("number_of_items")),
        data=data,
        first_seen=seen,
        last_seen=seen,
    )


def last_sync(pixel_id: str | None = None) -> PrisjaktSync | None:
    """The latest run for the pixel that read its whole range."""
    run: PrisjaktSync | None = (
        PrisjaktSync.objects.filter(
            pixel_id=pixel_id or markets.market_of().pixel_id, complete=True
        )
        .order_by("-started_at")
        .first()
    )
    return run


def covering_sync(
    start: datetime, end: datetime, pixel_id: str | None = None
) -> PrisjaktSync | None:
    """The latest complete run whose range holds ``start`` to ``end``, or as much of it
    as had happened when the run started (a run up to "now" covers a range ending later)."""
    run: PrisjaktSync | None = (
        PrisjaktSync.objects.filter(
            Q(end__gte=end) | Q(end__gte=F("started_at")),
            pixel_id=pixel_id or markets.market_of().pixel_id,
            complete=True,
            start__lte=start,
        )
        .order_by("-started_at")
        .first()
    )
    return run


def _length(model: type[PrisjaktEvent | PrisjaktSync], name: str) -> int:
    return int(getattr(model._meta.get_field(name), "max_length", 0) or 0)


def _text(value: Any, name: str) -> str:
    return value[: _length(PrisjaktEvent, name)] if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    try:
        when = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if when is not None and timezone.is_naive(when):
        when = when.replace(tzinfo=dt_timezone.utc)  # the API's times are UTC [seed]
    return when


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        return None
    return amount.quantize(Decimal("0.01"))


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        return None
    return value
