"""Credentials never reach a debug page or an error report (issue 11, item 11).

A ``PrisjaktTimeout`` that reaches Django's technical 500 page (``DEBUG = True``),
``AdminEmailHandler`` or a Sentry-style reporter is rendered with the locals of
every frame of its traceback, and of its cause's. urllib3's frames hold the
request's headers and body: the ``client-secret`` header, the token form's
``client_secret=`` and ``Authorization: Bearer``. Each is sent to a real emulator
server that holds its answer past the read timeout, and the rendered report is
searched for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter, technical_500_response

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import PrisjaktTimeout
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer
from tests.helpers import PIXEL_ID, seed_payload

SECRET = "s3cr3t-never-shown-on-a-debug-page"
CLIENT = "debug-client"


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = PrisjaktEmulator(
        pixels={PIXEL_ID}, clients={CLIENT: {"secret": SECRET, "roles": ["shop_user"]}}
    )
    with EmulatorServer(emulator, timeout_sleep=3.0) as running:
        yield running


def client_for(server: EmulatorServer, auth: str) -> PrisjaktClient:
    return PrisjaktClient(
        api_url=server.url,
        pixel_id=PIXEL_ID,
        client_id=CLIENT,
        client_secret=SECRET,
        auth=auth,
        token_url=server.token_url,
        timeout=(2.0, 0.3),
    )


def reports(err: BaseException) -> list[str]:
    """What Django shows of ``err``: the technical 500 page and the text traceback."""
    request = RequestFactory().get("/checkout/")
    exc_info: Any = (type(err), err, err.__traceback__)
    page = technical_500_response(request, *exc_info).content.decode()
    text = ExceptionReporter(request, *exc_info).get_traceback_text()
    return [page, text]


def timed_out(call: Any) -> PrisjaktTimeout:
    try:
        call()
    except PrisjaktTimeout:
        err = sys.exc_info()[1]
        assert isinstance(err, PrisjaktTimeout)
        return err
    raise AssertionError("no timeout")


@override_settings(DEBUG=True)
def test_header_auth_secret_is_on_no_debug_page(server: EmulatorServer) -> None:
    server.emulator.script(["timeout"], method="POST")
    client = client_for(server, "headers")
    err = timed_out(lambda: client.create_event(seed_payload()))
    for report in reports(err):
        assert "PrisjaktTimeout" in report
        assert SECRET not in report
    client.close()


@override_settings(DEBUG=True)
def test_token_request_secret_is_on_no_debug_page(server: EmulatorServer) -> None:
    server.emulator.script(["timeout"], path="token")
    client = client_for(server, "oauth2")
    err = timed_out(lambda: client.create_event(seed_payload()))
    assert "token endpoint" in str(err)
    for report in reports(err):
        assert SECRET not in report
    client.close()


@override_settings(DEBUG=True)
def test_bearer_token_is_on_no_debug_page(server: EmulatorServer) -> None:
    client = client_for(server, "oauth2")
    client.get_client()  # a token, fetched and cached
    (token,) = server.emulator._state.tokens
    server.emulator.script(["timeout"], method="POST")
    err = timed_out(lambda: client.create_event(seed_payload()))
    for report in reports(err):
        assert token not in report
        assert SECRET not in report
    client.close()
