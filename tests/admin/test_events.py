"""The "Prisjakt events" admin view against the API emulator."""

from __future__ import annotations

import html as htmllib
import re
import socket
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import formats, timezone, translation

from django_pjpixel.admin import events as events_page
from django_pjpixel.api.client import format_time
from django_pjpixel.exceptions import InvalidInput, PrisjaktAPIError, Problem
from django_pjpixel.models import ConversionEvent
from django_pjpixel.record import ranges
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import earlier_today

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

URL = "admin:django_pjpixel_prisjakt_events"
SECRET = "s3cr3t-never-shown"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
API_HOSTS = ("api.pj.nu", "127.0.0.1:")


def get(client: Client, query: str = "") -> str:
    """The rendered view; never a 500, never the secret, never an API URL."""
    response = client.get(reverse(URL) + query)
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page
    for host in API_HOSTS:
        assert host not in page
    return page


def listings(api: PrisjaktEmulator) -> list[Any]:
    return [r for r in api.requests if r.method == "GET" and r.path.endswith("/events")]


def seed(api: PrisjaktEmulator, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [
        api.add_event(
            event_time=when,
            external_event_id=f"order-{index}",
            amount=100 + index,
            **fields,
        )
        for index, when in enumerate(earlier_today(count))
    ]


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr class="pjpixel-event">.*?</tr>', page, re.DOTALL)


def nav_url(page: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" class="pjpixel-page-{rel}"', page)
    return htmllib.unescape(match.group(1)) if match else None


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_pjpixel", codename__in=codenames)
    )
    return user


# -- the range ------------------------------------------------------------------


def test_default_range_is_the_last_seven_days(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    page = get(admin_client)
    today = timezone.localdate()
    assert f'value="{(today - timedelta(days=6)).isoformat()}"' in page
    assert f'value="{today.isoformat()}"' in page
    (request,) = listings(pjpixel_api)
    start, end = ranges.day_range(today - timedelta(days=6), today)
    assert request.query["from"] == format_time(start)
    assert request.query["to"] == format_time(end)
    assert request.query["page"] == "1"
    assert request.query["to"].endswith(":59:59.999Z")


def test_dates_are_whole_days_in_the_current_time_zone() -> None:
    start, end = ranges.day_range(date(2025, 3, 1), date(2025, 3, 2))
    assert start.isoformat() == "2025-03-01T00:00:00+01:00"
    assert end.isoformat() == "2025-03-02T23:59:59.999999+01:00"


@pytest.mark.parametrize(
    ("first", "last", "error"),
    [
        ("2025-01-01", "2025-03-02", "at most 60 days"),
        ("2025-03-02", "2025-03-01", "must not be before"),
        ("2025-13-01", "2025-03-01", "Enter a valid date"),
        # 60 whole days, but the autumn clock change makes them 60 days and an hour.
        ("2025-09-01", "2025-10-30", "at most 60 days"),
    ],
)
def test_a_range_the_api_would_refuse_is_refused_before_any_request(
    admin_client: Client, pjpixel_api: PrisjaktEmulator, first: str, last: str, error: str
) -> None:
    page = get(admin_client, f"?from={first}&to={last}")
    errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>\s*<li>([^<]+)</li>', page)
    assert len(errors) == 1
    assert error in errors[0]
    assert "No events were fetched: correct the dates below." in page
    assert 'class="errorlist' in page
    assert pjpixel_api.requests == []


def test_sixty_days_are_allowed(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    get(admin_client, "?from=2025-01-01&to=2025-03-01")
    (request,) = listings(pjpixel_api)
    assert request.query["from"] == "2024-12-31T23:00:00.000Z"
    assert request.query["to"] == "2025-03-01T22:59:59.999Z"


def test_a_bad_page_number_is_refused(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    for number in ("0", "abc"):
        page = get(admin_client, f"?page={number}")
        assert "No events were fetched: a page is a whole number from 1." in page
    assert pjpixel_api.requests == []


# -- pages ------------------------------------------------------------------------


def test_no_events(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    page = get(admin_client)
    assert "Prisjakt has no events for this pixel in this range." in page
    assert rows_of(page) == []
    assert "Page 1</span>" in page
    assert all(nav_url(page, rel) is None for rel in ("first", "prev", "next", "last"))
    assert '<dd class="pjpixel-purchases">0</dd>' in page
    assert len(listings(pjpixel_api)) == 1


def test_one_page(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    events = seed(pjpixel_api, 3)
    pjpixel_api.add_event(external_event_id="eur-1", amount=10, currency="EUR")
    page = get(admin_client)
    rows = rows_of(page)
    assert len(rows) == 4
    assert events[0]["id"] in page
    assert events[0]["click_id"] is None
    assert '<dd class="pjpixel-purchases">4</dd>' in page
    assert '<dd class="pjpixel-amount">10 EUR</dd>' in page
    assert '<dd class="pjpixel-amount">303 SEK</dd>' in page
    assert all(nav_url(page, rel) is None for rel in ("first", "prev", "next", "last"))
    # One bar per day of the range; today's bar holds the purchases.
    assert page.count('<rect class="bar"') == 7
    assert f"<title>{timezone.localdate().isoformat()}: 4</title>" in page
    assert len(listings(pjpixel_api)) == 1


def test_event_times_are_shown_in_the_time_zone_with_use_tz_true_or_false(
    use_tz: bool, admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    now = datetime.now(dt_timezone.utc)
    pjpixel_api.add_event(event_time=now, external_event_id="order-1")
    page = get(admin_client)
    local = timezone.localtime(now, timezone.get_default_timezone())
    shown = formats.date_format(local.replace(tzinfo=None), "SHORT_DATETIME_FORMAT")
    assert f'<td class="pjpixel-time">{shown}</td>' in page
    assert f"<title>{local.date().isoformat()}: 1</title>" in page


def test_seven_pages_navigated_one_request_per_page(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    pjpixel_api.page_size = 2
    events = seed(pjpixel_api, 13)
    page = get(admin_client)
    assert "Page 1 of 7" in page
    assert nav_url(page, "first") is None  # the page shown is not a link
    assert nav_url(page, "prev") is None
    seen: list[str] = []
    for number in range(1, 8):
        assert f"Page {number} of 7" in page
        expected = events[(number - 1) * 2 : number * 2]
        assert len(rows_of(page)) == len(expected)
        for event in expected:
            assert event["id"] in page
            seen.append(event["id"])
        assert len(listings(pjpixel_api)) == number
        assert listings(pjpixel_api)[-1].query["page"] == str(number)
        following = nav_url(page, "next")
        if number == 7:
            assert following is None
            break
        assert following is not None
        assert "page=" in following
        page = get(admin_client, following[following.index("?") :])
    assert seen == [e["id"] for e in events]
    # Back to the first page and straight to the last, from the last page's links.
    assert nav_url(page, "last") is None
    first = nav_url(page, "first")
    previous = nav_url(page, "prev")
    assert first is not None
    assert previous is not None
    assert "page=6" in previous
    page = get(admin_client, first[first.index("?") :])
    assert "Page 1 of 7" in page
    last = nav_url(page, "last")
    assert last is not None
    assert "Page 7 of 7" in get(admin_client, last[last.index("?") :])


@pytest.mark.parametrize("number", range(1, 8))
def test_each_page_directly(
    admin_client: Client, pjpixel_api: PrisjaktEmulator, number: int
) -> None:
    pjpixel_api.page_size = 2
    events = seed(pjpixel_api, 13)
    page = get(admin_client, f"?page={number}")
    assert f"Page {number} of 7" in page
    assert [e["id"] for e in events[(number - 1) * 2 : number * 2]] == re.findall(
        r'<tr class="pjpixel-event">\s*<td><code>([^<]+)</code>', page
    )
    (request,) = listings(pjpixel_api)
    assert request.query["page"] == str(number)


def test_unstable_pages_show_a_repeated_event_once_per_page(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    pjpixel_api.page_size = 2
    pjpixel_api.unstable_pages = True
    events = seed(pjpixel_api, 4)
    first = get(admin_client, "?page=1")
    second = get(admin_client, "?page=2")
    repeated = events[1]["id"]
    assert first.count(f"<code>{repeated}</code>") == 1
    assert second.count(f"<code>{repeated}</code>") == 1
    assert len(rows_of(second)) == 3


def test_rows_are_de_duplicated_within_a_page() -> None:
    event = {"id": "a", "event_name": "purchase", "data": {"amount": 5, "currency": "SEK"}}
    rows = events_page.event_rows(
        [event, dict(event), {"id": "b", "data": "junk", "event_time": 7}]
    )
    assert [row.id for row in rows] == ["a", "b"]
    assert rows[1].amount is None
    assert rows[1].time is None


def test_summary_counts_purchases_with_what_they_carry() -> None:
    when = timezone.make_aware(datetime(2025, 3, 13, 23, 30))
    rows = events_page.event_rows(
        [
            {"event_name": "purchase", "event_time": when.isoformat(), "data": {"amount": 5}},
            {"event_name": "purchase", "data": {"amount": 7, "currency": "NOK"}},
            {"event_name": "refund", "event_time": when.isoformat()},
        ]
    )
    summary = events_page.summarize(rows, date(2025, 3, 13), date(2025, 3, 14))
    assert summary.purchases == 2
    assert summary.amounts == [("NOK", Decimal(7))]
    assert [(bar.day.day, bar.count, bar.height) for bar in summary.bars] == [
        (13, 1, events_page.CHART_HEIGHT),
        (14, 0, 0),
    ]


def test_long_ranges_label_fewer_days() -> None:
    summary = events_page.summarize([], date(2025, 1, 1), date(2025, 2, 28))
    assert len(summary.bars) == 59
    assert [bar.label for bar in summary.bars if bar.label] == ["01", "15", "01", "15"]
    assert summary.width == 59 * (events_page.CHART_BAR + events_page.CHART_GAP)


def test_odd_event_values_are_shown_as_blank() -> None:
    rows = events_page.event_rows(
        [
            {"id": "n", "event_time": "2025-03-13T10:45:46", "data": {"amount": "x"}},
            {"id": "m", "data": {"amount": True, "number_of_items": "3"}},
            {"id": "i", "data": {"amount": "NaN"}},
        ]
    )
    assert [(row.time, row.amount, row.items) for row in rows] == [(None, None, None)] * 3


def test_minor_units_are_shown_as_whole_units() -> None:
    with override_settings(PJPIXEL={"AMOUNT_UNITS": "minor"}):
        (row,) = events_page.event_rows([{"id": "x", "data": {"amount": 12345}}])
    assert row.amount == Decimal("123.45")


def test_rows_link_to_the_local_record(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 2)
    local = ConversionEvent.objects.create(
        pixel_id=PIXEL,
        order_id="order-1",
        event_time=timezone.now(),
        amount=Decimal(101),
        currency="SEK",
        number_of_items=1,
    )
    page = get(admin_client)
    change = reverse("admin:django_pjpixel_conversionevent_change", args=(local.pk,))
    assert f'<a href="{change}"' in page
    assert page.count("/change/") == 1


def test_query_count_is_constant_in_the_number_of_events(
    admin_client: Client,
    pjpixel_api: PrisjaktEmulator,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    def local(count: int, start: int) -> None:
        for index in range(start, start + count):
            ConversionEvent.objects.create(
                pixel_id=PIXEL,
                order_id=f"order-{index}",
                event_time=timezone.now(),
                amount=Decimal(1),
                currency="SEK",
                number_of_items=1,
            )

    seed(pjpixel_api, 5)
    local(5, 0)
    with CaptureQueriesContext(connection) as five:
        assert len(rows_of(get(admin_client))) == 5
    pjpixel_api.reset()
    seed(pjpixel_api, 50)
    local(45, 5)
    with django_assert_num_queries(len(five.captured_queries)):
        page = get(admin_client)
    assert len(rows_of(page)) == 50
    assert page.count("/change/") == 50


# -- failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (400, "Prisjakt answered HTTP 400: Bad Request"),
        (401, "Prisjakt answered HTTP 401: Unauthorized"),
        (403, "Prisjakt answered HTTP 403: Forbidden"),
        (404, "Prisjakt answered HTTP 404: Not Found"),
        (429, "Prisjakt answered HTTP 429: Too Many Requests"),
        (500, "Prisjakt answered HTTP 500: Internal Server Error"),
        (502, "Prisjakt answered HTTP 502: Bad Gateway"),
        ("timeout", "The request to Prisjakt timed out"),
        ("reset", "Prisjakt could not be reached"),
    ],
)
def test_api_failures_are_admin_messages(
    admin_client: Client, pjpixel_api: PrisjaktEmulator, step: int | str, expected: str
) -> None:
    pjpixel_api.script([step])
    page = get(admin_client)
    assert '<ul class="messagelist">' in page
    assert 'class="error"' in page
    assert expected in page
    (request,) = pjpixel_api.requests
    if isinstance(step, int) and step != 502:
        assert "Injected by the emulator" in page
        assert f"Request id to quote to Prisjakt: {request.request_id}" in page
    if step == 429:
        assert "Try again in 1 seconds." in page
    assert rows_of(page) == []


def test_wrong_credentials_show_the_problem(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    with override_settings(PJPIXEL={"PIXEL_ID": PIXEL, "CLIENT_ID": "test-client"}):
        page = get(admin_client)
    assert "Prisjakt answered HTTP 401: Unauthorized — Invalid client credentials" in page


def test_unknown_pixel_is_a_404_message(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    settings = {"PIXEL_ID": "no-such-pixel", "CLIENT_ID": "test-client", "CLIENT_SECRET": SECRET}
    with override_settings(PJPIXEL=settings):
        page = get(admin_client)
    assert "HTTP 404: Pixel not found" in page


def test_connection_refused(admin_client: Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = {
        "PIXEL_ID": PIXEL,
        "CLIENT_ID": "test-client",
        "CLIENT_SECRET": SECRET,
        "API_URL": f"http://127.0.0.1:{port}/click-conversion",
    }
    with override_settings(PJPIXEL=settings):
        page = get(admin_client)
    assert "Prisjakt could not be reached; try again in a moment." in page


def test_missing_pixel_setting(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    with override_settings(PJPIXEL={"CLIENT_ID": "test-client", "CLIENT_SECRET": SECRET}):
        page = get(admin_client)
    assert "Prisjakt events cannot be listed" in page
    assert "PIXEL_ID" in page
    assert pjpixel_api.requests == []


def test_describe_error_without_a_status() -> None:
    err = PrisjaktAPIError("odd", problem=Problem(detail="no list"))
    assert events_page.describe_error(err) == (
        "Prisjakt answered something the listing cannot use. — no list"
    )
    assert events_page.describe_error(PrisjaktAPIError(status=599)) == (
        "Prisjakt answered HTTP 599: no problem title"
    )


def test_check_days_keeps_the_api_limit() -> None:
    with pytest.raises(InvalidInput, match="at most 60 days"):
        ranges.check_days(date(2025, 1, 1), date(2025, 3, 2))
    start, end = ranges.check_days(date(2025, 1, 1), date(2025, 1, 1))
    assert end - start < timedelta(days=1)
    assert isinstance(start, datetime)


# -- permissions, secret, language ----------------------------------------------------------


def test_anonymous_is_sent_to_login(client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    response = client.get(reverse(URL))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert pjpixel_api.requests == []


def test_staff_without_view_permission_is_refused(
    client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    client.force_login(staff("nobody"))
    assert client.get(reverse(URL)).status_code == 403
    assert pjpixel_api.requests == []


def test_view_permission_is_enough(client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    client.force_login(staff("viewer", "view_conversionevent"))
    seed(pjpixel_api, 1)
    assert len(rows_of(get(client))) == 1


def test_the_changelist_links_here(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:django_pjpixel_conversionevent_changelist"))
    assert reverse(URL) in page.content.decode()


def test_events_view_in_swedish(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 2)
    with translation.override("sv"):
        page = get(admin_client)
        refused = get(admin_client, "?from=2025-01-01&to=2025-03-02")
        pjpixel_api.script(["timeout"])
        failed = get(admin_client)
    assert "Prisjakt-händelser" in page
    assert "Köp på den här sidan" in page
    assert "Sida 1" in page
    assert "Ordernummer" in page
    assert "högst 60 dagar" in refused
    assert "tog för lång tid" in failed
