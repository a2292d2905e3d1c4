"""The "Prisjakt events" view (``views.py``) with answers the seed's example does not show:
links written otherwise, hostile and broken answers, ranges at the ends of time."""

from __future__ import annotations

import html as htmllib
import re

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

URL = "admin:django_pjpixel_prisjakt_events"
SECRET = "s3cr3t-never-shown"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
EVENTS_URL = f"https://api.pj.nu/click-conversion/pixels/{PIXEL}/events"
ANY_LISTING = re.compile(re.escape(EVENTS_URL) + r"\?.*")


def get(client: Client, query: str = "") -> str:
    """The rendered view; never a 500, never the secret."""
    response = client.get(reverse(URL) + query)
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page
    return page


def nav_url(page: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" class="pjpixel-page-{rel}"', page)
    return htmllib.unescape(match.group(1)) if match else None


def test_page_links_with_the_default_port_written_out(
    admin_client: Client, api: responses.RequestsMock
) -> None:
    # Issue 11: page 1 linked https://api.pj.nu:443/...&page=2; the admin showed no links.
    link = (
        f'<https://api.pj.nu:443/click-conversion/pixels/{PIXEL}/events?page=2>; rel="next", '
        f'<https://API.pj.nu:443/click-conversion/pixels/{PIXEL}/events?page=3>; rel="last"'
    )
    api.get(ANY_LISTING, json=[], headers={"Link": link})
    page = get(admin_client)
    next_url, last_url = nav_url(page, "next"), nav_url(page, "last")
    assert next_url is not None
    assert next_url.endswith("page=2")
    assert last_url is not None
    assert last_url.endswith("page=3")


@pytest.mark.parametrize("bad_time", ["2025-02-30T10:00:00Z", "9999-12-31T23:30-05:00"])
def test_an_event_with_an_impossible_time_is_left_out_with_a_note(
    admin_client: Client, api: responses.RequestsMock, bad_time: str
) -> None:
    # Issue 11: such an event_time gave the admin a 500.
    events = [
        {
            "id": "bad-1",
            "external_event_id": "o-1",
            "event_name": "purchase",
            "event_time": bad_time,
            "data": {"amount": 10, "currency": "SEK"},
        },
        {
            "id": "good-1",
            "external_event_id": "o-2",
            "event_name": "purchase",
            "event_time": "2025-03-01T10:00:00Z",
            "data": {"amount": 20, "currency": "SEK"},
        },
    ]
    api.get(ANY_LISTING, json=events)
    page = get(admin_client, "?from=2025-03-01&to=2025-03-02")
    assert "o-2" in page
    assert "o-1" not in page
    assert "1 events were left out: their event_time is not a time (bad-1)." in page


@pytest.mark.parametrize(
    ("zone", "first", "last"),
    [
        ("Europe/Stockholm", "0001-01-01", "0001-01-05"),
        ("America/New_York", "9999-12-30", "9999-12-31"),
    ],
)
def test_a_range_past_the_ends_of_time_is_refused_in_the_form(
    admin_client: Client, api: responses.RequestsMock, zone: str, first: str, last: str
) -> None:
    # Issue 11: these ranges gave the admin a 500.
    with timezone.override(zone):
        page = get(admin_client, f"?from={first}&to={last}")
    assert "The dates must fall within the years 1 to 9999 in UTC." in page
    assert len(api.calls) == 0


def test_a_range_in_the_first_years_keeps_four_digit_years_in_its_links(
    admin_client: Client, api: responses.RequestsMock
) -> None:
    link = f'<{EVENTS_URL}?page=2>; rel="next"'
    api.get(ANY_LISTING, json=[], headers={"Link": link})
    with timezone.override("UTC"):
        page = get(admin_client, "?from=0999-01-01&to=0999-01-02")
    assert nav_url(page, "next") == reverse(URL) + "?from=0999-01-01&to=0999-01-02&page=2"
    assert "from=0999-01-01T00%3A00%3A00.000Z" in api.calls[0].request.url
