from __future__ import annotations

from django.contrib import admin

from shop.models import Order, OrderLine, Product


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
