"""The "Prisjakt events" view (``views.py``) with answers the seed's example does not show:
links written otherwise, hostile and broken answers, ranges at the ends of time."""

from __future__ import annotations

import html as htmllib
import re

import pytest
import responses
from django.test import Client
from django.urls import reverse

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
