"""The visitor's cookie choice, and the hook django-pjpixel asks before storing a click."""

from __future__ import annotations

from django.http import HttpRequest

CONSENT_COOKIE = "shop_consent"
CONSENT_MAX_AGE = 60 * 60 * 24 * 365


def consent_choice(request: HttpRequest) -> str | None:
    """``"yes"``, ``"no"``, or None when the visitor has not chosen yet."""
    value = request.COOKIES.get(CONSENT_COOKIE)
    return value if value in ("yes", "no") else None


def pjpixel_allowed(request: HttpRequest) -> bool:
    """``PJPIXEL["CONSENT"]``: keep a Prisjakt click only after an explicit yes."""
    return consent_choice(request) == "yes"
