"""The Oscar shop's catalogue and its customers' journeys, through Oscar's real views."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.test import Client
from django.urls import reverse
from oscar.core.loading import get_model
from oscar.test import factories

from tests.helpers import CLICK

Country = get_model("address", "Country")
Order = get_model("order", "Order")
Product = get_model("catalogue", "Product")

ADDRESS = {
    "first_name": "Kari",
    "last_name": "Nordmann",
    "line1": "Karl Johans gate 1",
    "line4": "Oslo",
    "postcode": "0154",
}


def stock_the_shop() -> tuple[Any, Any]:
    """Norway to ship to, and two products in stock (149.50 and 99 NOK) at one partner."""
    Country.objects.create(
        iso_3166_1_a2="NO", iso_3166_1_a3="NOR", name="Norway", is_shipping_country=True
    )
    headphones = factories.create_product(
        title="Headphones", price=Decimal("149.50"), num_in_stock=10, partner_name="Nordic AS"
    )
    cable = factories.create_product(
        title="Cable", price=Decimal("99.00"), num_in_stock=10, partner_name="Nordic AS"
    )
    return headphones, cable


def land(client: Client, product: Any, click: str = CLICK) -> None:
    """The visitor arrives from Prisjakt on a product page, ``?pjclid=`` in the URL."""
    response = client.get(f"{product.get_absolute_url()}?pjclid={click}")
    assert response.status_code == 200


def fill_basket(client: Client, lines: list[tuple[Any, int]]) -> None:
    for product, quantity in lines:
        response = client.post(
            reverse("basket:add", kwargs={"pk": product.pk}), {"quantity": quantity}
        )
        assert response.status_code == 302, response


def submit_details(client: Client, email: str | None = "kari@example.no") -> None:
    """Oscar's checkout up to the preview: gateway (guests), address, shipping, payment."""
    if email is not None:
        response = client.post(
            reverse("checkout:index"), {"username": email, "options": "anonymous"}
        )
        assert response.status_code == 302, response.context and response.context["form"].errors
    response = client.post(reverse("checkout:shipping-address"), ADDRESS)
    assert response.status_code == 302, response.context and response.context["form"].errors
    for step in ("checkout:shipping-method", "checkout:payment-method"):
        assert client.get(reverse(step)).status_code == 302
    assert client.get(reverse("checkout:payment-details")).status_code == 200
    assert client.post(reverse("checkout:preview")).status_code == 200


def place_order(client: Client) -> Any:
    """The "Place order" button of Oscar's preview page; returns the order it placed."""
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302, response
    assert response["Location"] == reverse("checkout:thank-you")
    return Order.objects.get(pk=client.session["checkout_order_id"])


def buy(client: Client, lines: list[tuple[Any, int]], email: str | None = "kari@example.no") -> Any:
    """A whole checkout: basket, details, "Place order". ``email=None``: signed in."""
    fill_basket(client, lines)
    submit_details(client, email)
    return place_order(client)


def order_number_in_checkout(client: Client) -> str:
    """The number Oscar chose for the order being paid (kept in the checkout session)."""
    return str(client.session["checkout_data"]["submission"]["order_number"])
