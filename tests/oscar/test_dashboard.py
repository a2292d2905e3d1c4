"""The Prisjakt page of Oscar's dashboard: who may see it, and what staff learn there."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.contrib.oscar.health import delivery_health
from tests.helpers import make_event

pytestmark = pytest.mark.django_db

PAGE = "pjpixel_dashboard:pjpixel-conversion-events"


def staff(*permissions: str) -> Any:
    user = get_user_model().objects.create_user(
        "operator", "operator@example.no", "secret", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return user


def page(client: Client, query: str = "") -> str:
    response = client.get(reverse(PAGE) + query)
    assert response.status_code == 200
    return response.content.decode()


def count_of(html: str, status: str) -> int:
    match = re.search(
        rf'pjpixel-status-{status}">[^<]*<span class="pjpixel-count">(\d+)</span>', html
    )
    assert match, f"no count for {status}"
    return int(match[1])


def test_a_visitor_who_is_not_signed_in_is_sent_to_the_dashboard_login(client: Client) -> None:
    response = client.get(reverse(PAGE))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("dashboard:login"))


def test_staff_without_the_permission_are_refused_and_see_no_menu_entry(client: Client) -> None:
    client.force_login(staff())
    assert client.get(reverse(PAGE)).status_code == 403
    dashboard = client.get(reverse("dashboard:index")).content.decode()
    assert reverse(PAGE) not in dashboard


def test_staff_who_may_view_conversion_events_find_the_page_in_the_menu(client: Client) -> None:
    client.force_login(staff("view_conversionevent"))
    dashboard = client.get(reverse("dashboard:index")).content.decode()
    assert f'href="{reverse(PAGE)}"' in dashboard
    assert "Prisjakt conversion tracking" in page(client)


def test_the_page_shows_each_event_its_status_and_the_delivery_health(
    admin_client: Client,
) -> None:
    now = timezone.now()
    sent = make_event("100001", status="sent", sent_at=now - timedelta(minutes=5))
    make_event("100002", status="pending", created_at=now - timedelta(hours=2))
    make_event("100003", status="skipped", click_id="", skip_reason="no click")
    failed = make_event("100004", status="failed", problem_title="Request validation failed")

    html = page(admin_client)
    assert (count_of(html, "sent"), count_of(html, "pending"), count_of(html, "failed")) == (
        1,
        1,
        1,
    )
    assert (count_of(html, "skipped"), count_of(html, "dead")) == (1, 0)
    assert "recorded 2\xa0hours ago" in html
    oldest = delivery_health(now)
    assert oldest.oldest_due_age == timedelta(hours=2)
    assert oldest.last_sent_at == sent.sent_at
    for order in ("100001", "100002", "100003", "100004"):
        assert f'data-order="{order}"' in html
    assert "no click" in html
    assert "Request validation failed" in html
    assert "1234.00 SEK" in html
    assert f'href="{reverse("dashboard:order-detail", kwargs={"number": "100004"})}"' in html
    admin_url = reverse("admin:django_pjpixel_conversionevent_change", args=(failed.pk,))
    assert f'href="{admin_url}"' in html
    assert f'href="{reverse("admin:django_pjpixel_conversionevent_changelist")}"' in html


def test_an_empty_outbox(admin_client: Client) -> None:
    assert "No conversion events." in page(admin_client)


def test_a_status_badge_shows_only_the_events_in_that_status(admin_client: Client) -> None:
    make_event("100001", status="sent")
    make_event("100004", status="failed")
    html = page(admin_client, "?status=failed")
    assert 'data-order="100004"' in html
    assert 'data-order="100001"' not in html
    assert count_of(html, "sent") == 1  # the summary still counts everything


def test_nothing_due_and_nothing_sent_yet(admin_client: Client) -> None:
    make_event("100001", status="pending", next_attempt_at=timezone.now() + timedelta(hours=1))
    health = delivery_health()
    assert (health.oldest_due_age, health.last_sent_at) == (None, None)
    assert health.counts["pending"] == 1
    html = page(admin_client)
    assert "none: nothing is waiting" in html
    assert "never" in html
    assert 'data-order="100001"' in html


@pytest.mark.urls("tests.oscar.urls_without_admin")
def test_without_the_django_admin_the_page_links_to_no_admin_page(admin_client: Client) -> None:
    make_event("100001", status="failed")
    html = page(admin_client)
    assert 'data-order="100001"' in html
    assert "/admin/" not in html
    assert "Open in the Django admin" not in html
