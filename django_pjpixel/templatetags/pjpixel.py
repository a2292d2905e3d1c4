"""``{% pjpixel_script %}``, ``{% pjpixel_click_input %}``: the click of pages no server code sees.

A page served from a cache or a CDN never reaches ``PjclidMiddleware``.
Prisjakt's browser script, on every page, keeps a landing's click in the
browser; at checkout ``{% pjpixel_click_input %}`` posts it with the form
(filled by the shipped ``django_pjpixel/pjpixel.js``), and ``attach_click``
takes it when the click store has none::

    {% load pjpixel %}
    <head>... {% pjpixel_script %}</head>
    <form method="post">{% csrf_token %} {% pjpixel_click_input %} ...</form>

Both script tags carry the request's CSP nonce (Django 6.0's
``ContentSecurityPolicyMiddleware``, or django-csp's ``request.csp_nonce``).
"""

from __future__ import annotations

import importlib
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

from django_pjpixel.attribution import POST_FIELD, has_consent
from django_pjpixel.conf import pjpixel_settings

register = template.Library()

SHIPPED_SCRIPT = "django_pjpixel/pjpixel.js"

try:  # Django 6.0+; older versions have no CSP middleware of their own
    _django_csp: Any = importlib.import_module("django.middleware.csp")
except ImportError:
    _django_csp = None


@register.simple_tag(takes_context=True)
def pjpixel_script(context: template.Context, pixel: str = "") -> SafeString:
    """Prisjakt's script and ``pjpixel.init(pixel)`` (default: ``PIXEL_ID``), with consent only.

    Needs ``request`` in the context (the ``request`` context processor) to
    ask ``PJPIXEL["CONSENT"]``; without it the script is rendered only when
    no consent hook is set. Without consent only the shipped script is
    rendered, and it removes what Prisjakt's script kept in the browser: a
    visitor who withdraws consent is forgotten there too.
    """
    request = context.get("request")
    allowed = has_consent(request) if request is not None else not pjpixel_settings.CONSENT
    nonce = _nonce_attribute(request, context)
    shipped = static(SHIPPED_SCRIPT)
    if not allowed:
        return format_html('<script src="{}" defer{}></script>', shipped, nonce)
    return format_html(
        '<script src="{}" defer{}></script>\n'
        '<script src="{}" data-pjpixel-pixel="{}" defer{}></script>',
        pjpixel_settings.SCRIPT_URL,
        nonce,
        shipped,
        pixel or pjpixel_settings.PIXEL_ID,
        nonce,
    )


@register.simple_tag
def pjpixel_click_input() -> SafeString:
    """The checkout form's hidden ``pjpixel_click_id``, which the shipped script fills."""
    return format_html('<input type="hidden" name="{}" value="" data-pjpixel-click>', POST_FIELD)


def csp_nonce(request: Any, context: template.Context) -> str:
    """The request's CSP nonce, or ""; reading Django's lazy nonce makes it, for the header too."""
    value: Any = None
    if request is not None:
        get_nonce = getattr(_django_csp, "get_nonce", None)
        value = get_nonce(request) if get_nonce is not None else None
        if value is None:
            value = getattr(request, "csp_nonce", None)  # django-csp
    if value is None:
        value = context.get("csp_nonce")
    return "" if value is None else str(value)


def _nonce_attribute(request: Any, context: template.Context) -> SafeString:
    nonce = csp_nonce(request, context)
    return format_html(' nonce="{}"', nonce) if nonce else SafeString("")
