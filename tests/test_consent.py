"""The ready consent hooks: a cookie's value, and django-cookie-consent's cookie group.

django-cookie-consent is the real package (a test dependency): its accept and
decline views set and clear its cookie, and its models hold the groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from cookie_consent.cache import delete_cache
from cookie_consent.models import Cookie, CookieGroup
from cookie_consent.views import CookieGroupDeclineView
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.test import Client, RequestFactory
from django.urls import include, path

from django_pjpixel import stores
from django_pjpixel.attribution import forget_click
from django_pjpixel.consent import cookie_consent_group, cookie_equals
from django_pjpixel.exceptions import PjpixelConfigurationError
from django_pjpixel.ledger.purchases import attach_click
from django_pjpixel.models import OrderClick

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def product(request: HttpRequest) -> HttpResponse:
    return HttpResponse("a product page")


def checkout(request: HttpRequest) -> JsonResponse:
    click = attach_click(request, "ORD-1")
    return JsonResponse({"attached": click.click_id if click else None})


class DeclineCookies(CookieGroupDeclineView):
    """The package's decline view, which also forgets the click (as the docs show, "Consent")."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().post(request, *args, **kwargs)
        if "marketing" in request.POST.getlist("cookie_groups") or request.POST.get("all_groups"):
            forget_click(request)
        return response


urlpatterns = [
    path("product/", product),
    path("checkout/", checkout),
    path("cookies/decline/", DeclineCookies.as_view(), name="cookie_consent_decline"),
    path("cookies/", include("cookie_consent.urls")),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]


def request_with(**cookies: str) -> HttpRequest:
    request = RequestFactory().get("/")
    request.COOKIES.update(cookies)
    return request


def kept(client: Client) -> str | None:
    """The click id in the cookie store's cookie, or None."""
    cookie = client.cookies.get("pjpixel_click")
    if cookie is None or not cookie.value:
        return None
    return str(signing.loads(cookie.value, salt=stores.COOKIE_SALT)["id"])


# -- cookie_equals ---------------------------------------------------------------


def test_cookie_equals() -> None:
    allowed = cookie_equals("consent", "yes")
    assert allowed(request_with(consent="yes")) is True
    assert allowed(request_with(consent="no")) is False
    assert allowed(request_with(consent="yes ")) is False
    assert allowed(request_with(other="yes")) is False
    assert allowed(request_with()) is False
    assert allowed.__qualname__ == "cookie_equals('consent', 'yes')"


def test_a_cookie_banner_of_the_shops_own(settings: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "CONSENT": cookie_equals("consent", "yes")}
    client = Client()
    client.get(f"/product/?pjclid={CLICK}")  # the banner not answered yet
    assert client.post("/checkout/").json() == {"attached": None}
    client.cookies["consent"] = "yes"  # accepted: the banner sends them back to the landing
    client.get(f"/product/?pjclid={CLICK}")
    assert client.post("/checkout/").json() == {"attached": CLICK}


# -- django-cookie-consent ----------------------------------------------------------


@pytest.fixture
def marketing(settings: Any) -> Iterator[CookieGroup]:
    """An optional group holding the click cookie; the hook as PJPIXEL["CONSENT"]."""
    delete_cache()  # the package caches its groups beyond a test's transaction
    settings.PJPIXEL = {
        **settings.PJPIXEL,
        "CLICK_STORE": "cookie",
        "CONSENT": cookie_consent_group("marketing"),
    }
    group = CookieGroup.objects.create(varname="marketing", name="Marketing")
    Cookie.objects.create(cookiegroup=group, name="pjpixel_click", path="/", domain="")
    yield group
    delete_cache()


def choose(client: Client, action: str) -> None:
    response = client.post(f"/cookies/{action}/", {"cookie_groups": ["marketing"]})
    assert response.status_code == 302, response.content


def test_an_accepted_group_allows_and_a_declined_one_drops_the_click(
    marketing: CookieGroup,
) -> None:
    client = Client()
    client.get(f"/product/?pjclid={CLICK}")
    assert kept(client) is None  # not chosen yet: opt-in

    choose(client, "accept")
    client.get(f"/product/?pjclid={CLICK}")
    assert kept(client) == CLICK
    assert client.post("/checkout/").json() == {"attached": CLICK}

    choose(client, "decline")  # the group's cookies are deleted, the click forgotten
    assert kept(client) is None
    assert not OrderClick.objects.exists()
    client.get(f"/product/?pjclid={CLICK}")
    assert kept(client) is None
    assert client.post("/checkout/").json() == {"attached": None}


def test_opt_out_allows_until_declined(marketing: CookieGroup, settings: Any) -> None:
    settings.COOKIE_CONSENT_OPT_OUT = True
    allowed = cookie_consent_group("marketing")
    assert allowed(request_with()) is True
    client = Client()
    choose(client, "decline")
    request = RequestFactory().get("/")
    request.COOKIES.update({name: morsel.value for name, morsel in client.cookies.items()})
    assert allowed(request) is False


def test_the_package_turned_off_asks_nothing(marketing: CookieGroup, settings: Any) -> None:
    settings.COOKIE_CONSENT_ENABLED = False
    assert cookie_consent_group("marketing")(request_with()) is True


def test_an_unknown_or_required_group_never_allows(marketing: CookieGroup) -> None:
    client = Client()
    choose(client, "accept")
    request = RequestFactory().get("/")
    request.COOKIES.update({name: morsel.value for name, morsel in client.cookies.items()})
    assert cookie_consent_group("marketing")(request) is True
    assert cookie_consent_group("marketnig")(request) is False
    marketing.is_required = True
    marketing.save()
    assert cookie_consent_group("marketing")(request) is False


def test_without_the_package_the_hook_fails_at_once_naming_the_fix() -> None:
    missing = mock.patch("importlib.util.find_spec", return_value=None)
    with missing, pytest.raises(PjpixelConfigurationError, match="pip install django-cookie"):
        cookie_consent_group("marketing")
    assert cookie_consent_group("marketing").__qualname__ == "cookie_consent_group('marketing')"
