from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def purchase_of(sender: Any, order: Any, **kwargs: Any) -> dict[str, Any]:
    """django-pjpixel's purchase fields for one of our orders (sent with ``order_paid``)."""
    return {
        "order_id": str(order.pk),
        "amount": order.total,
        "currency": order.currency,
        "number_of_items": order.number_of_items,
    }


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The shop already announces paid orders with its own signal; one call
        # hooks django-pjpixel to it. The webhook sends order_paid inside the
        # transaction that marks the order paid, so the event row shares it.
        from django_pjpixel.signals import connect_order_signal
        from shop.models import Order
        from shop.signals import order_paid

        connect_order_signal(order_paid, purchase_of, sender=Order, dispatch_uid="shop.pjpixel")
