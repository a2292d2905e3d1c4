from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_pjpixel.logtext import one_line


class OutboxRow(models.Model):
    """A row sent to Prisjakt through the outbox: its pixel, its lease and attempts, the answer.

    ``outbox`` claims, leases and settles the rows of every model built on it
    (``ConversionEvent``, ``Restatement``). Each declares its own ``status``,
    ``skip_reason`` and ``created_at``: their choices or labels differ.
    """

    # Declared by each model (their choices or labels differ); named here for ``outbox``.
    status: str
    skip_reason: str
    created_at: datetime

    pixel_id = models.CharField(_("pixel id"), max_length=64)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    lease_token = models.UUIDField(_("lease token"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    problem_type = models.CharField(_("problem type"), max_length=200, blank=True)
    problem_title = models.CharField(_("problem title"), max_length=300, blank=True)
    problem_detail = models.TextField(_("problem detail"), blank=True)
    field_errors = models.JSONField(_("field errors"), default=dict, blank=True)
    request_id = models.CharField(_("request id"), max_length=100, blank=True)
    remote_event_id = models.CharField(_("Prisjakt event id"), max_length=64, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def field_error(self) -> str:
        """The first of ``field_errors`` in one line, ``field: message (value: …)``; "" if none."""
        errors = self.field_errors if isinstance(self.field_errors, dict) else {}
        for name, error in errors.items():
            detail = error if isinstance(error, dict) else {"message": error}
            message, value = detail.get("message"), detail.get("value")
            text = f"{name}: {message}" if message not in (None, "") else str(name)
            return one_line(text if value in (None, "") else f"{text} (value: {value})")
        return ""


class ConversionEvent(OutboxRow):
    """One purchase to report to Prisjakt: the outbox row and the ledger of its fate.

    Written in the order's own transaction; a row is delivered at most once per
    (pixel, order, event name) thanks to the unique constraint and the API's
    409 on a repeated ``external_event_id``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DUPLICATE = "duplicate", _("Duplicate")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")
        DEAD = "dead", _("Gave up")

    order_id = models.CharField(
        _("order id"), max_length=100, help_text=_("Sent as external_event_id.")
    )
    event_name = models.CharField(_("event name"), max_length=32, default="purchase")
    event_time = models.DateTimeField(_("event time"))
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2)
    # data.amount as sent, rounded once from the shop's own value when the purchase
    # was recorded: the 2-decimal amount above is for display, and rounding it
    # again would round twice (1234.495 -> 1234.50 -> 1235). None: an older row.
    api_amount = models.BigIntegerField(_("amount sent"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    number_of_items = models.PositiveIntegerField(_("number of items"))
    click_id = models.CharField(_("click id"), max_length=128, blank=True)
    click_captured_at = models.DateTimeField(_("click captured at"), null=True, blank=True)

    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    skip_reason = models.CharField(_("skip reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # The values the purchase counts at now, after a refund or cancellation: the last
    # restatement Prisjakt accepted, or one taken before the event was sent. Null: never
    # restated. Read them through ``current_*`` (or ``CURRENT_API_AMOUNT`` in a query).
    restated_amount = models.DecimalField(
        _("restated amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    restated_api_amount = models.BigIntegerField(_("restated amount sent"), null=True, blank=True)
    restated_number_of_items = models.PositiveIntegerField(
        _("restated number of items"), null=True, blank=True
    )
    restated_currency = models.CharField(_("restated currency"), max_length=3, blank=True)
    restated_at = models.DateTimeField(_("restated at"), null=True, blank=True)
    # The latest report of this order id whose purchase differs from the recorded one (an
    # order id used again): its values, never sent (``conflicts``). Null: none.
    conflict = models.JSONField(_("conflicting report"), null=True, blank=True)
    conflict_at = models.DateTimeField(_("conflicting report at"), null=True, blank=True)

    class Meta:
        verbose_name = _("conversion event")
        verbose_name_plural = _("conversion events")
        ordering = ("-created_at", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=("pixel_id", "order_id", "event_name"), name="pjpixel_unique_event"
            ),
        ]
        indexes = [
            # "What is due": pending rows by next attempt, leased rows by lease end.
            models.Index(fields=("status", "next_attempt_at"), name="pjpixel_due"),
            models.Index(fields=("status", "leased_until"), name="pjpixel_leases"),
            models.Index(fields=("request_id",), name="pjpixel_request_id"),
            # History at scale (docs/explanation/scale.md): the admin's list in its
            # ordering, unfiltered and by status or pixel; exact search by order id;
            # erasure by click id; the health summary's recent failures and last send;
            # reconciliation and the range totals: one pixel's purchases in a time range.
            models.Index(fields=("created_at", "id"), name="pjpixel_created"),
            models.Index(fields=("status", "created_at", "id"), name="pjpixel_status_created"),
            models.Index(fields=("pixel_id", "created_at", "id"), name="pjpixel_pixel_created"),
            models.Index(fields=("order_id",), name="pjpixel_order_id"),
            models.Index(fields=("click_id",), name="pjpixel_click_id"),
            models.Index(fields=("status", "updated_at"), name="pjpixel_status_updated"),
            models.Index(fields=("status", "sent_at"), name="pjpixel_status_sent"),
            models.Index(fields=("pixel_id", "event_time"), name="pjpixel_event_time"),
            # The conflict filter and the health summary's conflicts of the last 24 hours.
            models.Index(fields=("conflict_at",), name="pjpixel_conflict_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.order_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def reason(self) -> str:
        """Why the row is where it is, in one line: a skipped row's reason; else the last
        answer (its HTTP status, its problem's title) and the first field error; "" if none."""
        if self.status == "skipped" and self.skip_reason:
            return one_line(self.skip_reason)
        code = "" if self.last_status_code is None else str(self.last_status_code)
        answer = " ".join(part for part in (code, self.problem_title) if part)
        return one_line(": ".join(part for part in (answer, self.field_error) if part))

    @property
    def is_restated(self) -> bool:
        return self.restated_at is not None

    @property
    def current_amount(self) -> Decimal:
        return self.restated_amount if self.restated_amount is not None else self.amount

    @property
    def current_api_amount(self) -> int | None:
        """``data.amount`` as Prisjakt has it now (None: an older row, sent from ``amount``)."""
        restated = self.restated_api_amount
        return restated if restated is not None else self.api_amount

    @property
    def current_number_of_items(self) -> int:
        restated = self.restated_number_of_items
        return restated if restated is not None else self.number_of_items

    @property
    def current_currency(self) -> str:
        return self.restated_currency or self.currency


FINAL_STATUSES: frozenset[str] = frozenset({"sent", "duplicate", "failed", "skipped", "dead"})
# The problem title of a row recorded for a purchase the shop reported with a bad value.
INVALID_PURCHASE = "Invalid purchase"
# Such a row, before any attempt: the bad value's field holds a placeholder (an
# amount of 0, an escaped order id), so it is never sent as it is; a new report
# of the order with valid values replaces it.
REPORTED_INVALID = models.Q(status="failed", problem_title=INVALID_PURCHASE, attempts=0)


# A purchase's ``data.amount`` as Prisjakt has it now, in a query (``current_api_amount``).
CURRENT_API_AMOUNT = Coalesce("restated_api_amount", "api_amount")
# Its currency now, in a query (``current_currency``): "" when a restatement kept it.
CURRENT_CURRENCY = Coalesce(NullIf("restated_currency", Value("")), "currency")


class Restatement(OutboxRow):
    """A refund or cancellation of a reported purchase: one change, in the ledger and the outbox.

    Sent to Prisjakt as the many-events ``PATCH`` of the event (its ``external_event_id``,
    ``event_time`` and click, the new ``data``), claimed, leased and retried as events are;
    the outcome fields mean what they mean on ``ConversionEvent``.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        DEAD = "dead", _("Gave up")
        APPLIED = "applied", _("Taken before sending")
        SUPERSEDED = "superseded", _("Superseded")
        UNSENDABLE = "unsendable", _("Not sendable")

    event = models.ForeignKey(
        ConversionEvent,
        verbose_name=_("conversion event"),
        related_name="restatements",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
    )
    order_id = models.CharField(_("order id"), max_length=100)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    old_amount = models.DecimalField(
        _("old amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    old_api_amount = models.BigIntegerField(_("old amount sent"), null=True, blank=True)
    old_number_of_items = models.PositiveIntegerField(
        _("old number of items"), null=True, blank=True
    )
    old_currency = models.CharField(_("old currency"), max_length=3, blank=True)
    amount = models.DecimalField(_("new amount"), max_digits=14, decimal_places=2)
    api_amount = models.BigIntegerField(_("new amount sent"), null=True, blank=True)
    number_of_items = models.PositiveIntegerField(_("new number of items"))
    currency = models.CharField(_("new currency"), max_length=3)

    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    skip_reason = models.CharField(_("why not sent"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("restated at"), default=timezone.now)

    class Meta:
        verbose_name = _("restatement")
        verbose_name_plural = _("restatements")
        ordering = ("-created_at", "-pk")
        indexes = [
            models.Index(fields=("status", "next_attempt_at"), name="pjpixel_restatement_due"),
            models.Index(fields=("status", "leased_until"), name="pjpixel_restatement_leases"),
            models.Index(fields=("created_at", "id"), name="pjpixel_restatement_created"),
            models.Index(fields=("status", "created_at", "id"), name="pjpixel_restatement_status"),
            models.Index(fields=("pixel_id", "created_at", "id"), name="pjpixel_restatement_pixel"),
            models.Index(fields=("order_id",), name="pjpixel_restatement_order"),
            models.Index(fields=("request_id",), name="pjpixel_restatement_request"),
        ]

    def __str__(self) -> str:
        return f"restatement of {self.order_id} ({self.status})"


# The problem title of a restatement the shop reported with a bad value (a ``failed`` row).
INVALID_RESTATEMENT = "Invalid restatement"


class OrderClick(models.Model):
    """A click kept for an order paid later without the visitor's session (webhooks).

    One per (order, market): ``pixel_id`` is the market's pixel ``attach_click``
    was given, "" for a click attached naming no market (every click without
    ``PIXELS``).
    """

    order_id = models.CharField(_("order id"), max_length=100)
    pixel_id = models.CharField(_("pixel id"), max_length=64, blank=True, default="")
    click_id = models.CharField(_("click id"), max_length=128)
    captured_at = models.DateTimeField(_("click captured at"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("click attached to an order")
        verbose_name_plural = _("clicks attached to orders")
        constraints = [
            models.UniqueConstraint(fields=("order_id", "pixel_id"), name="pjpixel_order_click"),
        ]
        indexes = [models.Index(fields=("click_id",), name="pjpixel_order_click_id")]

    def __str__(self) -> str:
        return f"{self.order_id} ← {self.click_id[:12]}…"


class PrisjaktEvent(models.Model):
    """An event as Prisjakt's listing showed it: the shop's mirror of Prisjakt's record.

    Filled by ``sync`` from ``GET /pixels/{pixel}/events`` [seed]; the key is
    Prisjakt's own event id (a UUID [docs]). ``amount`` is as listed, in the
    API's units (``AMOUNT_UNITS``: whole units by default [open]); fields the
    listing left out or gave in the wrong type are empty, and ``data`` keeps
    the listed object whole. ``first_seen`` is the sync that first listed it,
    ``last_seen`` the latest; a complete sync of a range removes the events of
    that range it no longer lists.
    """

    id = models.CharField(_("Prisjakt event id"), max_length=64, primary_key=True)
    pixel_id = models.CharField(_("pixel id"), max_length=64)
    click_id = models.CharField(_("click id"), max_length=128, blank=True, db_index=True)
    external_event_id = models.CharField(
        _("external event id"), max_length=100, blank=True, help_text=_("The shop's order id.")
    )
    event_name = models.CharField(_("event name"), max_length=32, blank=True)
    event_time = models.DateTimeField(_("event time"), null=True, blank=True)
    amount = models.DecimalField(
        _("amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    number_of_items = models.BigIntegerField(_("number of items"), null=True, blank=True)
    data = models.JSONField(_("event as listed"), default=dict, blank=True)
    first_seen = models.DateTimeField(_("first seen"))
    last_seen = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("event at Prisjakt")
        verbose_name_plural = _("events at Prisjakt")
        ordering = ("-event_time", "id")
        indexes = [
            # Reconciliation and the range totals: one pixel's events in a time range,
            # joined to the ledger by external event id.
            models.Index(fields=("pixel_id", "event_time"), name="pjpixel_mirror_time"),
            models.Index(fields=("pixel_id", "external_event_id"), name="pjpixel_mirror_external"),
            # The admin's list in its ordering, and exact search by order id.
            models.Index(fields=("-event_time", "id"), name="pjpixel_mirror_recent"),
            models.Index(fields=("external_event_id",), name="pjpixel_mirror_order"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.external_event_id or self.id}"


class PrisjaktSync(models.Model):
    """One run of ``sync``: the range it listed, when, and whether it saw all of it.

    ``complete`` is False when the run stopped early (the page cap, an error);
    only a complete run vouches that an event missing from the mirror is
    missing at Prisjakt.
    """

    pixel_id = models.CharField(_("pixel id"), max_length=64)
    start = models.DateTimeField(_("from"))
    end = models.DateTimeField(_("to"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    complete = models.BooleanField(_("complete"), default=False)
    pages = models.PositiveIntegerField(_("pages"), default=0)
    events = models.PositiveIntegerField(_("events"), default=0)
    error = models.CharField(_("error"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("sync of Prisjakt's events")
        verbose_name_plural = _("syncs of Prisjakt's events")
        ordering = ("-started_at", "-pk")
        indexes = [
            models.Index(fields=("pixel_id", "complete", "started_at"), name="pjpixel_sync_last"),
        ]

    def __str__(self) -> str:
        return f"{self.pixel_id} {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({self.started_at})"
