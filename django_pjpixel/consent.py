"""Ready ``PJPIXEL["CONSENT"]`` hooks: a cookie's value, or a django-cookie-consent group.

Each function returns a hook, a callable ``request -> bool`` to put in the
settings as it is::

    from django_pjpixel.consent import cookie_equals

    PJPIXEL = {..., "CONSENT": cookie_equals("consent", "yes")}

This module imports nothing of the app registry, so settings may import it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

from django_pjpixel.exceptions import PjpixelConfigurationError

if TYPE_CHECKING:
    from django.http import HttpRequest

ConsentHook = Callable[["HttpRequest"], bool]


def cookie_equals(name: str, value: str) -> ConsentHook:
    """A hook that allows the click when the request's cookie ``name`` is exactly ``value``.

    For a cookie banner of the shop's own that writes its choice to a
    cookie, e.g. ``consent=yes``. A missing cookie, or any other value, is no
    consent.
    """

    def allowed(request: HttpRequest) -> bool:
        return request.COOKIES.get(name) == value

    allowed.__qualname__ = f"cookie_equals({name!r}, {value!r})"
    return allowed


def cookie_consent_group(varname: str) -> ConsentHook:
    """A hook that allows the click when django-cookie-consent's group ``varname`` allows it.

    As the package itself decides for its cookies: an accepted group allows;
    a declined one never does; a group the visitor has not chosen for yet
    allows only with ``COOKIE_CONSENT_OPT_OUT = True``; and with the package
    turned off for the request (``COOKIE_CONSENT_ENABLED``) nothing is asked,
    so the click is allowed. The group must be an optional one: a required
    group, or one that does not exist (a typo, not created in the admin yet),
    never allows. Raises ``ImproperlyConfigured`` at
    once when django-cookie-consent is not installed.
    """
    if importlib.util.find_spec("cookie_consent") is None:
        raise PjpixelConfigurationError(
            "cookie_consent_group() needs django-cookie-consent: "
            "pip install django-cookie-consent, and add 'cookie_consent' to INSTALLED_APPS."
        )

    def allowed(request: HttpRequest) -> bool:
        # Imported here, at the first request: settings import this module
        # before the app registry that cookie_consent's models need is ready.
        from cookie_consent.cache import get_cookie_group
        from cookie_consent.util import get_cookie_value_from_request, is_cookie_consent_enabled

        if not is_cookie_consent_enabled(request):
            return True
        if get_cookie_group(varname) is None:
            return False
        accepted = get_cookie_value_from_request(request, varname)
        if accepted is None:
            return bool(getattr(settings, "COOKIE_CONSENT_OPT_OUT", False))
        return accepted

    allowed.__qualname__ = f"cookie_consent_group({varname!r})"
    return allowed
