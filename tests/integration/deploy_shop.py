"""The deployment tests' shop: a landing page, a payment, and what the ledger holds.

Served by gunicorn or uvicorn (``deploy_app``) with ``deploy_settings``. A
visitor lands with ``?pjclid=`` (the middleware keeps the click in the
session), then pays: the view marks the order paid and reports it in one
transaction, as a shop's payment view does. ``/backlog/`` writes rows as an
outage leaves them (pending, never published); ``/rows/`` shows the ledger to
the test, which has no connection to this database of its own.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from django_pjpixel import track_purchase
from django_pjpixel.models import ConversionEvent


def land(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"<!doctype html><title>shop</title><p>products</p>")


@csrf_exempt
def pay(request: HttpRequest, order_id: str) -> JsonResponse:
    with transaction.atomic():
        # As a payment webhook does: read the order, report it, mark it paid (a
        # Group stands in for the shop's order table).
        paid_before = Group.objects.filter(name=f"order {order_id}").exists()
        event = track_purchase(
            order_id=order_id,
            amount=Decimal("1234.50"),
            currency="SEK",
            number_of_items=2,
            request=request,
        )
        if not paid_before:
            Group.objects.create(name=f"order {order_id}")
    return JsonResponse({"status": event.status if event else None})


@csrf_exempt
def backlog(request: HttpRequest) -> JsonResponse:
    prefix, count = request.GET["prefix"], int(request.GET["count"])
    now = timezone.now()
    click = request.GET["click"]
    ConversionEvent.objects.bulk_create(
        ConversionEvent(
            pixel_id=settings.PJPIXEL["PIXEL_ID"],
            order_id=f"{prefix}{index}",
            event_time=now - timedelta(minutes=5),
            amount=Decimal("100.00") + index,
            currency="SEK",
            number_of_items=1,
            click_id=click,
            click_captured_at=now - timedelta(hours=1),
            created_at=now,
        )
        for index in range(count)
    )
    return JsonResponse({"created": count})


def rows(request: HttpRequest) -> JsonResponse:
    found = ConversionEvent.objects.filter(order_id__startswith=request.GET["prefix"])
    fields = ("order_id", "status", "remote_event_id", "attempts", "problem_title")
    return JsonResponse({"rows": list(found.order_by("order_id").values(*fields))})


urlpatterns = [
    path("", land),
    path("pay/<str:order_id>/", pay),
    path("backlog/", backlog),
    path("rows/", rows),
]
