"""Restatements in the admin: the event's page, the list, the filter, "Restate…", permissions."""

from __future__ import annotations

import html as html_text
import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from django_pjpixel.admin.restatements import restate_view
from django_pjpixel.ledger.restatements import NEVER_REPORTED, restate_purchase
from django_pjpixel.models import ConversionEvent, Restatement
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import MARKETS, PIXEL_ID, make_event, markets

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_pjpixel_conversionevent_changelist"
Status = Restatement.Status


def staff(client: Client, *codenames: str) -> Client:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_pjpixel", codename__in=codenames)
    )
    client.force_login(user)
    return client


def sent(order_id: str = "order-1", **fields: Any) -> ConversionEvent:
    return make_event(
        order_id, status=ConversionEvent.Status.SENT, api_amount=1234, attempts=1, **fields
    )


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def event_page(client: Client, event: ConversionEvent) -> str:
    return page(client, reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,)))


def text(html: str) -> str:
    """The page's words, tags and runs of white space folded to one space."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- what staff see -----------------------------------------------------------------


def test_the_event_page_lists_its_restatements_oldest_first(
    use_tz: bool, admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    event = sent()
    restate_purchase(order_id="order-1", amount=1000, number_of_items=1, reason="one returned")
    deliver_due()
    restate_purchase(order_id="order-1", amount=0, number_of_items=0, reason="all returned")
    shown = text(event_page(admin_client, event))
    assert "Restatements (refunds and cancellations)" in shown
    first = shown.index("one returned")
    assert first < shown.index("all returned")
    assert "1234.00 SEK, 2 → 1000.00 SEK, 1" in shown
    assert "1000.00 SEK, 1 → 0.00 SEK, 0" in shown
    assert "Sent" in shown[first:]
    assert "204" in shown[first:]
    assert "Amount now" in shown
    assert "1000.00 SEK, 1 item" in shown  # what Prisjakt has until the second is sent
    assert 'name="restatements-TOTAL_FORMS"' in event_page(admin_client, event)
    assert "Add another" not in shown


def test_the_list_shows_the_amount_now_beside_the_first(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    sent("order-1")
    sent("order-2")
    restate_purchase(order_id="order-1", amount=0, number_of_items=0)
    deliver_due()
    html = page(admin_client, reverse(CHANGELIST))
    restated_row = text(re.search(r"<tr>(?:(?!</tr>).)*order-1.*?</tr>", html, re.S)[0])
    other_row = text(re.search(r"<tr>(?:(?!</tr>).)*order-2.*?</tr>", html, re.S)[0])
    assert "1234.00 SEK 0.00 SEK, 0 items" in restated_row
    assert "1234.00 SEK - " in other_row
    assert ">Amount now<" in html.replace("\n", "")


def listed_orders(client: Client, query: str = "") -> list[str]:
    html = page(client, reverse(CHANGELIST) + query)
    return re.findall(r'<th class="field-order_id"><a href="[^"]+">([^<]+)</a>', html)


def test_the_restated_filter(admin_client: Client) -> None:
    sent("order-1")
    sent("order-2")
    restate_purchase(order_id="order-1", amount=0)
    assert sorted(listed_orders(admin_client)) == ["order-1", "order-2"]
    assert listed_orders(admin_client, "?restated=yes") == ["order-1"]
    assert listed_orders(admin_client, "?restated=no") == ["order-2"]
    assert "Restated (refunded or cancelled)" in page(admin_client, reverse(CHANGELIST))


def test_the_list_of_restatements_links_each_to_its_event(admin_client: Client) -> None:
    event = sent()
    restate_purchase(order_id="order-1", amount=0, reason="cancelled")
    restate_purchase(order_id="never-seen", amount=0)
    html = page(admin_client, reverse("admin:django_pjpixel_restatement_changelist"))
    url = reverse("admin:django_pjpixel_conversionevent_change", args=(event.pk,))
    assert f'<a href="{url}">order-1</a>' in html
    assert "never-seen" in html
    assert NEVER_REPORTED in text(html)
    row = Restatement.objects.get(order_id="order-1")
    url = reverse("admin:django_pjpixel_restatement_change", args=(row.pk,))
    detail = text(page(admin_client, url))
    assert "cancelled" in detail
    assert "1234.00 SEK, 2 → 0.00 SEK, 2" in detail


def headings(html: str) -> list[tuple[str, str]]:
    """The columns of a table (a list, an inline): each one's field and its heading."""
    cells = re.findall(r'<th[^>]*class="[^"]*column-(\w+)[^"]*"[^>]*>(.*?)</th>', html, re.S)
    return [(field, text(heading).strip()) for field, heading in cells]


def test_restatements_show_their_columns_in_this_order(admin_client: Client) -> None:
    # Each page lists its own fields, not the order in which the model declares them.
    event = sent()
    row = restate_purchase(order_id="order-1", amount=0, reason="cancelled")
    assert row is not None
    inline = [
        ("created_at", "Restated at"),
        ("reason", "Reason"),
        ("change", "Amount, items: before → after"),
        ("status", "Status"),
        ("skip_reason", "Why not sent"),
        ("attempts", "Attempts"),
        ("last_answer", "Last answer"),
        ("sent_at", "Sent at"),
        ("request_id", "Request id"),
    ]
    assert headings(event_page(admin_client, event)) == inline
    listed = page(admin_client, reverse("admin:django_pjpixel_restatement_changelist"))
    assert headings(listed) == [
        ("order", "Order"),
        ("change", "Amount, items: before → after"),
        ("status", "Status"),
        ("skip_reason", "Why not sent"),
        ("attempts", "Attempts"),
        ("last_answer", "Last answer"),
        ("created_at", "Restated at"),
        ("sent_at", "Sent at"),
    ]
    detail = page(admin_client, reverse("admin:django_pjpixel_restatement_change", args=(row.pk,)))
    assert re.findall(r"<label[^>]*>([^<]*):</label>", detail) == [
        "Order",
        "Pixel id",
        *(heading for _, heading in inline),
        "Problem detail",
        "Field errors",
    ]


def test_restatements_are_records_never_added_or_changed(admin_client: Client) -> None:
    sent()
    row = restate_purchase(order_id="order-1", amount=0)
    assert row is not None
    add = reverse("admin:django_pjpixel_restatement_add")
    assert admin_client.get(add).status_code == 403
    change = reverse("admin:django_pjpixel_restatement_change", args=(row.pk,))
    assert admin_client.post(change, {"amount": "5"}).status_code == 403
    delete = reverse("admin:django_pjpixel_restatement_delete", args=(row.pk,))
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Restatement.objects.get().amount == Decimal("0.00")


def test_staff_who_may_see_events_see_their_restatements(client: Client) -> None:
    event = sent()
    restate_purchase(order_id="order-1", amount=0, reason="cancelled")
    assert "cancelled" in event_page(staff(client, "view_conversionevent"), event)


# -- "Restate…" ---------------------------------------------------------------------


def restate(client: Client, *events: ConversionEvent, **form: Any) -> Any:
    data: dict[str, Any] = {"action": "restate", "_selected_action": [e.pk for e in events]}
    return client.post(reverse(CHANGELIST), {**data, **form}, follow=bool(form))


def test_restate_asks_then_restates_and_prisjakt_gets_it(
    admin_client: Client, pjpixel_api: PrisjaktEmulator
) -> None:
    first, second = sent("order-1"), sent("order-2")
    asked = restate(admin_client, first, second, index=0)  # from the changelist
    assert asked.status_code == 200
    html = asked.content.decode()
    assert "Restate conversion events" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert html.count('name="_selected_action"') == 2
    assert "1234.00 SEK" in html
    assert Restatement.objects.count() == 0

    done = restate(
        admin_client, first, second, apply="yes", amount="0", number_of_items="0", reason="fraud"
    )
    assert done.redirect_chain[-1][0] == reverse(CHANGELIST)
    assert "2 restatements recorded (2 pending)." in done.content.decode()
    assert set(Restatement.objects.values_list("reason", "status")) == {("fraud", Status.PENDING)}
    assert deliver_due() == {"restatement sent": 2}
    assert [e["data"]["amount"] for e in pjpixel_api.events] == [0, 0]


def test_restate_with_a_bad_value_shows_the_form_again(admin_client: Client) -> None:
    event = sent()
    response = restate(admin_client, event, apply="yes", amount="-1", number_of_items="")
    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 0." in response.content.decode()
    assert Restatement.objects.count() == 0


def test_restate_says_why_an_order_is_not_restated(admin_client: Client) -> None:
    event = make_event(status=ConversionEvent.Status.SKIPPED, skip_reason="no click")
    response = restate(admin_client, event, apply="yes", amount="0")
    assert (
        "Order order-1 is not restated at Prisjakt: the purchase was not sent to Prisjakt "
        "(skipped: no click)." in response.content.decode()
    )
    assert Restatement.objects.get().status == Status.UNSENDABLE


def test_restate_restates_the_selected_event_in_its_market(
    admin_client: Client, pjpixel: dict[str, Any]
) -> None:
    pjpixel["PIXELS"] = markets("se", "no")
    se, no = (MARKETS[key]["PIXEL_ID"] for key in ("se", "no"))
    in_se = sent("10041", pixel_id=se)
    sent("10041", pixel_id=no)  # the same order id in Norway stays as it is
    orphan = sent("10042", pixel_id=PIXEL_ID)  # the shop's pixel before it named its markets
    response = restate(admin_client, in_se, orphan, apply="yes", amount="0")
    shown = html_text.unescape(response.content.decode())
    assert "1 restatement recorded (1 pending)." in shown
    assert 'Order 10042 is not restated: no market of PJPIXEL["PIXELS"] has its pixel.' in shown
    assert list(Restatement.objects.values_list("event", "pixel_id", "status")) == [
        (in_se.pk, se, Status.PENDING)
    ]


def test_restate_needs_its_permission(client: Client) -> None:
    event = sent()
    operator = staff(client, "view_conversionevent", "change_conversionevent")
    html = page(operator, reverse(CHANGELIST))
    assert 'value="retry"' in html
    assert 'value="restate"' not in html
    forged = restate(operator, event, apply="yes", amount="0")
    assert forged.status_code == 403
    assert Restatement.objects.count() == 0


def test_restate_with_its_permission_and_a_csrf_token(pjpixel_api: PrisjaktEmulator) -> None:
    event = sent()
    client = staff(Client(enforce_csrf_checks=True), "view_conversionevent", "add_restatement")
    html = page(client, reverse(CHANGELIST))
    assert 'value="restate"' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    assert restate(client, event, apply="yes", amount="0").status_code == 403  # no token
    assert Restatement.objects.count() == 0
    done = restate(client, event, apply="yes", amount="10", csrfmiddlewaretoken=token[1])
    assert done.status_code == 200
    assert Restatement.objects.get().api_amount == 10


def test_the_action_checks_the_permission_itself(rf: Any) -> None:
    event = sent()
    request = rf.post("/", {"apply": "yes", "amount": "0"})
    request.user = User.objects.create_user("operator", is_staff=True)
    model_admin = admin.site._registry[ConversionEvent]
    with pytest.raises(PermissionDenied):
        restate_view(model_admin, request, ConversionEvent.objects.filter(pk=event.pk))
    assert Restatement.objects.count() == 0
