from __future__ import annotations

from django.http import HttpRequest

from shop.consent import consent_choice


def consent(request: HttpRequest) -> dict[str, object]:
    return {"consent_choice": consent_choice(request)}
