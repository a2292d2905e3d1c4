"""Credentials on the wire (``django_pjpixel.api.auth``): the seed's headers, OAuth2 tokens."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.test import override_settings
from responses import matchers

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import (
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConnectionError,
    PrisjaktRedirectRefused,
    PrisjaktServerError,
    PrisjaktTimeout,
)
from tests.helpers import body_of, seed_payload

API = "https://api.pj.nu/click-conversion"
TOKEN_URL = "https://auth.pj.nu/oauth2/token"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
EVENTS_URL = f"{API}/pixels/{PIXEL}/events"


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


# -- headers --------------------------------------------------------------------


def test_no_credentials_no_credential_headers(api: responses.RequestsMock) -> None:
    client = PrisjaktClient(client_id="", client_secret="")
    api.get(f"{API}/events/e1", json={})
    client.get_event("e1")
    headers = api.calls[0].request.headers
    assert "client-id" not in headers
    assert "client-secret" not in headers


def test_unknown_auth_mode_fails_loudly() -> None:
    with pytest.raises(PjpixelConfigurationError, match='PJPIXEL\\["AUTH"\\]'):
        PrisjaktClient(auth="basic")


def test_the_secret_is_sent_only_as_its_header(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.get(f"{API}/events/e1", json={})
    client.get_event("e1")
    request = api.calls[0].request
    assert request.headers["client-secret"] == SECRET
    assert SECRET not in str(request.url)
    assert request.body is None


def test_header_auth_does_not_retry_401(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(EVENTS_URL, status=401)
    with pytest.raises(PrisjaktAuthError):
        client.create_event(seed_payload())
    assert len(api.calls) == 1


# -- OAuth2 ---------------------------------------------------------------------


TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": "test-client",
    "client_secret": SECRET,
}


@pytest.fixture
def oauth() -> PrisjaktClient:
    with override_settings(
        PJPIXEL={
            "PIXEL_ID": PIXEL,
            "CLIENT_ID": "test-client",
            "CLIENT_SECRET": SECRET,
            "AUTH": "oauth2",
        }
    ):
        return PrisjaktClient()


def add_token(api: responses.RequestsMock, token: str, **extra: Any) -> responses.BaseResponse:
    body = {"access_token": token, "expires_in": 86399, "token_type": "bearer", **extra}
    return api.post(TOKEN_URL, json=body, match=[matchers.urlencoded_params_matcher(TOKEN_FORM)])


def test_oauth2_token_fetched_once_and_used(
    api: responses.RequestsMock, oauth: PrisjaktClient
) -> None:
    token = add_token(api, "tok-1")
    events = api.post(
        EVENTS_URL,
        status=201,
        match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})],
    )

    oauth.create_event(seed_payload())
    oauth.create_event(seed_payload())

    assert token.call_count == 1
    assert events.call_count == 2
    token_request = api.calls[0].request
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(str(token_request.body)) == {k: [v] for k, v in TOKEN_FORM.items()}
    for call in api.calls[1:]:
        assert "client-secret" not in call.request.headers
        assert call.request.headers["client-id"] == "test-client"
    assert SECRET not in repr(oauth)


def test_oauth2_token_renewed_when_about_to_expire(
    api: responses.RequestsMock, oauth: PrisjaktClient
) -> None:
    token = add_token(api, "short", expires_in=30)
    api.get(f"{API}/events/e1", json={})
    oauth.get_event("e1")
    oauth.get_event("e1")
    assert token.call_count == 2


def test_oauth2_token_without_lifetime_is_kept(
    api: responses.RequestsMock, oauth: PrisjaktClient
) -> None:
    token = api.post(TOKEN_URL, json={"access_token": "tok"})
    api.get(f"{API}/events/e1", json={})
    oauth.get_event("e1")
    oauth.get_event("e1")
    assert token.call_count == 1


def test_oauth2_401_fetches_a_new_token_once(
    api: responses.RequestsMock, oauth: PrisjaktClient
) -> None:
    api.post(TOKEN_URL, json={"access_token": "tok-1", "expires_in": 86399})
    api.post(TOKEN_URL, json={"access_token": "tok-2", "expires_in": 86399})
    api.post(
        EVENTS_URL, status=401, match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})]
    )
    api.post(
        EVENTS_URL, status=201, match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})]
    )

    assert oauth.create_event(seed_payload()).status == 201

    assert [(c.request.method, c.request.url) for c in api.calls] == [
        ("POST", TOKEN_URL),
        ("POST", EVENTS_URL),
        ("POST", TOKEN_URL),
        ("POST", EVENTS_URL),
    ]
    assert json.loads(body_of(api.calls[3])) == json.loads(body_of(api.calls[1]))


def test_oauth2_second_401_is_an_auth_error(
    api: responses.RequestsMock, oauth: PrisjaktClient
) -> None:
    api.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 86399})
    api.post(EVENTS_URL, status=401, json={"title": "Unauthorized"})

    with pytest.raises(PrisjaktAuthError) as info:
        oauth.create_event(seed_payload())

    assert info.value.status == 401
    assert len(api.calls) == 4


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 401, "json": {"error": "invalid_client"}},
        {"status": 403, "body": ""},
        {"status": 400, "json": {"error": "invalid_request", "error_description": SECRET}},
        {"status": 200, "json": {"token_type": "bearer"}},
        {"status": 200, "json": {"access_token": ""}},
        {"status": 200, "json": ["tok"]},
    ],
)
def test_token_endpoint_refusing_is_an_auth_error(
    api: responses.RequestsMock, oauth: PrisjaktClient, answer: dict[str, Any]
) -> None:
    api.post(TOKEN_URL, **answer)
    events = api.post(EVENTS_URL, status=201)

    with pytest.raises(PrisjaktAuthError) as info:
        oauth.create_event(seed_payload())

    assert info.value.status == answer["status"]
    assert info.value.retryable is False
    assert events.call_count == 0
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize(
    ("answer", "cls", "retryable"),
    [
        ({"status": 503, "body": "down"}, PrisjaktServerError, True),
        (
            {"status": 302, "headers": {"Location": "https://evil.example/"}},
            PrisjaktRedirectRefused,
            False,
        ),
        ({"status": 200, "body": f"<html>{SECRET}</html>"}, PrisjaktAPIError, False),
        ({"body": requests.ReadTimeout()}, PrisjaktTimeout, True),
        ({"body": requests.ConnectionError()}, PrisjaktConnectionError, True),
    ],
)
def test_token_endpoint_failures(
    api: responses.RequestsMock,
    oauth: PrisjaktClient,
    answer: dict[str, Any],
    cls: type[PrisjaktAPIError],
    retryable: bool,
) -> None:
    api.post(TOKEN_URL, **answer)
    events = api.post(EVENTS_URL, status=201)

    with pytest.raises(cls) as info:
        oauth.create_event(seed_payload())

    assert type(info.value) is cls
    assert info.value.retryable is retryable
    assert events.call_count == 0
    assert SECRET not in str(info.value)
    assert len(api.calls) == 1
    if isinstance(answer.get("body"), Exception):
        assert type(answer["body"]).__name__ in str(info.value)
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
