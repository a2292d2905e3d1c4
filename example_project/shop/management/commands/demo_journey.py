"""``manage.py demo_journey --visitors N``: shoppers end to end, then what Prisjakt got.

Each visitor lands (most with a Prisjakt click id), makes a cookie choice,
fills a cart, checks out and pays through the fake provider's webhook (a
client without the visitor's cookies, as a provider's server would be). The
real Celery worker delivers; the events are then read back from the API
emulator's listing, and the command prints a table. Exit status 0 only when
every attributable order reached Prisjakt exactly once and nothing else did.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import PrisjaktAPIError
from django_pjpixel.models import FINAL_STATUSES, ConversionEvent
from shop.models import Product

# Visitor kinds, in turn: who should be attributed and who should not.
CLICK = "click, consent"
NO_CLICK = "no click"
REFUSED = "click, consent refused"
KINDS = (CLICK, CLICK, NO_CLICK, REFUSED)


@dataclass
class Visit:
    kind: str
    click_id: str | None
    order_id: str = ""

    @property
    def attributable(self) -> bool:
        return self.kind == CLICK


def new_click_id() -> str:
    return f"{uuid.uuid4()}_{secrets.token_hex(8)}"


class Command(BaseCommand):
    help = "Drive N visitors through landing, checkout and payment; check what Prisjakt received."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--visitors", type=int, default=12)
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="seconds to wait for delivery"
        )

    def handle(self, *args: Any, visitors: int, timeout: float, **options: Any) -> None:
        if visitors < 1:
            raise CommandError("--visitors must be at least 1")
        products = list(Product.objects.all()[:3])
        if not products:
            raise CommandError("no products: run manage.py migrate first")
        api = PrisjaktClient()
        started = timezone.now()
        self.stdout.write(f"Journey: {visitors} visitors, Prisjakt API at {api.api_url}")
        for name in ("django_pjpixel", "shop"):  # the table says it all
            logging.getLogger(name).setLevel(logging.WARNING)

        visits = [self.visit(i, products) for i in range(visitors)]
        ours = {visit.order_id: visit for visit in visits}
        paid_at = time.monotonic()
        pending = self.wait_for_delivery(set(ours), timeout)
        waited = time.monotonic() - paid_at

        events = self.read_back(api, started - timedelta(minutes=5))
        seen = Counter(
            str(e.get("external_event_id")) for e in events if e.get("external_event_id") in ours
        )
        rows = {row.order_id: row for row in ConversionEvent.objects.filter(order_id__in=ours)}
        attributable = [v for v in visits if v.attributable]
        once = [v for v in attributable if seen[v.order_id] == 1]
        duplicates = sum(count - 1 for count in seen.values() if count > 1)
        unexpected = [oid for oid in seen if not ours[oid].attributable]
        wrong_click = [
            v.order_id
            for v in attributable
            if (row := rows.get(v.order_id)) is not None and row.click_id != v.click_id
        ]
        skipped = Counter(
            row.skip_reason or "(no reason)"
            for row in rows.values()
            if row.status == ConversionEvent.Status.SKIPPED
        )
        statuses = Counter(row.status for row in rows.values())

        self.stdout.write("")
        self.stdout.write(f"{'visitor':<24}  {'orders':>6}  {'sent':>4}  skipped (reason)")
        for kind in dict.fromkeys(KINDS):
            mine = [rows.get(v.order_id) for v in visits if v.kind == kind]
            if not mine:
                continue
            sent = sum(1 for row in mine if row and row.status == ConversionEvent.Status.SENT)
            reasons = Counter(
                row.skip_reason
                for row in mine
                if row and row.status == ConversionEvent.Status.SKIPPED
            )
            why = ", ".join(f"{count} ({reason})" for reason, count in reasons.items()) or "-"
            self.stdout.write(f"{kind:<24}  {len(mine):>6}  {sent:>4}  {why}")
        self.stdout.write("")

        table: list[tuple[str, object]] = [
            ("orders paid", len(visits)),
            ("attributable (click + consent)", len(attributable)),
            ("events delivered (emulator listing)", sum(seen.values())),
            ("attributable delivered exactly once", f"{len(once)} / {len(attributable)}"),
        ]
        table += [(f"skipped: {reason}", count) for reason, count in sorted(skipped.items())]
        table += [
            ("duplicates", duplicates),
            ("non-attributable orders at Prisjakt", len(unexpected)),
            ("attributed to the wrong click", len(wrong_click)),
            (f"not final after {timeout:.0f} s", len(pending)),
            ("seconds from last payment to all final", f"{waited:.1f}"),
            ("outbox statuses", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))),
        ]
        width = max(len(label) for label, _ in table)
        self.stdout.write("-" * (width + 12))
        for label, value in table:
            self.stdout.write(f"{label:<{width}}  {value}")
        self.stdout.write("-" * (width + 12))

        ok = len(once) == len(attributable) and not duplicates and not unexpected
        ok = ok and not wrong_click
        if not ok:
            raise CommandError("FAILED: not every attributable order was delivered exactly once")
        self.stdout.write(self.style.SUCCESS("OK: every attributable order delivered once"))

    def visit(self, index: int, products: list[Product]) -> Visit:
        kind = KINDS[index % len(KINDS)]
        visit = Visit(kind, None if kind == NO_CLICK else new_click_id())
        browser = Client()
        landing = reverse("shop:products")
        if visit.click_id:
            landing += f"?pjclid={visit.click_id}"
        self.expect(browser.get(landing), 200, "landing")
        choice = "no" if kind == REFUSED else "yes"
        response = browser.post(
            reverse("shop:consent"), {"choice": choice, "next": landing}, follow=True
        )
        self.expect(response, 200, "consent")
        for product in products[: 1 + index % len(products)]:
            self.expect(browser.post(reverse("shop:cart_add", args=[product.pk])), 302, "cart")
        response = browser.post(reverse("shop:checkout"))
        self.expect(response, 302, "checkout")
        visit.order_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]

        provider = Client()  # the payment provider's server: none of the visitor's cookies
        payment = {"order_id": visit.order_id, "token": settings.DEMO_PAYMENT_TOKEN}
        webhook = reverse("shop:payment_webhook")
        self.expect(provider.post(webhook, payment), 200, "webhook")
        if index % 5 == 4:  # providers resend webhooks; the order is paid once
            self.expect(provider.post(webhook, payment), 200, "webhook resent")
        return visit

    def expect(self, response: Any, status: int, step: str) -> None:
        if response.status_code != status:
            raise CommandError(f"{step}: expected HTTP {status}, got {response.status_code}")

    def wait_for_delivery(self, order_ids: set[str], timeout: float) -> set[str]:
        """The orders whose outbox row is still not final after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            final = set(
                ConversionEvent.objects.filter(
                    order_id__in=order_ids, status__in=FINAL_STATUSES
                ).values_list("order_id", flat=True)
            )
            pending = order_ids - final
            if not pending or time.monotonic() > deadline:
                return pending
            time.sleep(0.25)

    def read_back(self, api: PrisjaktClient, since: Any) -> list[dict[str, Any]]:
        try:
            return list(api.iter_events(start=since, end=timezone.now() + timedelta(minutes=5)))
        except PrisjaktAPIError as err:
            raise CommandError(f"could not list the emulator's events: {err}") from err
