"""The outbox admin: read-only records, columns, counts, actions and permissions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from django_pjpixel.admin import outbox as pjadmin
from django_pjpixel.ledger.purchases import track_purchase
from django_pjpixel.models import ConversionEvent
from django_pjpixel.signals import order_completed

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SECRET = "s3cr3t-never-shown"
CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def make_event(number: int = 1, **fields: Any) -> ConversionEvent:
    values: dict[str, Any] = {
        "pixel_id": "5c034de4-8e86-4d16-9fd1-20cfec6c97e4",
        "order_id": f"order-{number}",
        "event_time": timezone.now(),
        "amount": Decimal("1234.00"),
        "currency": "SEK",
        "number_of_items": 2,
        "click_id": CLICK,
    }
    values.update(fields)
    return ConversionEvent.objects.create(**values)


def failed_event(number: int = 1) -> ConversionEvent:
    return make_event(
        number,
        status=ConversionEvent.Status.FAILED,
        attempts=1,
        last_status_code=400,
        problem_title="Request validation failed",
        problem_detail="Request contains invalid fields: data.currency.",
        field_errors={"data.currency": {"message": "must be one of: SEK", "value": "XYZ"}},
        request_id="d61579e9-eb4a-4fef-87e9-75438bbcfcf4",
    )


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_pjpixel", codename__in=codenames)
    )
    return user


@pytest.fixture
def viewer(client: Client) -> Client:
    client.force_login(staff("viewer", "view_conversionevent"))
    return client


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(staff("operator", "view_conversionevent", "change_conversionevent"))
    return client


def changelist(client: Client, query: str = "") -> str:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    html = response.content.decode()
    assert SECRET not in html
    return html


# -- the list -----------------------------------------------------------------


def test_changelist_shows_columns_badges_and_counts(admin_client: Client) -> None:
    failed_event(1)
    make_event(2, status=ConversionEvent.Status.SENT, sent_at=timezone.now(), attempts=1)
    make_event(3, click_id="")
    html = changelist(admin_client)
    assert "order-1" in html
    assert "1234.00 SEK" in html
    assert f'title="{CLICK}"' in html
    assert CLICK[:12] + "…" in html
    assert 'class="pjpixel-badge pjpixel-failed"' in html
    assert "400 Request validation failed" in html
    # The counts at the top: one per status, linked to the filter.
    assert 'class="pjpixel-status-failed">Failed<span class="pjpixel-count">1</span>' in html
    assert 'class="pjpixel-status-sent">Sent<span class="pjpixel-count">1</span>' in html
    assert 'class="pjpixel-status-pending">Pending<span class="pjpixel-count">1</span>' in html
    assert 'class="pjpixel-status-dead">Gave up<span class="pjpixel-count">0</span>' in html
    assert "?status__exact=failed" in html
    # Linked to the events view; nothing to add, nothing to delete.
    assert reverse("admin:django_pjpixel_prisjakt_events") in html
    assert "conversionevent/add/" not in html
    assert "delete_selected" not in html


def test_last_answer_column_variants() -> None:
    model_admin = pjadmin.ConversionEventAdmin(ConversionEvent, pjadmin.admin.site)
    event = ConversionEvent(last_status_code=None, problem_title="")
    assert model_admin.last_answer(event) == "-"
    event.problem_title = "Prisjakt API timed out"
    assert model_admin.last_answer(event) == "Prisjakt API timed out"
    event.last_status_code, event.problem_title = 502, ""
    assert model_admin.last_answer(event) == "502"
    event.field_errors = {"amount": "too large\nforged: line"}  # a bare message, one line
    assert model_admin.last_answer(event) == "502: amount: too large\\nforged: line"
    event.field_errors = {"x": {}}
    assert model_admin.last_answer(event) == "502: x"
    event.click_id = "short"
    assert model_admin.short_click_id(event) == "short"


def test_the_list_says_why_a_row_failed_or_was_skipped(admin_client: Client) -> None:
    """Where the list showed "-" (or a bare title): the skip reason, the first field error."""
    failed_event(1)
    make_event(2, status=ConversionEvent.Status.SKIPPED, skip_reason="No click id for the order.")
    order_completed.send(sender=None, order_id="order-3", amount=10)  # number_of_items left out
    html = changelist(admin_client)
    assert "400 Request validation failed: data.currency: must be one of: SEK (value: XYZ)" in html
    assert "No click id for the order." in html
    assert "Invalid purchase: number_of_items: is required" in html
    assert "Last answer or reason" in html


def test_filters_and_search(admin_client: Client) -> None:
    failed_event(1)
    make_event(2, currency="NOK", request_id="req-77")
    html = changelist(admin_client, "?status__exact=failed")
    assert "order-1" in html
    assert "order-2" not in html
    html = changelist(admin_client, "?currency=NOK")
    assert "order-2" in html
    assert "order-1" not in html
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    html = changelist(admin_client, "?" + urlencode({"created_at__gte": str(today)}))
    assert "order-1" in html
    html = changelist(admin_client, "?" + urlencode({"created_at__lt": str(today)}))
    assert "order-1" not in html
    html = changelist(admin_client, "?q=req-77")
    assert "order-2" in html
    assert "order-1" not in html
    html = changelist(admin_client, "?q=order-1")
    assert "order-1" in html
    assert "order-2" not in html


def test_changelist_query_count_is_constant(
    admin_client: Client, django_assert_num_queries: Callable[..., Any]
) -> None:
    for number in range(5):
        failed_event(number)
    with CaptureQueriesContext(connection) as five:
        changelist(admin_client)
    for number in range(5, 50):
        make_event(number)
    with django_assert_num_queries(len(five.captured_queries)):
        html = changelist(admin_client)
    assert html.count('class="pjpixel-badge') == 50


def test_a_reported_purchase_in_the_list_and_on_its_page_with_use_tz_true_or_false(
    use_tz: bool, admin_client: Client
) -> None:
    paid = datetime(2025, 3, 13, 10, 45, 46, tzinfo=dt_timezone.utc)  # 11:45 in Stockholm
    event = track_purchase(
        order_id="ORD-TZ", amount=10, number_of_items=1, signed_click_id=CLICK, event_time=paid
    )
    assert event is not None
    # The "Today" link of the date filter, as the admin builds it.
    today = timezone.localtime(datetime.now(dt_timezone.utc)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    since = str(today if use_tz else today.replace(tzinfo=None))
    html = changelist(admin_client, "?" + urlencode({"created_at__gte": since}))
    assert "ORD-TZ" in html
    assert 'class="pjpixel-badge pjpixel-pending"' in html
    assert "ORD-TZ" not in changelist(admin_client, "?" + urlencode({"created_at__lt": since}))
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    html = admin_client.get(url).content.decode()
    assert "March 13, 2025, 11:45 a.m." in html


def test_a_purchase_with_an_order_id_that_cannot_be_sent_is_shown_failed(
    admin_client: Client,
) -> None:
    event = track_purchase(order_id="ORD\x00-1", amount=10, number_of_items=1)
    assert event is not None
    html = changelist(admin_client, "?status__exact=failed")
    assert "ORD\\x00-1#" in html
    assert "Invalid purchase" in html
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    html = admin_client.get(url).content.decode()
    assert "<td><code>order_id</code></td><td>must not contain control characters" in html
    assert "<code>&#x27;ORD\\x00-1&#x27;</code>" in html


# -- the detail page ----------------------------------------------------------


def test_detail_shows_problem_field_errors_and_request_id(admin_client: Client) -> None:
    event = failed_event()
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Request validation failed" in html
    assert "Request contains invalid fields: data.currency." in html
    assert '<table class="pjpixel-field-errors">' in html
    assert "<td><code>data.currency</code></td><td>must be one of: SEK</td>" in html
    assert "<code>XYZ</code>" in html
    assert "<code>d61579e9-eb4a-4fef-87e9-75438bbcfcf4</code>" in html
    assert "Request id to quote to Prisjakt" in html
    # Read-only: no form inputs for the fields, no save button.
    assert 'name="order_id"' not in html
    assert 'name="_save"' not in html
    assert SECRET not in html


def test_detail_shows_its_fields_in_the_order_of_its_fieldsets(admin_client: Client) -> None:
    # The page follows the fieldsets, not the order in which the model declares its fields.
    event = make_event()
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    html = admin_client.get(url).content.decode()
    assert re.findall(r"<label[^>]*>([^<]*):</label>", html) == [
        # Order
        "Order id",
        "Amount",
        "Currency",
        "Number of items",
        "Amount now",
        "Event name",
        "Event time",
        "Pixel id",
        "Click id",
        "Click captured at",
        "Reported again as another purchase",
        "Conflicting report at",
        # Delivery
        "Status",
        "Skip reason",
        "Attempts",
        "Next attempt at",
        "Sent at",
        "Prisjakt event id",
        "Created at",
        "Updated at",
        # Last answer from Prisjakt
        "Last HTTP status",
        "Problem title",
        "Problem detail",
        "Problem type",
        "Field errors",
        "Request id to quote to Prisjakt",
    ]


def test_detail_without_errors(admin_client: Client) -> None:
    event = make_event(field_errors={"data.amount": "bad"})
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    html = admin_client.get(url).content.decode()
    assert "<td><code>data.amount</code></td><td>bad</td><td><code></code></td>" in html
    event = make_event(2)
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    assert admin_client.get(url).status_code == 200


def test_records_cannot_be_added_changed_or_deleted(admin_client: Client) -> None:
    event = failed_event()
    assert admin_client.get(reverse("admin:django_pjpixel_conversionevent_add")).status_code == 403
    change = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    assert admin_client.post(change, {"order_id": "forged"}).status_code == 403
    delete = reverse("admin:django_pjpixel_conversionevent_delete", args=(event.pk,))
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.order_id == "order-1"


# -- actions --------------------------------------------------------------------


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(pjadmin, "deliver_now", calls.append)
    return calls


def run_action(client: Client, action: str, *events: ConversionEvent) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [e.pk for e in events], "index": 0},
        follow=True,
    )


@pytest.mark.parametrize(
    "reported",
    [{"order_id": None}, {"order_id": "o" * 101}, {"amount": "ten"}, {"number_of_items": None}],
    ids=["no order id", "order id too long", "amount", "number of items"],
)
def test_retry_leaves_a_purchase_the_shop_reported_invalid_alone(
    operator: Client,
    handed: list[int],
    pjpixel_api: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
    reported: dict[str, Any],
) -> None:
    # Its row holds placeholders where the bad values were: sent again, they
    # would reach Prisjakt as an order "(no order id)#...", an amount of 0.
    fields = {"order_id": "order-1", "amount": 10, "number_of_items": 1, **reported}
    invalid = track_purchase(**fields, signed_click_id=CLICK)
    assert invalid is not None
    with django_capture_on_commit_callbacks(execute=True):
        html = run_action(operator, "retry", invalid).content.decode()
    assert (
        "1 purchase the shop reported with an invalid value was left alone: it is sent "
        "when the shop reports the order again with valid values." in html
    )
    invalid.refresh_from_db()
    assert invalid.status == ConversionEvent.Status.FAILED
    assert handed == []
    assert pjpixel_api.requests == []


def test_retry_resets_failed_and_dead_rows_and_hands_them_over(
    operator: Client,
    handed: list[int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    failed = failed_event(1)
    dead = make_event(2, status=ConversionEvent.Status.DEAD, attempts=15)
    sent = make_event(3, status=ConversionEvent.Status.SENT)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(operator, "retry", failed, dead, sent)
    html = response.content.decode()
    assert "2 events were handed to delivery." in html
    assert "1 selected event was left alone: only Failed, Gave up events qualify." in html
    assert sorted(handed) == sorted([failed.pk, dead.pk])
    for event in (failed, dead):
        event.refresh_from_db()
        assert event.status == ConversionEvent.Status.PENDING
        assert event.next_attempt_at is not None
        assert event.next_attempt_at >= before
    sent.refresh_from_db()
    assert sent.status == ConversionEvent.Status.SENT


def test_send_now_takes_pending_rows_only(
    operator: Client,
    handed: list[int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    pending = make_event(1, next_attempt_at=timezone.now() + timedelta(hours=1))
    failed = failed_event(2)
    with django_capture_on_commit_callbacks(execute=True):
        html = run_action(operator, "send_now", pending, failed).content.decode()
    assert "1 event was handed to delivery." in html
    assert "1 selected event was left alone: only Pending events qualify." in html
    assert handed == [pending.pk]
    pending.refresh_from_db()
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at <= timezone.now()


def test_retry_of_only_failed_rows_says_nothing_was_left(
    operator: Client,
    handed: list[int],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    failed = failed_event(1)
    with django_capture_on_commit_callbacks(execute=True):
        html = run_action(operator, "retry", failed).content.decode()
    assert "1 event was handed to delivery." in html
    assert "left alone" not in html
    assert handed == [failed.pk]


def test_action_on_nothing_that_qualifies(operator: Client, handed: list[int]) -> None:
    sent = make_event(1, status=ConversionEvent.Status.SENT)
    html = run_action(operator, "retry", sent).content.decode()
    assert "handed to delivery" not in html
    assert "1 selected event was left alone" in html
    assert handed == []


def test_deliver_now_queues_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_pjpixel.ledger import publisher

    event = make_event()
    queued: list[ConversionEvent] = []
    monkeypatch.setattr(publisher, "enqueue", queued.append)
    pjadmin.deliver_now(event.pk)
    pjadmin.deliver_now(event.pk + 1000)  # deleted meanwhile: nothing to queue
    assert queued == [event]


def test_action_checks_the_permission_itself(rf: Any, handed: list[int]) -> None:
    from django.core.exceptions import PermissionDenied

    request = rf.post("/")
    request.user = staff("viewer", "view_conversionevent")
    model_admin = pjadmin.ConversionEventAdmin(ConversionEvent, pjadmin.admin.site)
    with pytest.raises(PermissionDenied):
        model_admin.retry(request, ConversionEvent.objects.all())


# -- permissions ------------------------------------------------------------------


def test_view_only_staff_sees_no_actions(viewer: Client) -> None:
    event = failed_event()
    html = changelist(viewer)
    assert "order-1" in html
    assert 'name="action"' not in html
    assert "Retry failed events" not in html
    assert "Send now" not in html
    detail = viewer.get(reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,)))
    assert detail.status_code == 200
    assert "Request validation failed" in detail.content.decode()


def test_forged_action_post_by_view_only_staff_is_refused(
    viewer: Client, handed: list[int]
) -> None:
    event = failed_event()
    response = viewer.post(
        reverse(CHANGELIST), {"action": "retry", "_selected_action": [event.pk], "index": 0}
    )
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.status == ConversionEvent.Status.FAILED
    assert handed == []


def test_operator_sees_the_actions(operator: Client) -> None:
    failed_event()
    html = changelist(operator)
    assert 'value="retry"' in html
    assert 'value="send_now"' in html


def test_anonymous_is_sent_to_login(client: Client) -> None:
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_staff_without_view_permission_is_refused(client: Client) -> None:
    client.force_login(staff("nobody"))
    assert client.get(reverse(CHANGELIST)).status_code == 403


def test_app_index_links_the_events_view(admin_client: Client, viewer: Client) -> None:
    url = reverse("admin:app_list", args=("django_pjpixel",))
    html = admin_client.get(url).content.decode()
    assert reverse("admin:django_pjpixel_prisjakt_events") in html
    assert SECRET not in html


# -- Swedish ------------------------------------------------------------------------


def test_changelist_and_detail_in_swedish(admin_client: Client) -> None:
    event = failed_event()
    with translation.override("sv"):
        html = admin_client.get(reverse(CHANGELIST), HTTP_ACCEPT_LANGUAGE="sv").content.decode()
        detail = admin_client.get(
            reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,)),
            HTTP_ACCEPT_LANGUAGE="sv",
        ).content.decode()
    assert "Konverteringshändelser" in html
    assert ">Misslyckad<" in html
    assert "Prisjakt-händelser" in html
    assert "Senaste svar" in html
    assert "Förfrågnings-id att uppge för Prisjakt" in detail
    assert "Fältfel" in detail


# -- actions with the real delivery ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_delivers_through_the_queue(
    client: Client, pjpixel_api: Any, inline_queue: None
) -> None:
    client.force_login(staff("operator", "view_conversionevent", "change_conversionevent"))
    failed = failed_event()
    html = run_action(client, "retry", failed).content.decode()
    assert "1 event was handed to delivery." in html
    failed.refresh_from_db()
    assert failed.status == ConversionEvent.Status.SENT
    assert failed.attempts == 2
    assert failed.problem_title == ""
    (created,) = pjpixel_api.events
    assert created["external_event_id"] == "order-1"
    html = changelist(client)
    assert 'class="pjpixel-status-sent">Sent<span class="pjpixel-count">1</span>' in html


def test_send_now_releases_rows_held_for_a_click_the_pattern_now_accepts(
    operator: Client,
    handed: list[int],
    pjpixel: dict[str, Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # Prisjakt's clicks got a longer signature; the shop held them until it said so.
    new_format = CLICK + "0123"
    held = track_purchase(order_id="o-1", amount=10, number_of_items=1, signed_click_id=new_format)
    junkish = track_purchase(
        order_id="o-2", amount=10, number_of_items=1, signed_click_id="a1" * 15
    )
    assert held is not None
    assert junkish is not None
    assert held.status == junkish.status == ConversionEvent.Status.SKIPPED
    pjpixel["CLICK_ID_PATTERN"] = r"[0-9a-f]{8}-[0-9a-f-]{27}_[0-9a-f]{20}"
    with django_capture_on_commit_callbacks(execute=True):
        html = run_action(operator, "send_now", held, junkish).content.decode()
    assert "1 event was handed to delivery." in html
    assert handed == [held.pk]
    held.refresh_from_db()
    junkish.refresh_from_db()
    assert (held.status, held.click_id, held.skip_reason) == ("pending", new_format, "")
    assert junkish.status == ConversionEvent.Status.SKIPPED
