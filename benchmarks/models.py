"""The shop's side of the checkout benchmark: an order row (created by ``migrate --run-syncdb``)."""

from __future__ import annotations

from django.db import models


class BenchOrder(models.Model):
    number = models.CharField(max_length=40, blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    items = models.PositiveIntegerField()
    paid = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "benchmarks"

    def __str__(self) -> str:
        return self.number
