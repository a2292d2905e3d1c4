"""The admin's pages for a shop with several markets: each page shows the market chosen.

The *Prisjakt events* view, the *Reconciliation* page (and its CSV) and the
outbox's delivery-health band, with ``PJPIXEL["PIXELS"]`` naming se and no:
a ``pixel=<key>`` select, the first market by default, each market read with
its own credentials and compared against its own pixel's mirror.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from django_pjpixel.health import delivery_health
from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent, PrisjaktSync
from django_pjpixel.record import sync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.pytest_plugin import emulator_from_settings
from django_pjpixel.testing.responses_adapter import EmulatorMock
from tests.admin.test_reconciliation import count_of
from tests.helpers import CLICK, MARKETS, complete_sync, make_event, markets

pytestmark = pytest.mark.django_db

SE, NO = MARKETS["se"]["PIXEL_ID"], MARKETS["no"]["PIXEL_ID"]
EVENTS = "admin:django_pjpixel_prisjakt_events"
RECONCILIATION = "admin:django_pjpixel_reconciliation"
RECONCILIATION_CSV = "admin:django_pjpixel_reconciliation_csv"
CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
SECRETS = [market["CLIENT_SECRET"] for market in MARKETS.values()]


@pytest.fixture
def api(pjpixel: dict[str, Any]) -> Iterator[PrisjaktEmulator]:
    """A shop in Sweden and Norway; one emulator holding both pixels and credentials."""
    pjpixel["PIXELS"] = markets("se", "no")
    with EmulatorMock(emulator_from_settings()) as emulator:
        yield emulator


def sold(api: PrisjaktEmulator, pixel: str, order_id: str, amount: int, currency: str) -> None:
    """An order sent to ``pixel`` three hours ago, and Prisjakt's record of it."""
    when = timezone.now() - timedelta(hours=3)
    make_event(
        order_id,
        pixel_id=pixel,
        event_time=when,
        amount=Decimal(amount),
        currency=currency,
        status=ConversionEvent.Status.SENT,
        sent_at=when,
    )
    api.add_event(
        pixel,
        event_time=when,
        external_event_id=order_id,
        amount=amount,
        currency=currency,
        number_of_items=2,
        signed_click_id=CLICK,
    )


def listed(api: PrisjaktEmulator) -> list[tuple[str, str]]:
    """Each request's path and client id."""
    return [(r.path, r.headers.get("client-id", "")) for r in api.requests]


def options(page: str) -> list[tuple[str, bool]]:
    """The market select's options: each key and whether it is the one selected."""
    select = re.search(r'<select name="pixel"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no market select"
    return [
        (value, bool(selected))
        for value, selected in re.findall(r'<option value="([^"]*)"( selected)?', select.group(1))
    ]


# -- the Prisjakt events view ----------------------------------------------------------


def test_events_of_the_first_market_by_default(admin_client: Client, api: PrisjaktEmulator) -> None:
    sold(api, SE, "order-se", 1000, "SEK")
    sold(api, NO, "order-no", 900, "NOK")
    page = admin_client.get(reverse(EVENTS)).content.decode()
    assert options(page) == [("se", True), ("no", False)]
    assert "order-se" in page
    assert "order-no" not in page
    assert listed(api) == [(f"/pixels/{SE}/events", "shop-se")]
    assert not any(secret in page for secret in SECRETS)


def test_events_of_the_market_chosen_with_its_own_credentials(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    sold(api, SE, "order-1", 1000, "SEK")
    sold(api, NO, "order-1", 900, "NOK")  # one order id in both markets
    page = admin_client.get(reverse(EVENTS), {"pixel": "no"}).content.decode()
    assert options(page) == [("se", False), ("no", True)]
    assert listed(api) == [(f"/pixels/{NO}/events", "shop-no")]
    assert f"Pixel {NO}." in page
    assert "900" in page
    # The listed event links to the Norwegian row, not the Swedish row of the same order id.
    norwegian = ConversionEvent.objects.get(pixel_id=NO)
    swedish = ConversionEvent.objects.get(pixel_id=SE)
    assert reverse("admin:django_pjpixel_conversionevent_change", args=(norwegian.pk,)) in page
    assert reverse("admin:django_pjpixel_conversionevent_change", args=(swedish.pk,)) not in page


def test_the_range_totals_are_the_chosen_markets(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    sold(api, SE, "order-se", 1000, "SEK")
    sold(api, NO, "order-no", 900, "NOK")
    page = admin_client.get(reverse(EVENTS), {"pixel": "no"}).content.decode()
    totals = page[page.index("pjpixel-range-totals") :]
    assert "NOK" in totals
    assert "SEK" not in totals


def test_page_links_keep_the_market(admin_client: Client, api: PrisjaktEmulator) -> None:
    api.page_size = 2
    for number in range(5):
        sold(api, NO, f"order-{number}", 900, "NOK")
    page = admin_client.get(reverse(EVENTS), {"pixel": "no"}).content.decode()
    links = re.findall(r'href="([^"]*prisjakt-events/\?[^"]*page=\d[^"]*)"', page)
    assert links
    for link in links:
        assert parse_qs(urlsplit(link.replace("&amp;", "&")).query)["pixel"] == ["no"]
    assert {path for path, _client in listed(api)} == {f"/pixels/{NO}/events"}


def test_a_key_that_is_no_market_is_an_error_on_the_select(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    page = admin_client.get(reverse(EVENTS), {"pixel": "dk"}).content.decode()
    assert "No events were fetched: choose one of the markets below." in page
    assert "Select a valid choice. dk is not one of the available choices." in page
    assert api.requests == []


def test_a_market_without_its_pixel_id_is_an_error_on_the_select(
    admin_client: Client, api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"]["no"]["PIXEL_ID"] = ""
    page = admin_client.get(reverse(EVENTS), {"pixel": "no"}).content.decode()
    assert options(page) == [("se", False), ("no", True)]
    assert '<option value="no" selected>no</option>' in page  # its key, not "(no market)"
    assert "PJPIXEL[&quot;PIXELS&quot;][&quot;no&quot;][&quot;PIXEL_ID&quot;] is not set" in page
    assert api.requests == []


def test_one_pixel_has_no_market_select(admin_client: Client, pjpixel_api: Any) -> None:
    page = admin_client.get(reverse(EVENTS)).content.decode()
    assert 'name="pixel"' not in page
    page = admin_client.get(reverse(RECONCILIATION)).content.decode()
    assert 'name="pixel"' not in page


# -- the reconciliation page -----------------------------------------------------------


def test_reconciliation_compares_the_chosen_markets_pixel(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    sold(api, SE, "order-se", 1000, "SEK")
    sold(api, NO, "order-no", 900, "NOK")
    three_hours_ago = timezone.now() - timedelta(hours=3)
    sent = ConversionEvent.Status.SENT
    make_event(
        "lost-no", pixel_id=NO, status=sent, sent_at=three_hours_ago, event_time=three_hours_ago
    )
    api.change_event("order-no", amount=800)
    sync.sync_every_market()
    page = admin_client.get(reverse(RECONCILIATION), {"pixel": "no"}).content.decode()
    assert options(page) == [("se", False), ("no", True)]
    assert count_of(page, "amount_differs") == 1
    assert count_of(page, "missing_at_prisjakt") == 1
    assert count_of(page, "matched") == 0
    assert "order-se" not in page
    csv_url = re.search(r'class="button pjpixel-csv" href="([^"]+)"', page)
    assert csv_url
    href = csv_url.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(href).query)["pixel"] == ["no"]
    response = admin_client.get(href)
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="pjpixel-reconciliation-no-')
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(body)))
    assert sorted(row[1] for row in rows[1:]) == ["lost-no", "order-no"]

    page = admin_client.get(reverse(RECONCILIATION)).content.decode()  # se, the first
    assert count_of(page, "matched") == 1
    assert count_of(page, "amount_differs") == 0


def test_reconciliation_of_a_market_never_synced_says_so(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    sold(api, SE, "order-se", 1000, "SEK")
    sync.sync_recent(pixel_id=SE)
    page = admin_client.get(reverse(RECONCILIATION), {"pixel": "no"}).content.decode()
    assert "have not been synced completely" in page
    assert "pjpixel-category-" not in page
    response = admin_client.get(reverse(RECONCILIATION_CSV), {"pixel": "no"})
    assert response.status_code == 409


def test_reconciliation_refuses_a_key_that_is_no_market(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    page = admin_client.get(reverse(RECONCILIATION), {"pixel": "xx"}).content.decode()
    assert "Nothing was compared: choose one of the markets below." in page


# -- delivery health -------------------------------------------------------------------


def synced(pixel: str, ago: timedelta) -> PrisjaktSync:
    return complete_sync(ago, pixel)


@pytest.mark.usefixtures("installed_long_ago")
def test_health_names_each_market_never_or_long_ago_synced(api: PrisjaktEmulator) -> None:
    synced(SE, timedelta(minutes=30))
    health = delivery_health()
    assert [(market, run is not None) for market, run in health.syncs] == [
        (f"se: {SE}", True),
        (f"no: {NO}", False),
    ]
    assert health.last_sync is None  # one market has never been synced
    [problem] = health.problems
    assert problem.startswith(f"Market no: {NO}: Prisjakt's events have never been synced")
    old = synced(NO, timedelta(days=3))
    health = delivery_health()
    assert health.last_sync == old
    [problem] = health.problems
    assert problem.startswith(f"Market no: {NO}: The last complete sync of Prisjakt's events was")
    assert delivery_health(pixel_id=SE).healthy


def test_health_of_one_market_counts_its_rows_only(api: PrisjaktEmulator) -> None:
    synced(SE, timedelta(minutes=30))
    synced(NO, timedelta(minutes=30))
    stuck = timezone.now() - timedelta(hours=2)
    make_event("stuck-no", pixel_id=NO, next_attempt_at=stuck, created_at=stuck)
    assert delivery_health(pixel_id=SE).healthy
    assert delivery_health(pixel_id=SE).due == 0
    norway = delivery_health(pixel_id=NO)
    assert norway.due == 1
    assert "An event has waited 2" in norway.problems[0]
    assert delivery_health().due == 1


@pytest.mark.usefixtures("installed_long_ago")
def test_the_band_follows_the_outbox_pixel_filter(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    synced(SE, timedelta(minutes=30))
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Delivery to Prisjakt needs attention" in page
    assert f"Market no: {NO}: Prisjakt&#x27;s events have never been synced" in page
    assert page.count('class="pjpixel-last-sync"') == 2
    page = admin_client.get(reverse(CHANGELIST), {"pixel_id": SE}).content.decode()
    assert 'role="alert"' not in page
    assert page.count('class="pjpixel-last-sync"') == 1
    page = admin_client.get(reverse(CHANGELIST), {"pixel_id": NO}).content.decode()
    assert f"Delivery to Prisjakt needs attention (no: {NO})" in page


def run_check(*args: str) -> tuple[str, str | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("pjpixel_check", *args, stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue() + err.getvalue(), str(error)
    return out.getvalue() + err.getvalue(), None


@pytest.mark.usefixtures("installed_long_ago")
def test_check_health_per_market(api: PrisjaktEmulator) -> None:
    synced(SE, timedelta(minutes=30))
    text, message = run_check("--health")
    assert message == "Delivery to Prisjakt is unhealthy."
    assert f"Last complete sync of Prisjakt's events, se: {SE}: " in text
    assert f"Last complete sync of Prisjakt's events, no: {NO}: never" in text
    text, message = run_check("--health", "--pixel", "se")
    assert message is None
    assert text.startswith("Market se")
    assert "no:" not in text
    _text, message = run_check("--health", "--pixel", "dk")
    assert message is not None
    assert "'dk' is not a market (markets: se, no)" in message
    assert api.requests == []


def test_check_of_one_market_asks_with_its_credentials_only(api: PrisjaktEmulator) -> None:
    text, message = run_check("--pixel", "no")
    assert message is None
    assert "Market no" in text
    assert "Market se" not in text
    assert {client for _path, client in listed(api)} == {"shop-no"}


def test_health_leaves_out_a_market_without_its_pixel_id(
    api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"]["no"]["PIXEL_ID"] = ""
    complete_sync(timedelta(minutes=30), SE)
    health = delivery_health()
    assert [market for market, _run in health.syncs] == [f"se: {SE}"]
    assert health.healthy


# -- the changelists per market -------------------------------------------------------


def test_the_outbox_filtered_to_one_market_counts_and_links_that_market(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    make_event("order-se-1", pixel_id=SE)
    make_event("order-se-2", pixel_id=SE)
    make_event("order-no", pixel_id=NO)
    page = admin_client.get(reverse(CHANGELIST), {"pixel_id": NO}).content.decode()
    pending = re.search(
        r'<a href="([^"]*)"[^>]*class="pjpixel-status-pending">[^<]*'
        r'<span class="pjpixel-count">(\d+)</span>',
        page,
    )
    assert pending
    assert parse_qs(urlsplit(pending.group(1).replace("&amp;", "&")).query)["pixel_id"] == [NO]
    assert pending.group(2) == "1"
    assert f'href="{reverse(EVENTS)}?pixel=no"' in page
    assert f'href="{reverse(RECONCILIATION)}?pixel=no"' in page
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse(EVENTS)}"' in page


def test_each_list_shows_the_market_of_its_rows(
    admin_client: Client, api: PrisjaktEmulator
) -> None:
    make_event("order-1", pixel_id=SE)
    make_event("order-1", pixel_id=NO)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "column-market" in page
    assert f"se: {SE}" in page
    assert f"no: {NO}" in page
    restate_purchase(order_id="order-1", amount=0, pixel="no")
    restatements = reverse("admin:django_pjpixel_restatement_changelist")
    page = admin_client.get(restatements).content.decode()
    assert "column-market" in page
    assert f'href="?{urlencode({"pixel_id": NO})}"' in page  # the pixel filter


def test_one_pixel_lists_have_no_market_column(admin_client: Client, pjpixel_api: Any) -> None:
    make_event("order-1")
    make_event("order-2", pixel_id="", status=ConversionEvent.Status.FAILED)  # of no market
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "column-market" not in page
    assert "By pixel" not in page
