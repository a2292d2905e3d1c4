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


def restatement_of(
    sender: Any, order: Any, amount: Any, reason: str, **kwargs: Any
) -> dict[str, Any]:
    """django-pjpixel's restatement of one of our orders (sent with ``order_refunded``)."""
    cancelled = amount == 0
    return {
        "order_id": str(order.pk),
        "amount": amount,
        # A refund here gives money back and keeps the items; a cancellation has none left.
        "number_of_items": 0 if cancelled else order.number_of_items,
        "reason": reason,
    }


class ShopConfig(AppConfig):
    name = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The shop already announces paid orders with its own signal; one call
        # hooks django-pjpixel to it. The webhook sends order_paid inside the
        # transaction that marks the order paid, so the event row shares it.
        from django_pjpixel.signals import connect_order_signal, connect_restatement_signal
        from shop.models import Order
        from shop.signals import order_paid, order_refunded

        connect_order_signal(order_paid, purchase_of, sender=Order, dispatch_uid="shop.pjpixel")
        # Refunds and cancellations restate the purchase at Prisjakt the same way.
        connect_restatement_signal(
            order_refunded, restatement_of, sender=Order, dispatch_uid="shop.pjpixel.refunds"
        )
