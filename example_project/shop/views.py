"""The shop: products, a session cart, checkout, a fake payment provider and its webhook."""

from __future__ import annotations

import hmac
import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from django_pjpixel import attach_click
from django_pjpixel.attribution import forget_click
from django_pjpixel.models import ConversionEvent
from shop.consent import CONSENT_COOKIE, CONSENT_MAX_AGE
from shop.models import Order, OrderLine, Product
from shop.signals import order_paid

logger = logging.getLogger("shop")

CART_KEY = "cart"


def _safe_next(request: HttpRequest, fallback: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or fallback
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _cart(request: HttpRequest) -> dict[str, int]:
    cart = request.session.get(CART_KEY)
    return dict(cart) if isinstance(cart, dict) else {}


@require_GET
def product_list(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/product_list.html", {"products": Product.objects.all()})


@require_POST
def consent(request: HttpRequest) -> HttpResponse:
    """Store the visitor's choice, then go back to the page (its ``?pjclid=`` included).

    The click is kept only on the redirect after a "yes": before it, the
    consent hook said no and the middleware let the click id pass by.
    """
    choice = "yes" if request.POST.get("choice") == "yes" else "no"
    if choice == "no":
        forget_click(request)  # a withdrawn consent also drops what was kept
    response = redirect(_safe_next(request))
    response.set_cookie(CONSENT_COOKIE, choice, max_age=CONSENT_MAX_AGE, samesite="Lax")
    return response


@require_POST
def cart_add(request: HttpRequest, product_id: int) -> HttpResponse:
    product = get_object_or_404(Product, pk=product_id)
    cart = _cart(request)
    cart[str(product.pk)] = cart.get(str(product.pk), 0) + 1
    request.session[CART_KEY] = cart
    return redirect("shop:cart")


@require_GET
def cart_view(request: HttpRequest) -> HttpResponse:
    cart = _cart(request)
    products = Product.objects.in_bulk([int(pk) for pk in cart])
    lines = [
        {"product": products[int(pk)], "quantity": qty, "subtotal": products[int(pk)].price * qty}
        for pk, qty in cart.items()
        if int(pk) in products
    ]
    total = sum((line["subtotal"] for line in lines), Decimal("0"))
    return render(request, "shop/cart.html", {"lines": lines, "total": total})


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    """Create the unpaid order and keep the visitor's click with it.

    Payment is confirmed later by the provider's webhook, which has no visitor
    session: ``attach_click`` is what lets that webhook's purchase find the click.
    """
    cart = _cart(request)
    products = Product.objects.in_bulk([int(pk) for pk in cart])
    if not products:
        return redirect("shop:products")
    with transaction.atomic():
        order = Order.objects.create(currency=next(iter(products.values())).currency)
        total = Decimal("0")
        for pk, qty in cart.items():
            product = products.get(int(pk))
            if product is None or qty < 1:
                continue
            OrderLine.objects.create(
                order=order, product=product, quantity=qty, price=product.price
            )
            total += product.price * qty
        order.total = total
        order.save(update_fields=["total"])
        attach_click(request, str(order.pk))
    request.session[CART_KEY] = {}
    return redirect("shop:fakepay", order_id=order.pk)


@require_GET
def fakepay(request: HttpRequest, order_id: int) -> HttpResponse:
    """The "payment provider's" page; its form posts to the shop's webhook."""
    order = get_object_or_404(Order, pk=order_id)
    return render(
        request,
        "shop/fakepay.html",
        {
            "order": order,
            "token": settings.DEMO_PAYMENT_TOKEN,
            "return_url": reverse("shop:order", args=[order.pk]),
        },
    )


def mark_paid(order_id: int) -> Order | None:
    """Mark the order paid once, and send the shop's ``order_paid`` in the same transaction.

    The conditional ``UPDATE`` comes first: it is what makes a resent webhook a
    no-op on any database, and on SQLite it takes the write lock before any
    read, so this transaction never has to upgrade a read lock while the
    worker writes (SQLite answers that with "database is locked" at once).
    """
    with transaction.atomic():
        newly_paid = (
            Order.objects.filter(pk=order_id)
            .exclude(status=Order.Status.PAID)
            .update(status=Order.Status.PAID, paid_at=timezone.now())
        )
        order = Order.objects.filter(pk=order_id).first()
        if order is not None and newly_paid:
            order_paid.send(sender=Order, order=order)
            logger.info("order %s paid (%s %s)", order.pk, order.total, order.currency)
    return order


@csrf_exempt
@require_POST
def payment_webhook(request: HttpRequest) -> HttpResponse:
    """The provider's server-to-server call: no visitor session, a shared token instead.

    Idempotent: providers resend webhooks, and a paid order stays paid once.
    """
    token = request.POST.get("token", "")
    if not hmac.compare_digest(token.encode(), settings.DEMO_PAYMENT_TOKEN.encode()):
        return HttpResponseForbidden("bad token")
    try:
        order_id = int(request.POST.get("order_id", ""))
    except ValueError:
        return JsonResponse({"error": "order_id must be a number"}, status=400)
    order = mark_paid(order_id)
    if order is None:
        return JsonResponse({"error": "no such order"}, status=404)
    return_url = request.POST.get("return_url")
    if return_url and url_has_allowed_host_and_scheme(
        return_url, allowed_hosts={request.get_host()}
    ):
        return redirect(return_url)
    return JsonResponse({"order": order.pk, "status": order.status})


@require_GET
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=order_id)
    event = ConversionEvent.objects.filter(order_id=str(order.pk)).first()
    return render(request, "shop/order.html", {"order": order, "event": event})
