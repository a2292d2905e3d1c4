from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from shop.models import Order, OrderLine, Product
from shop.signals import order_refunded


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "currency")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("pk", "status", "total", "currency", "created_at", "paid_at")
    list_filter = ("status",)
    inlines = (OrderLineInline,)
    actions = ("cancel", "refund_half")

    @admin.action(description="Cancel paid orders (Prisjakt: amount 0)", permissions=("change",))
    def cancel(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._refund(request, queryset, Order.Status.CANCELLED, Decimal(0), "cancelled by staff")

    @admin.action(description="Refund half of paid orders", permissions=("change",))
    def refund_half(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._refund(request, queryset, Order.Status.REFUNDED, Decimal("0.5"), "half refunded")

    def _refund(
        self,
        request: HttpRequest,
        queryset: QuerySet[Order],
        status: str,
        share: Decimal,
        reason: str,
    ) -> None:
        """Each paid order: its new status and the shop's ``order_refunded``, in one transaction.

        As with a payment, the conditional ``UPDATE`` comes first (on SQLite it
        takes the write lock before any read); django-pjpixel's restatement is
        written in the same transaction, and sent by ``deliver_due``.
        """
        for pk in queryset.filter(status=Order.Status.PAID).values_list("pk", flat=True):
            with transaction.atomic():
                if not Order.objects.filter(pk=pk, status=Order.Status.PAID).update(status=status):
                    continue
                order = Order.objects.get(pk=pk)
                amount = (order.total * share).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
                order_refunded.send(sender=Order, order=order, amount=amount, reason=reason)
            self.message_user(
                request,
                f"Order {pk}: {order.get_status_display().lower()}, {amount} {order.currency} "
                "left; Prisjakt is told at the next deliver_due.",
                messages.SUCCESS,
            )
