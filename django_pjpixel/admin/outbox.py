"""The outbox in the admin, read-only, and the "Prisjakt events" view beside it.

Rows are never edited by hand: the change permission only unlocks the
"send now" and "retry" actions, which hand rows back to delivery. An
event's restatements (``admin_restatements``) show on its page.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_pjpixel import markets
from django_pjpixel.admin import events, mirror
from django_pjpixel.admin.filters import ClickFilter, ConflictFilter, MarketColumn, PixelFilter
from django_pjpixel.admin.history import (
    EXACT_UP_TO,
    CurrencyFilter,
    HistoryAdmin,
    count_at_most,
    estimate,
)
from django_pjpixel.admin.restatements import (
    RESTATE_PERMISSION,
    RestatedFilter,
    RestatementInline,
    restate_view,
)
from django_pjpixel.health import delivery_health
from django_pjpixel.ledger import conflicts, publisher
from django_pjpixel.ledger.attaching import release_held
from django_pjpixel.models import REPORTED_INVALID, ConversionEvent

Status = ConversionEvent.Status

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[ConversionEvent]
else:  # ModelAdmin is generic for the type checker only
    ModelAdmin = admin.ModelAdmin

# Badge colours: good, waiting, bad, neutral.
BADGE_COLOURS: dict[str, str] = {
    "pending": "#b7791f",
    "sending": "#2b6cb0",
    "sent": "#2f855a",
    "duplicate": "#2c7a7b",
    "failed": "#c53030",
    "skipped": "#718096",
    "dead": "#742a2a",
}
NEUTRAL = "#718096"
SEND_NOW_STATUSES: tuple[str, ...] = ("pending",)
RETRY_STATUSES: tuple[str, ...] = ("failed", "dead")
CLICK_ID_SHOWN = 12


def deliver_now(pk: int) -> None:
    """Queue one row for delivery; where the broker is down ``deliver_due`` sends it."""
    event = ConversionEvent.objects.filter(pk=pk).first()
    if event is not None:
        publisher.enqueue(event)


@admin.register(ConversionEvent)
class ConversionEventAdmin(MarketColumn, HistoryAdmin, ModelAdmin):
    list_display = (
        "order_id",
        "amount_with_currency",
        "current_amount",
        "short_click_id",
        "status_badge",
        "attempts",
        "last_answer",
        "sent_at",
    )
    list_filter = (
        "status",
        CurrencyFilter,
        ClickFilter,
        ConflictFilter,
        RestatedFilter,
        PixelFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    # Exact ids, each found through its index (a substring search reads every row).
    search_fields = ("order_id__exact", "request_id__exact")
    fieldsets = (
        (
            _("Order"),
            {
                "fields": (
                    "order_id",
                    ("amount", "currency"),
                    "number_of_items",
                    "current_amount",
                    "event_name",
                    "event_time",
                    "pixel_id",
                    "click_id",
                    "click_captured_at",
                    "conflicting_report",
                    "conflict_at",
                )
            },
        ),
        (
            _("Delivery"),
            {
                "fields": (
                    "status_badge",
                    "skip_reason",
                    "attempts",
                    "next_attempt_at",
                    "sent_at",
                    "remote_event_id",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        (
            _("Last answer from Prisjakt"),
            {
                "fields": (
                    "last_status_code",
                    "problem_title",
                    "problem_detail",
                    "problem_type",
                    "field_errors_table",
                    "request_id_to_quote",
                )
            },
        ),
    )
    readonly_fields = flatten_fieldsets(fieldsets)
    inlines = (RestatementInline,)
    actions = ("send_now", "retry", "restate")
    list_per_page = 50
    change_list_template = "admin/django_pjpixel/conversionevent/change_list.html"

    # -- read-only records --------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Without an object this is "may act on rows" (the actions); a single
        # record is never edited, so its page is the view-only one.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    # -- list columns -------------------------------------------------------

    @admin.display(description=_("amount"), ordering="amount")
    def amount_with_currency(self, obj: ConversionEvent) -> str:
        return f"{formats.localize(obj.amount)} {obj.currency}"

    @admin.display(description=_("amount now"), ordering="restated_amount")
    def current_amount(self, obj: ConversionEvent) -> str:
        """After a refund or cancellation: what the purchase counts at now (else empty)."""
        if not obj.is_restated:
            return self.get_empty_value_display()
        items = obj.current_number_of_items
        amount = f"{formats.localize(obj.current_amount)} {obj.current_currency}"
        return f"{amount}, " + ngettext("%d item", "%d items", items) % items

    @admin.display(description=_("click id"), ordering="click_id")
    def short_click_id(self, obj: ConversionEvent) -> str | SafeString:
        if len(obj.click_id) <= CLICK_ID_SHOWN:
            return obj.click_id or self.get_empty_value_display()
        return format_html(
            '<span title="{}">{}…</span>', obj.click_id, obj.click_id[:CLICK_ID_SHOWN]
        )

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: ConversionEvent) -> SafeString:
        return format_html(
            '<span class="pjpixel-badge pjpixel-{}" style="background:{};color:#fff;'
            'padding:1px 8px;border-radius:8px;white-space:nowrap">{}</span>',
            obj.status,
            BADGE_COLOURS.get(obj.status, NEUTRAL),
            obj.get_status_display(),
        )

    @admin.display(description=_("last answer or reason"), ordering="last_status_code")
    def last_answer(self, obj: ConversionEvent) -> str:
        """The last answer and its first field error; a skipped row's reason."""
        return obj.reason or self.get_empty_value_display()

    # -- detail page --------------------------------------------------------

    @admin.display(description=_("field errors"))
    def field_errors_table(self, obj: ConversionEvent) -> str | SafeString:
        errors = obj.field_errors if isinstance(obj.field_errors, dict) else {}
        if not errors:
            return self.get_empty_value_display()
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    name,
                    err.get("message", "") if isinstance(err, dict) else err,
                    err.get("value", "") if isinstance(err, dict) else "",
                )
                for name, err in errors.items()
            ),
        )
        return format_html(
            '<table class="pjpixel-field-errors"><thead><tr><th>{}</th><th>{}</th>'
            "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("Field"),
            _("Message"),
            _("Value sent"),
            rows,
        )

    @admin.display(description=_("reported again as another purchase"))
    def conflicting_report(self, obj: ConversionEvent) -> str:
        return conflicts.reported_text(obj) or self.get_empty_value_display()

    @admin.display(description=_("request id to quote to Prisjakt"))
    def request_id_to_quote(self, obj: ConversionEvent) -> str | SafeString:
        if not obj.request_id:
            return self.get_empty_value_display()
        return format_html("<code>{}</code>", obj.request_id)

    # -- the changelist: counts per status, forged actions -------------------

    def status_counts(self, pixel_id: str | None = None) -> list[dict[str, Any]]:
        """Rows per status (of the pixel ``pixel_id``), each linked to its filter: exact, in
        one aggregate, up to ``EXACT_UP_TO`` rows; beyond, the planner's estimate of each
        ("about"), so years of history are not counted on every page."""
        rows = ConversionEvent.objects.all()
        market = {} if pixel_id is None else {PixelFilter.parameter_name: pixel_id}
        if pixel_id is not None:
            rows = rows.filter(pixel_id=pixel_id)
        about = count_at_most(rows, EXACT_UP_TO) > EXACT_UP_TO
        if about:
            totals = {value: estimate(rows.filter(status=value)) for value in Status.values}
        else:
            totals = rows.aggregate(
                **{value: Count("pk", filter=Q(status=value)) for value in Status.values}
            )
        base = reverse("admin:django_pjpixel_conversionevent_changelist")
        return [
            {
                "status": value,
                "label": label,
                "count": totals[value],
                "about": about,
                "colour": BADGE_COLOURS.get(value, NEUTRAL),
                "url": f"{base}?{urlencode({'status__exact': value, **market})}",
            }
            for value, label in Status.choices
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if (
            request.method == "POST"
            and "action" in request.POST
            and not set(request.POST.getlist("action")) <= set(self.get_actions(request))
        ):
            # The admin would silently ignore an action the user may not run;
            # a forged POST is refused outright.
            raise PermissionDenied
        # The pixel filter on one market's pixel: the summary and the links are that market's.
        pixel = request.GET.get(PixelFilter.parameter_name)
        key = markets.key_of(pixel) if pixel else None
        pixel_id = pixel if key else None
        query = f"?{urlencode({'pixel': key})}" if key else ""
        context = {
            # Records are never edited here, so not "Select ... to change".
            "title": capfirst(self.opts.verbose_name_plural),
            **(extra_context or {}),
            "status_counts": self.status_counts(pixel_id),
            "events_url": reverse("admin:django_pjpixel_prisjakt_events") + query,
            "health": delivery_health(pixel_id=pixel_id),
            "health_market": markets.label(pixel_id) if pixel_id else None,
            "reconciliation_url": reverse("admin:django_pjpixel_reconciliation") + query
            if mirror.may_reconcile(request)
            else None,
        }
        return super().changelist_view(request, extra_context=context)

    # -- actions ------------------------------------------------------------

    @admin.action(description=_("Send now"), permissions=("change",))
    def send_now(self, request: HttpRequest, queryset: QuerySet[ConversionEvent]) -> None:
        if self.has_change_permission(request):
            release_held(queryset)  # held for a click CLICK_ID_PATTERN now accepts: pending
        self._hand_back(request, queryset, SEND_NOW_STATUSES)

    @admin.action(description=_("Retry failed events"), permissions=("change",))
    def retry(self, request: HttpRequest, queryset: QuerySet[ConversionEvent]) -> None:
        invalid = queryset.filter(REPORTED_INVALID).count()
        if invalid:
            self.message_user(
                request,
                ngettext(
                    "%(count)d purchase the shop reported with an invalid value was left alone: "
                    "it is sent when the shop reports the order again with valid values.",
                    "%(count)d purchases the shop reported with an invalid value were left alone: "
                    "they are sent when the shop reports the orders again with valid values.",
                    invalid,
                )
                % {"count": invalid},
                messages.WARNING,
            )
        self._hand_back(request, queryset.exclude(REPORTED_INVALID), RETRY_STATUSES)

    @admin.action(description=_("Restate… (refund or cancellation)"), permissions=("restate",))
    def restate(
        self, request: HttpRequest, queryset: QuerySet[ConversionEvent]
    ) -> TemplateResponse | None:
        return restate_view(self, request, queryset)

    def has_restate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESTATE_PERMISSION)

    def _hand_back(
        self,
        request: HttpRequest,
        queryset: QuerySet[ConversionEvent],
        statuses: tuple[str, ...],
    ) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied
        selected = queryset.count()
        pks = list(queryset.filter(status__in=statuses).values_list("pk", flat=True))
        updated = ConversionEvent.objects.filter(pk__in=pks, status__in=statuses).update(
            status=Status.PENDING, next_attempt_at=timezone.now()
        )
        for pk in pks:
            # After the reset is committed, so the sender claims the pending row.
            transaction.on_commit(partial(deliver_now, pk))
        if updated:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event was handed to delivery.",
                    "%(count)d events were handed to delivery.",
                    updated,
                )
                % {"count": updated},
                messages.SUCCESS,
            )
        if selected > updated:
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected event was left alone: only %(statuses)s events qualify.",
                    "%(count)d selected events were left alone: only %(statuses)s events qualify.",
                    selected - updated,
                )
                % {
                    "count": selected - updated,
                    "statuses": ", ".join(str(Status(s).label) for s in statuses),
                },
                messages.WARNING,
            )

    # -- the "Prisjakt events" view ------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label
        return [
            path(
                "prisjakt-events/",
                self.admin_site.admin_view(self.prisjakt_events_view),
                name=f"{info}_prisjakt_events",
            ),
            *super().get_urls(),
        ]

    def prisjakt_events_view(self, request: HttpRequest) -> TemplateResponse:
        return events.prisjakt_events_view(self, request)
