"""The click rule (issue 21, item 1): a well-formed click always wins, junk never enters.

Wherever a click enters (the landing's ``?pjclid=`` in either store, the posted
``pjpixel_click_id``, ``signed_click_id=``, ``attach_click``), a value that
cannot be a signed click is refused, and one of another plausible shape never
replaces a well-formed click; a purchase whose only click is of such a shape
is held (``skipped``, the click kept) and listed by the admin's filter.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.api.payloads import purchase_payload
from django_pjpixel.attribution import POST_FIELD, SESSION_KEY, SKIP_ODD_CLICK, click_for_order
from django_pjpixel.exceptions import InvalidInput
from django_pjpixel.ledger.purchases import attach_click, track_purchase
from django_pjpixel.models import ConversionEvent
from django_pjpixel.signals import order_completed
from tests import test_middleware
from tests.test_middleware import Visitor

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
NEWER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
# Of another plausible shape: an upper-cased click, a longer signature, a token.
ODD = "239CD31F-9D43-4CB4-B8DC-2057FE18C289_1B05FA7F1C34D125"
ODD_TOKENS = [ODD, CLICK + "00", "eyJhbGciOiJIUzI1NiJ9_4f9a2c1d7e"]
# What placeholders, templates and proxies put where a click was.
JUNK = [
    "not-a-click",
    "undefined",
    "null",
    "NULL",
    "None",
    "{pjclid}",
    "%7Bpjclid%7D",
    "PANTHEON_STRIPPED",
    "[pjclid]",
    "pjclid",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
]

pytestmark = [pytest.mark.urls("tests.test_middleware"), pytest.mark.django_db]
# The landing's fixtures: each store, through the sync and the async client.
store, visitor = test_middleware.store, test_middleware.visitor


def land(visitor: Visitor, value: str) -> None:
    visitor.get("pjclid=" + value)


# --- the landing, both stores, sync and async ------------------------------------------


@pytest.mark.parametrize("junk", JUNK)
def test_junk_landing_never_replaces_the_kept_click(visitor: Visitor, junk: str) -> None:
    visitor.land(CLICK)
    land(visitor, junk)
    assert visitor.stored["id"] == CLICK


@pytest.mark.parametrize("junk", JUNK)
def test_junk_landing_is_never_kept(visitor: Visitor, junk: str) -> None:
    land(visitor, junk)
    assert visitor.stored is None


def test_an_odd_click_never_replaces_a_well_formed_one(visitor: Visitor) -> None:
    visitor.land(CLICK)
    land(visitor, ODD)
    assert visitor.stored["id"] == CLICK


def test_an_odd_click_is_kept_when_it_is_all_there_is_and_a_real_one_replaces_it(
    visitor: Visitor,
) -> None:
    visitor.land(ODD)
    visitor.land(NEWER)
    assert visitor.stored["id"] == NEWER


# --- signed_click_id=, order_completed ------------------------------------------------


def request_with(click_id: str) -> HttpRequest:
    request = RequestFactory().post("/checkout/", {POST_FIELD: click_id})
    request.session = SessionStore()
    request.session[SESSION_KEY] = {"id": click_id, "at": timezone.now().isoformat()}
    return request


def store_only(click_id: str) -> HttpRequest:
    request = RequestFactory().get("/checkout/")
    request.session = SessionStore()
    request.session[SESSION_KEY] = {"id": click_id, "at": timezone.now().isoformat()}
    return request


@pytest.mark.parametrize("junk", ["undefined", "null", "PANTHEON_STRIPPED", "not-a-click"])
def test_a_junk_signed_click_id_gives_way_to_the_visitors_real_click(junk: str) -> None:
    event = track_purchase(
        order_id="o-1",
        amount=100,
        number_of_items=1,
        request=store_only(CLICK),
        signed_click_id=junk,
    )
    assert event is not None
    assert (event.status, event.click_id) == ("pending", CLICK)


def test_a_junk_signed_click_id_alone_is_no_click_and_never_sent() -> None:
    event = track_purchase(order_id="o-1", amount=100, number_of_items=1, signed_click_id="null")
    assert event is not None
    assert (event.status, event.click_id) == ("skipped", "")


def test_an_odd_signed_click_id_gives_way_to_a_well_formed_kept_click() -> None:
    order_completed.send(
        sender=None,
        order_id="o-1",
        amount=100,
        number_of_items=1,
        request=store_only(CLICK),
        signed_click_id=ODD,
    )
    event = ConversionEvent.objects.get()
    assert (event.status, event.click_id) == ("pending", CLICK)


@pytest.mark.urls("tests.urls")
def test_a_purchase_whose_only_click_is_odd_is_held_with_it(admin_client: Client) -> None:
    event = track_purchase(order_id="o-1", amount=100, number_of_items=1, signed_click_id=ODD)
    assert event is not None
    assert (event.status, event.click_id, event.skip_reason) == ("skipped", ODD, SKIP_ODD_CLICK)
    track_purchase(order_id="o-2", amount=100, number_of_items=1, signed_click_id=CLICK)

    url = reverse("admin:django_pjpixel_conversionevent_changelist")
    listed = admin_client.get(url, {"click": "odd"})
    assert listed.status_code == 200
    assert [row.order_id for row in listed.context["cl"].result_list] == ["o-1"]


def test_a_held_row_takes_a_well_formed_click_reported_later() -> None:
    track_purchase(order_id="o-1", amount=100, number_of_items=1, signed_click_id=ODD)
    event = track_purchase(order_id="o-1", amount=100, number_of_items=1, signed_click_id=CLICK)
    assert event is not None
    assert (event.status, event.click_id, event.skip_reason) == ("pending", CLICK, "")


def test_the_payload_refuses_junk() -> None:
    with pytest.raises(InvalidInput, match="signed_click_id"):
        purchase_payload(
            external_event_id="o-1",
            amount=1,
            currency="SEK",
            number_of_items=1,
            event_time=timezone.now(),
            signed_click_id="undefined",
        )


# --- attach_click and the posted click ------------------------------------------------


def posted(click_id: str) -> HttpRequest:
    request = RequestFactory().post("/checkout/", {POST_FIELD: click_id})
    request.session = SessionStore()
    return request


@pytest.mark.parametrize("junk", ["undefined", "null", "PANTHEON_STRIPPED"])
def test_a_posted_junk_click_is_never_attached(junk: str) -> None:
    assert attach_click(posted(junk), "o-1") is None
    assert click_for_order("o-1") is None


def test_a_posted_well_formed_click_wins_over_an_odd_kept_one() -> None:
    request = posted(CLICK)
    request.session[SESSION_KEY] = {"id": ODD, "at": timezone.now().isoformat()}
    click = attach_click(request, "o-1")
    assert click is not None
    assert click.click_id == CLICK


def test_an_attached_well_formed_click_is_never_replaced_by_an_odd_one() -> None:
    attach_click(posted(CLICK), "o-1")
    attach_click(posted(ODD), "o-1", now=timezone.now() + timedelta(minutes=1))
    attached = click_for_order("o-1")
    assert attached is not None
    assert attached.click_id == CLICK


def test_an_attached_odd_click_is_held_when_the_request_has_no_consent(
    pjpixel: dict[str, Any],
) -> None:
    attach_click(posted(ODD), "o-1")
    pjpixel["CONSENT"] = lambda request: False
    event = track_purchase(order_id="o-1", amount=100, number_of_items=1, request=store_only(NEWER))
    assert event is not None
    assert (event.status, event.click_id, event.skip_reason) == ("skipped", ODD, SKIP_ODD_CLICK)


def test_junk_attached_or_recorded_by_an_older_version_is_never_sent() -> None:
    from django_pjpixel.models import OrderClick
    from django_pjpixel.sending.delivery import deliver_event
    from tests.helpers import make_event

    OrderClick.objects.create(order_id="o-1", click_id="undefined", captured_at=timezone.now())
    event = track_purchase(order_id="o-1", amount=100, number_of_items=1)
    assert event is not None
    assert (event.status, event.click_id) == ("skipped", "")
    old = make_event("o-2", click_id="PANTHEON_STRIPPED")
    deliver_event(old.pk)
    old.refresh_from_db()
    assert old.status == "failed"
    assert "signed_click_id" in old.field_errors
