"""The backlog: ``deliver_due`` sends what is due in batches, paced under the rate limit.

One many-events ``PATCH`` per claimed chunk of ``BATCH_SIZE`` rows
(``BATCH_SIZE = 1``: one ``POST`` per row). Prisjakt updates an event whose
``external_event_id`` it already has [docs], so a resent batch (its answer
was lost, its sender died) counts each event once. A refused batch (400) is
sent again one ``POST`` per row, so each row gets its own outcome;
credentials that may not ``PATCH`` (403) get ``POST``s for the rest of the
run. A transient failure returns the chunk to ``pending`` on one schedule.
The restatements that are due (``restating``) follow the purchases, in
``PATCH`` batches of their own (a refused batch: one ``PATCH`` per row).
The run keeps ``RATE_LIMIT_RESERVE`` requests of the rate-limit window
unused (for the checkouts' own ``POST``s): at the reserve it waits for the
reset when that is at most ``RATE_LIMIT_MAX_WAIT`` seconds away, else it
stops and leaves what is due for the reset.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, overload

from django.db import router, transaction
from django.db.models import Q
from django.utils import timezone

from django_pjpixel.api.auth import BATCH_ROLES
from django_pjpixel.api.client import ApiResult
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput, PrisjaktAPIError, RateLimit
from django_pjpixel.markets import Lane, lanes
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending import restating
from django_pjpixel.sending.delivery import patch, post, prepare, record_chunk, record_outcome
from django_pjpixel.sending.outbox import (
    Outcome,
    Row,
    SendResult,
    claim_due,
    is_transient,
    leased,
    release,
)
from django_pjpixel.signals import Cancel

logger = logging.getLogger("django_pjpixel.backlog")

Status = ConversionEvent.Status
# Answers to a batch that a POST of each event would get as well: recorded for every row.
BATCH_ANSWERS_FOR_ALL = frozenset({401, 404})
# Answers meaning these credentials (or this API) may not use the many-events PATCH.
PATCH_NOT_ALLOWED = frozenset({403, 405})
# Batches failing transiently in a row before a run leaves the rest to a later one.
MAX_FAILED_BATCHES = 2


@dataclass(frozen=True)
class _Rows(Generic[Row]):
    """What a run sends, and how: purchases (``ConversionEvent``), or restatements."""

    counted_as: str  # the prefix of their counts
    claim: Callable[[int, datetime, Q | None], list[Row]]  # (limit, cutoff, the lane's rows)
    pixel_of: Callable[[Row], str]
    prepare: Callable[[Row], dict[str, Any] | Cancel | InvalidInput]
    send_one: Callable[[dict[str, Any], str], SendResult]  # (payload, pixel id)
    record_one: Callable[[Row, SendResult], Outcome]
    record_chunk: Callable[[list[Row], SendResult], list[Outcome]]
    answers_for_all: frozenset[int]  # batch answers recorded for every row


PURCHASES = _Rows[ConversionEvent](
    "",
    lambda limit, cutoff, only: claim_due(limit, cutoff=cutoff, only=only),
    lambda event: event.pixel_id,
    prepare,
    lambda payload, pixel_id: post(payload, pixel_id),  # looked up when called, as patch is
    record_outcome,
    record_chunk,
    BATCH_ANSWERS_FOR_ALL,
)
# Only a PATCH restates an event: credentials that may not PATCH fail every row.
RESTATEMENTS = _Rows[Restatement](
    "restatement ",
    lambda limit, cutoff, only: restating.claim(limit, cutoff, _of_events(only)),
    lambda row: row.event.pixel_id if row.event is not None else "",
    restating.prepare,
    restating.patch_one,
    restating.record_one,
    restating.record_chunk,
    BATCH_ANSWERS_FOR_ALL | PATCH_NOT_ALLOWED,
)


def deliver_due(limit: int | None = None) -> dict[str, int]:
    """Send every row that is due, up to ``limit`` (``DELIVER_DUE_LIMIT``); counts per outcome.

    Purchases first, then restatements (counted as ``"restatement <status>"``).

    Rows are claimed a chunk at a time (memory stays flat however large the
    backlog), so concurrent runs (and tasks) share the work without sending a
    row twice. With ``BATCH_SIZE`` > 1 a chunk is ``BATCH_SIZE`` rows sent in
    one ``PATCH``; else a chunk is what one lease covers, one ``POST`` per row.
    A row that fails again in this run waits for its next attempt time; it is
    not retried in a loop. The run keeps its pace under the rate limit (see
    the module docstring); while a stop for the rate limit lasts, a run in the
    same process sends nothing. With several markets (``PJPIXEL["PIXELS"]``)
    each market's rows are a run of their own (``markets.lanes``): its pixel
    only, its client, its rate limit, and ``limit`` rows at most.
    """
    limit = pjpixel_settings.DELIVER_DUE_LIMIT if limit is None else limit
    started = timezone.now()
    counts: Counter[str] = Counter()
    for lane in lanes():
        counts.update(_deliver_lane(lane, limit, started))
    totals = dict(counts)
    if totals:
        logger.info("pjpixel: deliver_due %s", totals, extra={"counts": totals})
    return totals


def _deliver_lane(lane: Lane, limit: int, started: datetime) -> Counter[str]:
    conf = pjpixel_settings
    paused = _paused_until(started, lane.pause_key)
    if paused is not None:
        logger.info(
            "pjpixel: deliver_due waits for the rate limit to reset at %s",
            paused.isoformat(),
            extra={"retry_at": paused.isoformat()},
        )
        return Counter()
    run = _Run(batches=conf.BATCH_SIZE > 1, lane=lane)
    done = _drain(run, PURCHASES, limit, started)
    _drain(run, RESTATEMENTS, limit - done, started)
    if run.resume_at is not None:
        _defer_due(run.resume_at, run.rate_limit, lane)
    return run.counts


def _drain(run: _Run, rows: _Rows[Row], limit: int, cutoff: datetime) -> int:
    """Send ``rows`` due by ``cutoff``, a chunk at a time, up to ``limit``; how many it took."""
    run.batches = pjpixel_settings.BATCH_SIZE > 1
    done = 0
    while done < limit and not run.stopped:
        size = pjpixel_settings.BATCH_SIZE if run.batches else chunk_size()
        chunk = rows.claim(min(size, limit - done), cutoff, run.lane.rows)
        if not chunk:
            break
        _send_chunk(run, rows, chunk)
        done += len(chunk)
    return done


@overload
def _of_events(rows: Q) -> Q: ...
@overload
def _of_events(rows: None) -> None: ...
def _of_events(rows: Q | None) -> Q | None:
    """A lane's condition on events (``pixel_id=...``) as one on their restatements."""
    if rows is None:
        return None
    prefixed = Q()
    prefixed.connector, prefixed.negated = rows.connector, rows.negated
    prefixed.children = [_event_lookup(child) for child in rows.children]
    return prefixed


def _event_lookup(child: Any) -> Any:
    if isinstance(child, Q):
        return _of_events(child)
    name, value = child
    return (f"event__{name}", value)


def chunk_size() -> int:
    """How many rows one claim takes for single sends: what one lease covers at worst."""
    conf = pjpixel_settings
    return max(1, min(conf.BATCH_SIZE, int(conf.LEASE_SECONDS // _worst_request())))


def _worst_request() -> float:
    return pjpixel_settings.REQUEST_DEADLINE or 1.0


# -- batches -------------------------------------------------------------------


@dataclass
class _Run:
    """The state of one ``deliver_due`` run."""

    batches: bool  # False once the credentials may not PATCH (purchases: one POST each)
    lane: Lane
    counts: Counter[str] = field(default_factory=Counter)
    failed_batches: int = 0  # transient batch failures in a row
    stopped: bool = False
    resume_at: datetime | None = None  # the rate limit: nothing more before then
    rate_limit: RateLimit | None = None  # the last one that made the run stop

    def count(self, outcomes: Iterable[Outcome], prefix: str = "") -> None:
        self.counts.update(prefix + outcome.status for outcome in outcomes)


class _Lease(Generic[Row]):
    """A claimed chunk's lease, renewed before a request that could outlast it."""

    def __init__(self, chunk: list[Row]) -> None:
        self.model: type[Row] = type(chunk[0])
        self.token = chunk[0].lease_token
        self.pks = [event.pk for event in chunk]
        ends = [event.leased_until for event in chunk if event.leased_until is not None]
        self.until = min(ends) if ends else timezone.now()

    def keep(self) -> None:
        now = timezone.now()
        if now + timedelta(seconds=_worst_request()) <= self.until:
            return
        self.until = now + timedelta(seconds=pjpixel_settings.LEASE_SECONDS)
        with transaction.atomic(using=router.db_for_write(self.model)):
            ours = leased(self.model, self.pks, self.token)
            self.model._default_manager.filter(pk__in=ours).update(leased_until=self.until)


def _send_chunk(run: _Run, rows: _Rows[Row], chunk: list[Row]) -> None:
    """Prepare each row (``pre_send``), then send the rest in one batch or one by one."""
    lease = _Lease(chunk)
    ready: list[tuple[Row, dict[str, Any]]] = []
    for event in chunk:
        prepared = rows.prepare(event)
        if isinstance(prepared, dict):
            ready.append((event, prepared))
        else:
            run.count([rows.record_one(event, prepared)], rows.counted_as)
    if not ready:
        return
    if not run.batches:
        _send_singly(run, rows, ready, lease)
        return
    lease.keep()
    result = patch([payload for _, payload in ready], rows.pixel_of(ready[0][0]))
    events = [event for event, _ in ready]
    status = result.status if isinstance(result, (ApiResult, PrisjaktAPIError)) else None
    if is_transient(result):
        run.count(rows.record_chunk(events, result), rows.counted_as)
        run.failed_batches += 1
        if run.failed_batches >= MAX_FAILED_BATCHES:
            logger.warning(
                "pjpixel: %d batches in a row failed (%s); deliver_due leaves the rest for "
                "a later run",
                run.failed_batches,
                result,
            )
            run.stopped = True
        _pace(run, result)
        return
    run.failed_batches = 0
    if status is not None and (200 <= status < 300 or status in rows.answers_for_all):
        run.count(rows.record_chunk(events, result), rows.counted_as)
        _pace(run, result)
        return
    if status in PATCH_NOT_ALLOWED:
        run.batches = False
        logger.warning(
            "pjpixel: Prisjakt refused the many-events PATCH for client id %r (%s); "
            "this deliver_due run sends one POST per event instead. Give the client the "
            "%s role to send in batches, or set BATCH_SIZE to 1.",
            run.lane.client_id,
            result,
            " or ".join(BATCH_ROLES),
        )
    else:
        logger.info(
            "pjpixel: a batch of %d events was refused (%s); sending them one by one",
            len(ready),
            result,
        )
    _pace(run, result)
    _send_singly(run, rows, ready, lease)


def _send_singly(
    run: _Run, rows: _Rows[Row], ready: list[tuple[Row, dict[str, Any]]], lease: _Lease[Row]
) -> None:
    for index, (event, payload) in enumerate(ready):
        if run.stopped:
            release([event for event, _ in ready[index:]], run.resume_at)
            return
        lease.keep()
        result = rows.send_one(payload, rows.pixel_of(event))
        run.count([rows.record_one(event, result)], rows.counted_as)
        _pace(run, result)


# -- pace ----------------------------------------------------------------------

# (API_URL, CLIENT_ID) -> until when this process's deliver_due runs send nothing.
_pauses: dict[tuple[str, str], datetime] = {}
_pauses_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child gets a lock of its own: one another thread held at fork stays held.

    The pauses themselves are kept: they are Prisjakt's rate-limit window for
    these credentials, which the child shares with its parent.
    """
    global _pauses_lock
    _pauses_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _paused_until(now: datetime, key: tuple[str, str]) -> datetime | None:
    with _pauses_lock:
        until = _pauses.get(key)
        if until is not None and until <= now:
            del _pauses[key]
            return None
        return until


def _pace(run: _Run, result: SendResult) -> None:
    """After each answer: at the rate limit's reserve (or on a 429), wait briefly or stop."""
    conf = pjpixel_settings
    rate_limit = result.rate_limit if isinstance(result, (ApiResult, PrisjaktAPIError)) else None
    limited = isinstance(result, PrisjaktAPIError) and result.status == 429
    low = (
        rate_limit is not None
        and rate_limit.remaining is not None
        and rate_limit.remaining <= conf.RATE_LIMIT_RESERVE
    )
    if not (limited or low):
        return
    wait = rate_limit.reset_seconds if rate_limit is not None else None
    if isinstance(result, PrisjaktAPIError) and limited and result.retry_after is not None:
        wait = max(wait or 0.0, result.retry_after)
    if wait is None:  # no reset given: wait as after a transient failure
        wait = conf.RETRY_BASE_DELAY
    wait = min(wait, conf.MAX_AGE.total_seconds())
    if wait <= conf.RATE_LIMIT_MAX_WAIT:
        logger.info("pjpixel: rate limit: waiting %.3f s for its reset", wait)
        time.sleep(wait)
        return
    run.stopped = True
    run.rate_limit = rate_limit
    run.resume_at = timezone.now() + timedelta(seconds=wait)


def _defer_due(until: datetime, rate_limit: RateLimit | None, lane: Lane) -> None:
    """Make what is due wait for the rate limit's reset (rows, and this process's runs)."""
    due = Q(status=Status.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=until)
    )
    events = due if lane.waiting is None else due & lane.waiting
    restated = due if lane.waiting is None else due & _of_events(lane.waiting)
    deferred = ConversionEvent.objects.filter(events).update(next_attempt_at=until)
    deferred += Restatement.objects.filter(restated).update(next_attempt_at=until)
    with _pauses_lock:
        _pauses[lane.pause_key] = until
    logger.warning(
        "pjpixel: rate limit: %s of %s requests left in this window; deliver_due stops and "
        "%d due events wait until %s",
        "?" if rate_limit is None or rate_limit.remaining is None else rate_limit.remaining,
        "?" if rate_limit is None or rate_limit.limit is None else rate_limit.limit,
        deferred,
        until.isoformat(),
        extra={"deferred": deferred, "retry_at": until.isoformat()},
    )
