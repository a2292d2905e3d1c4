from __future__ import annotations

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.product_list, name="products"),
    path("consent/", views.consent, name="consent"),
    path("cart/", views.cart_view, name="cart"),
    path("cart/add/<int:product_id>/", views.cart_add, name="cart_add"),
    path("checkout/", views.checkout, name="checkout"),
    path("fakepay/<int:order_id>/", views.fakepay, name="fakepay"),
    path("payments/webhook/", views.payment_webhook, name="payment_webhook"),
    path("orders/<int:order_id>/", views.order_detail, name="order"),
]
