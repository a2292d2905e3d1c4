"""``{% pjpixel_script %}`` and ``{% pjpixel_click_input %}`` as a page renders them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.template import Context, Template
from django.test import RequestFactory

from django_pjpixel.templatetags.pjpixel import SHIPPED_SCRIPT

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SCRIPT_URL = "https://cdn.pji.nu/libs/pjpixel/pjpixel.min.js"


def render(source: str, request: HttpRequest | None = None, **context: Any) -> str:
    if request is not None:
        context["request"] = request
    return Template("{% load pjpixel %}" + source).render(Context(context))


def scripts(html: str) -> list[dict[str, str]]:
    """Each ``<script>``'s attributes."""
    return [
        dict(re.findall(r'([\w-]+)(?:="([^"]*)")?', tag))
        for tag in re.findall(r"<script ([^>]*)></script>", html)
    ]


def refuse(request: HttpRequest) -> bool:
    return False


@pytest.fixture
def consent(settings: Any) -> Any:
    def set_hook(hook: Any) -> None:
        settings.PJPIXEL = {**settings.PJPIXEL, "CONSENT": hook}

    return set_hook


def test_the_script_tag_and_init_with_the_pixel() -> None:
    html = render("{% pjpixel_script %}", RequestFactory().get("/"))
    prisjakt, shipped = scripts(html)
    assert prisjakt == {"src": SCRIPT_URL, "defer": ""}
    assert shipped == {
        "src": "/static/django_pjpixel/pjpixel.js",
        "data-pjpixel-pixel": PIXEL,
        "defer": "",
    }


def test_the_script_address_is_a_setting(settings: Any) -> None:
    nz = "https://cdn.pricespy.co.nz/libs/pjpixel/pjpixel.min.js"
    settings.PJPIXEL = {**settings.PJPIXEL, "SCRIPT_URL": nz}
    assert scripts(render("{% pjpixel_script %}", RequestFactory().get("/")))[0]["src"] == nz


def test_another_pixel_for_one_page() -> None:
    html = render('{% pjpixel_script pixel="nz-pixel" %}', RequestFactory().get("/"))
    assert scripts(html)[1]["data-pjpixel-pixel"] == "nz-pixel"


def test_without_consent_only_the_script_that_forgets_is_rendered(consent: Any) -> None:
    consent(refuse)
    html = render("{% pjpixel_script %}", RequestFactory().get("/"))
    assert SCRIPT_URL not in html
    assert scripts(html) == [{"src": "/static/django_pjpixel/pjpixel.js", "defer": ""}]


def test_without_a_request_consent_cannot_be_asked(consent: Any) -> None:
    assert SCRIPT_URL in render("{% pjpixel_script %}")  # no hook: every click is kept
    consent(lambda request: True)
    assert SCRIPT_URL not in render("{% pjpixel_script %}")


class LazyNonce:
    """Like Django 6.0's: made when first read."""

    def __init__(self) -> None:
        self.read = False

    def __str__(self) -> str:
        self.read = True
        return "n0nce+/="


def test_both_tags_carry_the_csp_nonce_of_the_request() -> None:
    request = RequestFactory().get("/")
    request.csp_nonce = LazyNonce()  # type: ignore[attr-defined]  # as django-csp sets it
    html = render("{% pjpixel_script %}", request)
    assert [tag["nonce"] for tag in scripts(html)] == ["n0nce+/=", "n0nce+/="]
    assert request.csp_nonce.read  # type: ignore[attr-defined]  # so the header carries it


def test_the_nonce_of_the_context_processor() -> None:
    html = render("{% pjpixel_script %}", RequestFactory().get("/"), csp_nonce="ctx")
    assert {tag["nonce"] for tag in scripts(html)} == {"ctx"}


def test_no_nonce_no_attribute() -> None:
    assert "nonce" not in render("{% pjpixel_script %}", RequestFactory().get("/"))


def test_the_nonce_of_djangos_csp_middleware(settings: Any) -> None:
    csp = pytest.importorskip("django.middleware.csp", reason="Django < 6.0 has no CSP middleware")
    utils_csp = pytest.importorskip("django.utils.csp")

    settings.SECURE_CSP = {"script-src": [utils_csp.CSP.SELF, utils_csp.CSP.NONCE]}
    request = RequestFactory().get("/")
    middleware = csp.ContentSecurityPolicyMiddleware(lambda request: HttpResponse())
    middleware.process_request(request)
    html = render("{% pjpixel_script %}", request)
    response = middleware.process_response(request, HttpResponse())
    nonce = scripts(html)[0]["nonce"]
    assert nonce
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]


def test_a_pixel_id_is_escaped(settings: Any) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "PIXEL_ID": '"><script>alert(1)</script>'}
    html = render("{% pjpixel_script %}", RequestFactory().get("/"))
    assert "<script>alert" not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def test_the_click_input() -> None:
    html = render("{% pjpixel_click_input %}")
    assert html == '<input type="hidden" name="pjpixel_click_id" value="" data-pjpixel-click>'


def test_the_shipped_script_is_a_static_file() -> None:
    found = finders.find(SHIPPED_SCRIPT)
    assert found is not None
    source = Path(str(found)).read_text(encoding="utf-8")
    for name in ("pjpixel.init(", "getConversion()", "data-pjpixel-pixel", "pjpixel_conversion"):
        assert name in source
