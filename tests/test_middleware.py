from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, RequestFactory
from django.urls import path
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_pjpixel.attribution import SESSION_KEY
from django_pjpixel.middleware import PjclidMiddleware, capture_click
from django_pjpixel.stores import COOKIE_SALT

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"
NEWER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
CLICK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The documented shape, and a plausible click of another (the click rule, ``clickids``).
WELL_FORMED = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}_[0-9a-f]{16}"
)
PLAUSIBLE = re.compile(r"(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_-]{20,128}")


def landing(request: HttpRequest) -> HttpResponse:
    # Reading ``accessed`` does not itself access the session.
    return JsonResponse({"accessed": request.session.accessed})


async def async_landing(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"accessed": request.session.accessed})


urlpatterns = [
    path("landing/", landing),
    path("async-landing/", async_landing),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]


class Visitor:
    """One browser, through the sync or the async test client, on a sync or async view.

    Its click is kept in the session or in a cookie of its own (``store``).
    """

    def __init__(self, kind: str, store: str) -> None:
        self.kind = kind
        self.store = store
        self.client: Client | AsyncClient = AsyncClient() if kind.startswith("async") else Client()
        self.path = "/async-landing/" if kind.endswith("async view") else "/landing/"
        # The cookie the store writes to.
        self.cookie = "sessionid" if store == "session" else "pjpixel_click"

    def get(self, query: str = "") -> Any:  # the test clients' response
        url = f"{self.path}?{query}" if query else self.path
        if isinstance(self.client, AsyncClient):
            client = self.client

            async def fetch() -> Any:  # Django 4.2's AsyncClient.get is not a coroutine function
                return await client.get(url)

            response: Any = async_to_sync(fetch)()
        else:
            response = self.client.get(url)
        assert response.status_code == 200, response.content[:200]
        return response

    @property
    def stored(self) -> Any:
        if self.store == "session":
            return self.client.session.get(SESSION_KEY)
        cookie = self.client.cookies.get(self.cookie)
        if cookie is None or not cookie.value:
            return None
        return signing.loads(cookie.value, salt=COOKIE_SALT)

    def land(self, click_id: str) -> dict[str, str]:
        self.get(urlencode({"pjclid": click_id}))
        stored = self.stored
        assert stored["id"] == click_id
        return stored  # type: ignore[no-any-return]


@pytest.fixture(params=["session", "cookie"], ids=["session store", "cookie store"])
def store(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.PJPIXEL = {**settings.PJPIXEL, "CLICK_STORE": request.param}
    return str(request.param)


@pytest.fixture(params=["sync client", "async client", "async client, async view"])
def visitor(request: pytest.FixtureRequest, store: str) -> Visitor:
    return Visitor(request.param, store)


@pytest.fixture
def consent(settings: Any) -> Callable[[Any], None]:
    def set_hook(hook: Any) -> None:
        settings.PJPIXEL = {**settings.PJPIXEL, "CONSENT": hook}

    return set_hook


def refuse(request: HttpRequest) -> bool:
    return False


def allow(request: HttpRequest) -> bool:
    return True


def broken(request: HttpRequest) -> bool:
    raise RuntimeError("consent backend down")


async def asynchronous(request: HttpRequest) -> bool:
    return True


# --- capture ---------------------------------------------------------------


def test_landing_stores_click_and_capture_time(visitor: Visitor) -> None:
    before = timezone.now()
    visitor.get(f"pjclid={CLICK}&utm_source=prisjakt")
    after = timezone.now()

    stored = visitor.stored
    assert set(stored) == {"id", "at"}
    assert stored["id"] == CLICK
    captured_at = datetime.fromisoformat(stored["at"])
    assert before <= captured_at <= after


def test_newer_click_replaces_older(visitor: Visitor) -> None:
    visitor.land(CLICK)
    visitor.land(NEWER)
    assert visitor.stored["id"] == NEWER


def test_same_click_again_keeps_first_capture_time(visitor: Visitor) -> None:
    first = visitor.land(CLICK)
    response = visitor.get(f"pjclid={CLICK}")
    assert visitor.stored == first
    assert visitor.client.cookies[visitor.cookie].value  # the store still holds it
    assert visitor.cookie not in response.cookies  # not rewritten


def test_repeated_parameter_uses_last_value(visitor: Visitor) -> None:
    visitor.get(f"pjclid=bad;value&pjclid={NEWER}")
    assert visitor.stored["id"] == NEWER


@pytest.mark.parametrize(
    "query",
    ["", "q=shoes", "xpjclid=abc", "pjclid", "PJCLID=abc"],
    ids=["none", "other", "suffix", "no-equals", "upper"],
)
def test_without_pjclid_the_session_is_not_touched(
    visitor: Visitor, query: str, django_assert_num_queries: Any
) -> None:
    visitor.land(CLICK)  # a returning visitor: a session cookie, a stored session
    with django_assert_num_queries(0):
        response = visitor.get(query)
    assert response.json() == {"accessed": False}
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies


def test_first_visit_without_pjclid_creates_no_session(visitor: Visitor) -> None:
    response = visitor.get("q=shoes")
    assert response.json() == {"accessed": False}
    assert not response.has_header("Vary")
    assert not visitor.client.cookies


# --- rejection ---------------------------------------------------------------

REJECTED = {
    "10kB": "pjclid=" + "a" * 10_240,
    "129 chars": "pjclid=" + "a" * 129,
    "crlf": "pjclid=%0D%0A",
    "crlf inside": f"pjclid={CLICK[:10]}%0D%0ASet-Cookie:%20x=1",
    "unicode": "pjclid=" + quote("åäö-Ω"),
    "raw unicode": "pjclid=" + "å" * 3,
    "semicolon": f"pjclid={CLICK[:10]};{CLICK[10:]}",
    "encoded semicolon": f"pjclid={CLICK[:10]}%3B",
    "empty": "pjclid=",
    "space": f"pjclid=%20{CLICK}",
    "null byte": f"pjclid={CLICK}%00",
    "mixed, last bad": f"pjclid={NEWER}&pjclid=bad%0A",
    "mixed, last empty": f"pjclid={NEWER}&pjclid=",
}


@pytest.mark.parametrize("query", REJECTED.values(), ids=REJECTED.keys())
def test_invalid_value_is_ignored_and_earlier_click_survives(visitor: Visitor, query: str) -> None:
    earlier = visitor.land(CLICK)
    visitor.get(query)  # asserts 200
    assert visitor.stored == earlier


@pytest.mark.parametrize("query", REJECTED.values(), ids=REJECTED.keys())
def test_invalid_value_is_never_stored(visitor: Visitor, query: str) -> None:
    visitor.get(query)
    assert visitor.stored is None


def test_rejection_is_logged_at_debug_without_the_full_value(
    visitor: Visitor, caplog: pytest.LogCaptureFixture
) -> None:
    value = "x" * 10_000 + ";"
    caplog.set_level(logging.DEBUG, logger="django_pjpixel")
    visitor.get(urlencode({"pjclid": value}))

    records = [r for r in caplog.records if r.name == "django_pjpixel.middleware"]
    assert [r.levelno for r in records] == [logging.DEBUG]
    message = records[0].getMessage()
    assert "10001 characters" in message
    assert "x" * 40 in message
    assert "x" * 41 not in message
    assert visitor.stored is None


def test_too_many_query_fields_is_ignored(visitor: Visitor, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = f"pjclid={CLICK}&" + "&".join(f"f{i}=1" for i in range(20))
    visitor.get(query)  # the view does not read GET: still a 200
    assert visitor.stored is None


# --- consent -------------------------------------------------------------------


@pytest.mark.parametrize("hook", [refuse, "tests.test_middleware.refuse"], ids=["callable", "path"])
def test_consent_refused_stores_nothing(
    visitor: Visitor, consent: Callable[[Any], None], hook: Any
) -> None:
    consent(hook)
    visitor.get(f"pjclid={CLICK}")
    assert visitor.stored is None


@pytest.mark.parametrize("hook", [allow, "tests.test_middleware.allow"], ids=["callable", "path"])
def test_consent_given_stores_click(
    visitor: Visitor, consent: Callable[[Any], None], hook: Any
) -> None:
    consent(hook)
    visitor.get(f"pjclid={CLICK}")
    assert visitor.stored["id"] == CLICK


@pytest.mark.parametrize(
    "hook",
    [broken, "tests.test_middleware.broken", "tests.test_middleware.missing", asynchronous],
    ids=["raises", "path raises", "not importable", "async hook"],
)
def test_failing_consent_hook_is_no_consent_and_no_500(
    visitor: Visitor, consent: Callable[[Any], None], hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    consent(hook)
    visitor.get(f"pjclid={CLICK}")  # asserts 200
    assert visitor.stored is None
    errors = [r for r in caplog.records if r.name == "django_pjpixel.attribution"]
    assert [r.levelno for r in errors] == [logging.ERROR]
    assert "no consent" in errors[0].getMessage()


def test_consent_refused_keeps_earlier_click(
    visitor: Visitor, consent: Callable[[Any], None]
) -> None:
    earlier = visitor.land(CLICK)
    consent(refuse)
    visitor.get(f"pjclid={NEWER}")
    assert visitor.stored == earlier


# --- the middleware itself -----------------------------------------------------


def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def _aok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_sync_and_async_modes() -> None:
    assert PjclidMiddleware.sync_capable
    assert PjclidMiddleware.async_capable
    assert not iscoroutinefunction(PjclidMiddleware(_ok))
    assert iscoroutinefunction(PjclidMiddleware(_aok))


def test_without_session_middleware_the_click_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = RequestFactory().get(f"/?pjclid={CLICK}")
    response = PjclidMiddleware(_ok)(request)
    assert isinstance(response, HttpResponse)
    assert response.status_code == 200
    assert [r.levelno for r in caplog.records if r.name == "django_pjpixel.middleware"] == [
        logging.WARNING
    ]


def _request(query_string: str) -> HttpRequest:
    request = RequestFactory().get("/", QUERY_STRING=query_string)
    request.session = SessionStore()
    return request


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.from_regex(CLICK_ID, fullmatch=True),
        st.from_regex(WELL_FORMED, fullmatch=True),
    )
)
def test_property_stored_only_when_shaped_like_a_click_id(value: str) -> None:
    request = _request(urlencode({"pjclid": value}))
    response = PjclidMiddleware(_ok)(request)
    assert isinstance(response, HttpResponse)
    stored = request.session.get(SESSION_KEY)
    plausible = PLAUSIBLE.fullmatch(value) and value.lower() not in ("undefined", "null", "none")
    if WELL_FORMED.fullmatch(value) or plausible:
        assert stored is not None
        assert stored["id"] == value
    else:
        assert stored is None


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_property_raw_query_strings_never_raise(raw: str) -> None:
    # WSGI servers hand over the query string as latin-1 text, undecoded.
    request = _request("pjclid=" + raw)
    capture_click(request)
    stored = request.session.get(SESSION_KEY)
    values = request.GET.getlist("pjclid")
    if stored is not None:
        assert CLICK_ID.fullmatch(stored["id"])
        assert stored["id"] == values[-1]


def test_capture_time_is_now() -> None:
    request = _request(f"pjclid={CLICK}")
    click = capture_click(request)
    assert click is not None
    assert click.captured_at is not None
    assert timezone.now() - click.captured_at < timedelta(seconds=5)
