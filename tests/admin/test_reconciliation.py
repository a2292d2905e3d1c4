"""The admin's reconciliation page and CSV export, the mirror's changelist, the health band."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_pjpixel import health
from django_pjpixel.admin.mirror import SHOWN
from django_pjpixel.models import ConversionEvent, PrisjaktEvent
from django_pjpixel.record import sync
from django_pjpixel.record.ranges import ReconciliationForm
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.record.test_reconciliation import order

pytestmark = [pytest.mark.django_db]

URL = "admin:django_pjpixel_reconciliation"
CSV_URL = "admin:django_pjpixel_reconciliation_csv"


def staff(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_pjpixel", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def differing(pjpixel_api: PrisjaktEmulator) -> PrisjaktEmulator:
    order(pjpixel_api, "ok")
    order(pjpixel_api, "missing", listed=False)
    order(pjpixel_api, "cheaper", amount="500.00")
    pjpixel_api.change_event("cheaper", amount=450)
    pjpixel_api.add_foreign_event(
        external_event_id="=1+1", event_time=timezone.now() - timedelta(hours=1)
    )
    sync.sync_recent()
    return pjpixel_api


def count_of(page: str, category: str) -> int:
    match = re.search(
        rf'class="pjpixel-category-{category}[^"]*"[^>]*>[^<]*<span class="pjpixel-count">(\d+)',
        page,
    )
    assert match, category
    return int(match.group(1))


def test_the_page_counts_and_links_every_difference(
    admin_client: Client, differing: PrisjaktEmulator
) -> None:
    response = admin_client.get(reverse(URL))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Reconciliation</h1>" in page
    assert (count_of(page, "matched"), count_of(page, "amount_differs")) == (1, 1)
    assert (count_of(page, "missing_at_prisjakt"), count_of(page, "unknown_to_shop")) == (1, 1)
    assert count_of(page, "pending") == 0
    rows = re.findall(r'<tr class="pjpixel-difference pjpixel-(\w+)">(.*?)</tr>', page, re.S)
    assert [category for category, _ in rows] == [
        "amount_differs",
        "missing_at_prisjakt",
        "unknown_to_shop",
    ]
    cheaper = ConversionEvent.objects.get(order_id="cheaper")
    change = reverse("admin:django_pjpixel_conversionevent_change", args=(cheaper.pk,))
    assert f'<a href="{change}">cheaper</a>' in rows[0][1]
    assert "500 SEK, 2 items" in rows[0][1]
    assert "450 SEK, 2 items" in rows[0][1]
    assert "=1+1" in rows[2][1]
    assert "/change/" not in rows[2][1]  # nothing of the shop's to link to
    assert "Prisjakt's events as synced: " in page
    assert 'class="pjpixel-category-amount_differs differs"' in page
    assert 'class="pjpixel-category-matched"' in page


def test_the_csv_export_has_all_differences_with_safe_cells(
    admin_client: Client, differing: PrisjaktEmulator
) -> None:
    page = admin_client.get(reverse(URL)).content.decode()
    [href] = re.findall(r'<a class="button pjpixel-csv" href="([^"]+)"', page)
    response = admin_client.get(href.replace("&amp;", "&"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate()
    first = today - timedelta(days=6)
    assert response["Content-Disposition"] == (
        f'attachment; filename="pjpixel-reconciliation-{first}-{today}.csv"'
    )
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["order_id"] for row in rows] == ["cheaper", "missing", "'=1+1"]


def test_a_range_that_was_not_synced_says_so(
    admin_client: Client, differing: PrisjaktEmulator
) -> None:
    day = (timezone.localdate() - timedelta(days=40)).isoformat()
    page = admin_client.get(reverse(URL), {"from": day, "to": day}).content.decode()
    assert "have not been synced completely" in page
    assert '<ul class="pjpixel-categories"' not in page
    response = admin_client.get(reverse(CSV_URL), {"from": day, "to": day})
    assert response.status_code == 409
    assert "pjpixel_sync" in response.content.decode()


def test_wrong_dates_are_refused(admin_client: Client, differing: PrisjaktEmulator) -> None:
    page = admin_client.get(reverse(URL), {"from": "2025-03-02", "to": "2025-03-01"})
    assert "must not be before the start date" in page.content.decode()
    assert "Nothing was compared" in page.content.decode()
    assert admin_client.get(reverse(CSV_URL), {"from": "x", "to": "y"}).status_code == 409


def test_nothing_differs(admin_client: Client, pjpixel_api: PrisjaktEmulator) -> None:
    order(pjpixel_api, "ok")
    sync.sync_recent()
    page = admin_client.get(reverse(URL)).content.decode()
    assert "Nothing differs between the shop and Prisjakt in this range." in page
    assert "pjpixel-csv" not in page


def test_many_differences_are_shown_in_part(
    admin_client: Client, pjpixel_api: PrisjaktEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("django_pjpixel.admin.mirror.SHOWN", 2)
    for index in range(3):
        order(pjpixel_api, f"missing-{index}", listed=False)
    sync.sync_recent()
    page = admin_client.get(reverse(URL)).content.decode()
    assert page.count('<tr class="pjpixel-difference') == 2
    assert "The first 2 are shown; the CSV has all of them." in page
    assert SHOWN == 500


def test_the_default_range_follows_sync_days(pjpixel: dict[str, object]) -> None:
    pjpixel["SYNC_DAYS"] = 3
    today = timezone.localdate()
    form = ReconciliationForm.from_query({}, today)
    assert form.is_valid()
    assert form.cleaned_data["from"] == today - timedelta(days=2)
    form = ReconciliationForm.from_query({"from": "2025-01-01", "to": "2025-12-31"}, today)
    assert form.is_valid()  # no 60-day limit: the mirror is local


@pytest.mark.parametrize(
    ("codenames", "allowed"),
    [
        (("view_conversionevent", "view_prisjaktevent"), True),
        (("change_conversionevent", "view_prisjaktevent"), True),
        (("view_conversionevent",), False),
        (("view_prisjaktevent",), False),
    ],
)
def test_it_takes_both_sides_to_see_it(
    differing: PrisjaktEmulator, codenames: tuple[str, ...], allowed: bool
) -> None:
    client = staff("clerk", *codenames)
    assert (client.get(reverse(URL)).status_code == 200) is allowed
    assert (client.get(reverse(CSV_URL)).status_code == 200) is allowed
    index = client.get(reverse("admin:app_list", args=("django_pjpixel",)))
    if "view_prisjaktevent" in codenames and "view_conversionevent" in codenames:
        assert reverse(URL) in index.content.decode()


def test_anonymous_visitors_are_sent_to_the_login(client: Client) -> None:
    response = client.get(reverse(URL))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# -- the mirror's own changelist ----------------------------------------------------


def test_the_mirror_is_listed_read_only(admin_client: Client, differing: PrisjaktEmulator) -> None:
    changelist = reverse("admin:django_pjpixel_prisjaktevent_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "cheaper" in page
    assert "450 SEK" in page
    assert admin_client.get(reverse("admin:django_pjpixel_prisjaktevent_add")).status_code == 403
    event = PrisjaktEvent.objects.get(external_event_id="cheaper")
    detail = admin_client.get(
        reverse("admin:django_pjpixel_prisjaktevent_change", args=(event.pk,))
    ).content.decode()
    assert 'name="_save"' not in detail
    event.amount = None
    event.save()
    assert "450 SEK" not in admin_client.get(changelist, {"q": "cheaper"}).content.decode()


# -- the outbox changelist: the health summary and the band --------------------------


def test_the_outbox_shows_delivery_health(
    admin_client: Client, differing: PrisjaktEmulator
) -> None:
    changelist = reverse("admin:django_pjpixel_conversionevent_changelist")
    page = admin_client.get(changelist).content.decode()
    assert 'class="pjpixel-health"' in page
    assert 'role="alert"' not in page
    assert '<dd class="pjpixel-due-age">nothing due</dd>' in page
    assert reverse(URL) in page
    ConversionEvent.objects.filter(order_id="ok").update(
        status=ConversionEvent.Status.PENDING, next_attempt_at=timezone.now() - timedelta(hours=2)
    )
    page = admin_client.get(changelist).content.decode()
    assert 'class="pjpixel-health pjpixel-unhealthy"' in page
    assert "Delivery to Prisjakt needs attention" in page
    assert "An event has waited 2" in page
    assert '<dd class="pjpixel-failed-24h">0</dd>' in page


def test_a_new_install_is_not_synced_yet_until_a_sync_is_due(
    admin_client: Client, pjpixel_api: PrisjaktEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never synced, moments after the first migrate: no band until a sync is due."""
    changelist = reverse("admin:django_pjpixel_conversionevent_changelist")
    new = admin_client.get(changelist).content.decode()
    monkeypatch.setattr(health, "installed_at", lambda: timezone.now() - timedelta(hours=4))
    due = admin_client.get(changelist).content.decode()
    assert ("needs attention" in new, "needs attention" in due) == (False, True)
    assert '<dd class="pjpixel-last-sync">not synced yet</dd>' in new
    assert '<dd class="pjpixel-last-sync">never</dd>' in due
    assert "never been synced completely" in due
