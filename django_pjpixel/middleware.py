"""``PjclidMiddleware``: keeps the ``?pjclid=`` of a Prisjakt landing in the session."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import SuspiciousOperation

from django_pjpixel.attribution import Click, has_consent, store_click
from django_pjpixel.payloads import is_valid_click_id

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger(__name__)

PARAM = "pjclid"
_NEEDLE = PARAM + "="
_LOG_EXCERPT = 40


class PjclidMiddleware:
    """Stores the click id of a landing from Prisjakt (``?pjclid=...``) in the session.

    Put it after ``SessionMiddleware``. A request without ``pjclid`` in its
    query string costs one substring test: the session is not read, so such
    responses get no ``Vary: Cookie`` and no session query. On a landing the
    value is checked (``[A-Za-z0-9_-]{1,128}``; of a repeated parameter the
    last value counts), consent is asked of ``PJPIXEL["CONSENT"]``, and the
    click is kept with its capture time; a newer click replaces an older one.
    An invalid value or a refusal is logged at DEBUG and otherwise ignored:
    the landing page is always served.

    Consent is the shop's legal responsibility: the shop and Prisjakt are
    joint controllers under GDPR Art. 26, and the click id may be stored only
    with the visitor's consent. Without a ``PJPIXEL["CONSENT"]`` hook every
    click is stored.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        if is_landing(request):
            capture_click(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if is_landing(request):
            # Session backends may hit the database: run it where sync code may.
            await sync_to_async(capture_click)(request)
        return await cast("Awaitable[HttpResponseBase]", self.get_response(request))


def is_landing(request: HttpRequest) -> bool:
    """Cheap pre-test on the raw query string; ``request.GET`` is parsed only if it passes."""
    return _NEEDLE in request.META.get("QUERY_STRING", "")


def capture_click(request: HttpRequest) -> Click | None:
    """Store the request's ``pjclid`` if valid and consented to; bad input never raises."""
    try:
        values = request.GET.getlist(PARAM)
    except SuspiciousOperation:  # e.g. more query fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        logger.debug("pjclid ignored: the query string could not be parsed")
        return None
    if not values:
        return None
    value = values[-1]
    if not is_valid_click_id(value):
        logger.debug(
            "pjclid ignored: not a click id (%d characters): %r",
            len(value),
            value[:_LOG_EXCERPT],
        )
        return None
    if not hasattr(request, "session"):
        logger.warning(
            "pjclid ignored: request.session is missing; put PjclidMiddleware after "
            "SessionMiddleware"
        )
        return None
    if not has_consent(request):
        logger.debug("pjclid ignored: no consent")
        return None
    return store_click(request, value)
