"""Where a visitor's click waits for the checkout: the session, or a signed cookie.

``PJPIXEL["CLICK_STORE"]`` picks the store at each use (``current()``), so
``override_settings`` takes effect at once. Both keep the same thing, the
click id and when the shop captured it: ``{"id": click_id, "at": ISO 8601
time in UTC}``.

- ``"session"`` (the default): ``request.session[SESSION_KEY]``. Sessions
  must last the attribution window (check W003). Django flushes the session
  at logout; ``keep_at_logout`` puts the click back into the new one.
- ``"cookie"``: a cookie of its own, ``PJPIXEL["COOKIE_NAME"]``, signed with
  ``SECRET_KEY`` (``django.core.signing``, salted), HttpOnly, SameSite=Lax,
  ``Secure``, path and domain as the session cookie's, lasting what is left of
  the attribution window. No session and no database: a flood of made-up
  click ids costs nothing but the cookies sent back to their senders.

A store changes the response as well as the request (the cookie to set or
delete, the click to put back after a logout): it leaves that on the request
(``AFTER_VIEW``), and ``PjclidMiddleware`` applies it to the response
(``after_view``). Reads later in the same request see the change at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core import signing
from django.utils.cache import patch_cache_control

from django_pjpixel import times
from django_pjpixel.api.clickids import is_valid_click_id
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import PjpixelConfigurationError

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

SESSION_KEY = "pjpixel_click"
COOKIE_SALT = "django_pjpixel.stores.cookie"
# On the request: {store name: what to do to the response}, for PjclidMiddleware.
AFTER_VIEW = "_pjpixel_after_view"
KEEP_AT_LOGOUT_UID = "django_pjpixel.stores.keep_at_logout"

Stored = tuple[str, datetime]


class ResponseChange(Protocol):
    def __call__(self, request: HttpRequest, response: HttpResponseBase) -> None: ...


def as_data(click_id: str, captured_at: datetime) -> dict[str, str]:
    """What a store keeps: the click id, and its capture time in UTC."""
    at = times.aware(captured_at).astimezone(dt_timezone.utc).isoformat()
    return {"id": click_id, "at": at}


def from_data(data: object) -> Stored | None:
    """``(click id, aware capture time)`` from kept data; None for anything else.

    A capture time without a zone (written under ``USE_TZ = False`` by an
    older version) is in ``TIME_ZONE``.
    """
    if not isinstance(data, dict):
        return None
    click_id, at = data.get("id"), data.get("at")
    if not isinstance(click_id, str) or not is_valid_click_id(click_id) or not isinstance(at, str):
        return None
    try:
        captured_at = datetime.fromisoformat(at)
    except ValueError:
        return None
    return click_id, times.aware(captured_at)


class ClickStore(ABC):
    """One click per visitor, kept between the landing and the checkout."""

    name: str

    @abstractmethod
    def load(self, request: HttpRequest) -> Stored | None:
        """The visitor's click, or None (none kept, or what is kept is not a click)."""

    @abstractmethod
    def save(self, request: HttpRequest, click_id: str, captured_at: datetime) -> None:
        """Keep ``click_id`` (valid: the caller checked) as captured at ``captured_at``."""

    @abstractmethod
    def forget(self, request: HttpRequest) -> None:
        """Drop the visitor's click, if any."""

    def unusable(self, request: HttpRequest) -> str:
        """Why a click cannot be kept for ``request``; "" when it can."""
        return ""


class SessionClickStore(ClickStore):
    name = "session"

    def load(self, request: HttpRequest) -> Stored | None:
        session = getattr(request, "session", None)
        return None if session is None else from_data(session.get(SESSION_KEY))

    def save(self, request: HttpRequest, click_id: str, captured_at: datetime) -> None:
        request.session[SESSION_KEY] = as_data(click_id, captured_at)

    def forget(self, request: HttpRequest) -> None:
        _changes(request).pop(self.name, None)  # nothing to put back after a logout
        session = getattr(request, "session", None)
        if session is not None:
            session.pop(SESSION_KEY, None)

    def unusable(self, request: HttpRequest) -> str:
        if hasattr(request, "session"):
            return ""
        return "request.session is missing; put PjclidMiddleware after SessionMiddleware"


@dataclass(frozen=True)
class _PutBack:
    """The session's click, put into the session that replaced it at logout."""

    data: dict[str, Any]

    def __call__(self, request: HttpRequest, response: HttpResponseBase) -> None:
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY not in session:
            session[SESSION_KEY] = self.data


class CookieClickStore(ClickStore):
    name = "cookie"

    def load(self, request: HttpRequest) -> Stored | None:
        pending = _changes(request).get(self.name)
        if isinstance(pending, _CookieWrite):
            value = pending.value
        else:
            value = request.COOKIES.get(pjpixel_settings.COOKIE_NAME, "")
        if not value:
            return None
        try:
            data = signing.loads(value, salt=COOKIE_SALT)
        except signing.BadSignature:  # forged, another site's, or signed with an old key
            return None
        return from_data(data)

    def save(self, request: HttpRequest, click_id: str, captured_at: datetime) -> None:
        left = pjpixel_settings.ATTRIBUTION_WINDOW - (times.now() - times.aware(captured_at))
        value = signing.dumps(as_data(click_id, captured_at), salt=COOKIE_SALT)
        max_age = max(math.ceil(left.total_seconds()), 0)
        _change(request, self.name, _CookieWrite(value, max_age))

    def forget(self, request: HttpRequest) -> None:
        if pjpixel_settings.COOKIE_NAME in request.COOKIES or self.name in _changes(request):
            _change(request, self.name, _CookieWrite("", 0))


@dataclass(frozen=True)
class _CookieWrite:
    """The click cookie to set on the response; ``value`` "" deletes it."""

    value: str
    max_age: int

    def __call__(self, request: HttpRequest, response: HttpResponseBase) -> None:
        name = pjpixel_settings.COOKIE_NAME
        path, domain = settings.SESSION_COOKIE_PATH, settings.SESSION_COOKIE_DOMAIN
        if self.value:
            response.set_cookie(
                name,
                self.value,
                max_age=self.max_age,
                path=path,
                domain=domain,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
        else:
            response.delete_cookie(name, path=path, domain=domain, samesite="Lax")
        # One visitor's cookie: no shared cache may hand this response to another.
        patch_cache_control(response, private=True)


STORES: dict[str, ClickStore] = {
    store.name: store for store in (SessionClickStore(), CookieClickStore())
}


def current() -> ClickStore:
    """The store ``PJPIXEL["CLICK_STORE"]`` names."""
    name = pjpixel_settings.CLICK_STORE
    try:
        return STORES[name]
    except KeyError:
        raise PjpixelConfigurationError(
            f'PJPIXEL["CLICK_STORE"] is {name!r}: set it to "session" or "cookie".'
        ) from None


def after_view(request: HttpRequest, response: HttpResponseBase) -> None:
    """Apply to ``response`` what the stores left on ``request`` (``PjclidMiddleware``)."""
    for change in request.__dict__.pop(AFTER_VIEW).values():
        change(request, response)


def keep_at_logout(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``user_logged_out``: the session's click outlives the flush that follows the signal.

    A visitor who logs out between the landing and the payment is still
    attributed, as with the cookie store (whose cookie a logout leaves alone).
    """
    store = STORES.get(pjpixel_settings.CLICK_STORE)  # a wrong setting must not stop a logout
    if request is None or not isinstance(store, SessionClickStore):
        return
    session = getattr(request, "session", None)
    data = None if session is None else session.get(SESSION_KEY)
    if isinstance(data, dict) and from_data(data) is not None:
        _change(request, SessionClickStore.name, _PutBack(data))


def _changes(request: HttpRequest) -> dict[str, ResponseChange]:
    """What the stores left on ``request`` for its response (empty: nothing)."""
    changes: dict[str, ResponseChange] = request.__dict__.get(AFTER_VIEW, {})
    return changes


def _change(request: HttpRequest, store: str, change: ResponseChange) -> None:
    request.__dict__.setdefault(AFTER_VIEW, {})[store] = change
