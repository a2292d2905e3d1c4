"""``PjclidMiddleware``: keeps the ``?pjclid=`` of a Prisjakt landing in the click store."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import SuspiciousOperation

from django_pjpixel import stores
from django_pjpixel.api.clickids import is_valid_click_id
from django_pjpixel.attribution import Click, has_consent, store_click
from django_pjpixel.stores import AFTER_VIEW

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger("django_pjpixel.middleware")

PARAM = "pjclid"
_NEEDLE = PARAM + "="
_LOG_EXCERPT = 40


class PjclidMiddleware:
    """Keeps the click id of a landing from Prisjakt (``?pjclid=...``) in the click store.

    Put it after ``SessionMiddleware``. The store is ``PJPIXEL["CLICK_STORE"]``:
    the session, or a signed cookie (``stores``). A request without ``pjclid``
    in its query string costs one substring test and one look at the
    request's attributes: the store is not read, so such responses get no
    ``Vary: Cookie`` and no session query. On a landing the value is checked
    by the click rule (``clickids``; of a repeated parameter the last value
    counts), consent is asked of ``PJPIXEL["CONSENT"]``, and the click is
    kept with its capture time; a newer click replaces an older one, junk
    never does, nor does a click of an odd shape replace a well-formed one.
    An invalid value or a refusal is logged at DEBUG and otherwise ignored:
    the landing page is always served, and a landing on a page that answers
    404 keeps the click all the same.

    After the view it writes to the response what a store left for it: the
    cookie store's cookie (set, or deleted by ``forget_click``), the session
    store's click put back after a logout flushed the session.

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
        response = self.get_response(request)
        if AFTER_VIEW in request.__dict__:
            stores.after_view(request, cast("HttpResponseBase", response))
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if is_landing(request):
            # Session backends and consent hooks may hit the database: run it where sync code may.
            await sync_to_async(capture_click)(request)
        response = await cast("Awaitable[HttpResponseBase]", self.get_response(request))
        if AFTER_VIEW in request.__dict__:
            stores.after_view(request, response)
        return response


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
    unusable = stores.current().unusable(request)
    if unusable:
        logger.warning("pjclid ignored: %s", unusable)
        return None
    if not has_consent(request):
        logger.debug("pjclid ignored: no consent")
        return None
    return store_click(request, value)
