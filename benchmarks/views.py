"""The shop's views the benchmarks request: a page, and three ways to finish a paid order."""

from __future__ import annotations

from decimal import Decimal

import requests
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from benchmarks.models import BenchOrder
from django_pjpixel import track_purchase
from django_pjpixel.attribution import SESSION_KEY

TOTAL = Decimal("1499.00")
ITEMS = 2


def page(request: HttpRequest) -> HttpResponse:
    """A page that does nothing: the worst case for the middleware's share of the time."""
    return HttpResponse(b"<!doctype html><title>shop</title><p>products</p>")


def _paid_order(request: HttpRequest) -> BenchOrder:
    request.session.get("cart")  # a checkout reads the visitor's session anyway
    return BenchOrder.objects.create(total=TOTAL, items=ITEMS, paid=True)


@csrf_exempt
def checkout_baseline(request: HttpRequest) -> JsonResponse:
    """The order alone: what the checkout costs without any tracking."""
    with transaction.atomic():
        order = _paid_order(request)
    return JsonResponse({"order": order.pk})


@csrf_exempt
def checkout_pjpixel(request: HttpRequest) -> JsonResponse:
    """The order and ``track_purchase`` in its transaction (the click is in the session)."""
    with transaction.atomic():
        order = _paid_order(request)
        event = track_purchase(
            order_id=f"bench-{order.pk}",
            amount=order.total,
            currency="SEK",
            number_of_items=order.items,
            request=request,
        )
    return JsonResponse({"order": order.pk, "event": event.pk if event else None})


@csrf_exempt
def checkout_naive(request: HttpRequest) -> JsonResponse:
    """The naive alternative: the order, then a ``requests.post`` to the API inline."""
    with transaction.atomic():
        order = _paid_order(request)
    conf = settings.PJPIXEL
    response = requests.post(
        f"{conf['API_URL']}/pixels/{conf['PIXEL_ID']}/events",
        json={
            "event_name": "purchase",
            "event_time": timezone.now().isoformat(),
            "external_event_id": f"naive-{order.pk}",
            "signed_click_id": request.session[SESSION_KEY]["id"],
            "data": {"amount": int(order.total), "currency": "SEK", "number_of_items": order.items},
        },
        headers={"client-id": conf["CLIENT_ID"], "client-secret": conf["CLIENT_SECRET"]},
        timeout=(3.05, 10),
    )
    return JsonResponse({"order": order.pk, "api": response.status_code})
