"""The deployment tests' shop: a landing page, a payment, and what the ledger holds.

Served by gunicorn or uvicorn (``deploy_app``) with ``deploy_settings``. A
visitor lands with ``?pjclid=`` (the middleware keeps the click in the
session), then pays: the view marks the order paid and reports it in one
transaction, as a shop's payment view does. ``/backlog/`` writes rows as an
outage leaves them (pending, never published); ``/rows/`` shows the ledger to
the test, which has no connection to this database of its own.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from django_pjpixel import track_purchase
from django_pjpixel.models import ConversionEvent
from tests.integration.faults_harness import due_rows


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
    created = due_rows(int(request.GET["count"]), request.GET["prefix"])
    return JsonResponse({"created": len(created)})


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
