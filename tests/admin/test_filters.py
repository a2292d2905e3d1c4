"""The outbox changelist's pixel filter: the markets' keys beside their pixels."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from django_pjpixel.markets import UNROUTED
from django_pjpixel.models import PrisjaktEvent
from tests.helpers import MARKETS, PIXEL_ID, make_event, markets

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
SE, NO = MARKETS["se"]["PIXEL_ID"], MARKETS["no"]["PIXEL_ID"]


def changelist(client: Client, query: str = "") -> str:
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_outbox_filters_by_pixel_named_by_market(
    admin_client: Client, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"] = markets("se", "no")
    make_event("order-se", pixel_id=SE)
    make_event("order-no", pixel_id=NO)
    make_event("order-before", pixel_id=PIXEL_ID)  # a pixel no market has (any more)
    make_event("order-eur", pixel_id=UNROUTED, status="failed")
    html = changelist(admin_client)
    assert "By pixel" in html
    for pixel, label in (
        (SE, f"se: {SE}"),
        (NO, f"no: {NO}"),
        (PIXEL_ID, PIXEL_ID),
        (UNROUTED, "(no market)"),
    ):
        assert f'href="?{urlencode({"pixel_id": pixel})}"' in html
        assert label in html
    html = changelist(admin_client, "?" + urlencode({"pixel_id": NO}))
    assert "order-no" in html
    assert "order-se" not in html
    assert "order-before" not in html
    html = changelist(admin_client, "?" + urlencode({"pixel_id": UNROUTED}))
    assert "order-eur" in html
    assert "order-no" not in html


def test_a_single_pixel_shop_has_no_pixel_filter(admin_client: Client) -> None:
    make_event("order-1")
    make_event("order-2")
    assert "By pixel" not in changelist(admin_client)


def test_rows_of_two_pixels_are_told_apart_without_markets(admin_client: Client) -> None:
    make_event("order-1")
    make_event("order-2", pixel_id=SE)
    html = changelist(admin_client)
    assert "By pixel" in html
    assert "order-1" not in changelist(admin_client, "?" + urlencode({"pixel_id": SE}))


def test_the_mirror_filters_by_pixel_named_by_market(
    admin_client: Client, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"] = markets("se", "no")
    for pixel, order_id in ((SE, "listed-se"), (NO, "listed-no")):
        PrisjaktEvent.objects.create(
            pixel_id=pixel,
            id=f"event-{order_id}",
            external_event_id=order_id,
            event_name="purchase",
            event_time=timezone.now(),
            amount=100,
            currency="SEK",
            number_of_items=1,
            first_seen=timezone.now(),
            last_seen=timezone.now(),
        )
    mirror = reverse("admin:django_pjpixel_prisjaktevent_changelist")
    html = admin_client.get(mirror).content.decode()
    assert f"no: {NO}" in html
    assert "listed-se" in html
    html = admin_client.get(mirror + "?" + urlencode({"pixel_id": NO})).content.decode()
    assert "listed-no" in html
    assert "listed-se" not in html
