"""One masking rule for every credential (``logtext.masked``), in every place that shows text.

The API may echo the bearer token of a request in a problem's title or
detail ("token <token> is not valid"), or a field error's value. The client
secret, the current and previous tokens, and anything after ``Bearer `` must
then stay out of the row's problem fields, the admin's list and row pages,
log records, the exception's text and ``pjpixel_check``'s output.
"""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import PrisjaktAPIError
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.delivery import deliver_event
from tests.helpers import make_event, seed_payload

pytestmark = pytest.mark.django_db

API = "https://api.pj.nu/click-conversion"
TOKEN_URL = "https://auth.pj.nu/oauth2/token"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
EVENTS_URL = f"{API}/pixels/{PIXEL}/events"
SECRET = "s3cr3t-never-shown"
OLD_TOKEN = "eyJold.tok3n-given-up"
TOKEN = "eyJcur.tok3n-in-use"
OTHER = "tok3n-nobody-told-us-of"  # a token of another client: known only by "Bearer "
CREDENTIALS = (SECRET, OLD_TOKEN, TOKEN, OTHER)


def echo(token: str) -> dict[str, Any]:
    """A problem that echoes ``token``, the secret and a bearer header everywhere it can."""
    return {
        "title": f"Token {token} is not valid for this pixel",
        "status": 400,
        "detail": f"Authorization: Bearer {OTHER}; secret {SECRET}; token {token}",
        "field_errors": {
            "Authorization": {"message": "not accepted", "value": f"Bearer {token}"},
            token: {"message": f"see {token}", "value": [OLD_TOKEN, {"nested": SECRET}]},
        },
        "context": {"request-id": f"rid-{token}"},
    }


def shows_none(*texts: object) -> None:
    for text in texts:
        leaked = [value for value in CREDENTIALS if value in str(text)]
        assert not leaked, f"{leaked} in {text!r}"


@pytest.fixture
def oauth(pjpixel: dict[str, Any]) -> dict[str, Any]:
    pjpixel.update(
        PIXEL_ID=PIXEL, CLIENT_ID="test-client", CLIENT_SECRET=SECRET, AUTH="oauth2", API_URL=API
    )
    return pjpixel


@pytest.fixture
def echoing(api: responses.RequestsMock, oauth: dict[str, Any]) -> responses.RequestsMock:
    """The old token is refused (401), the new one answered with a problem echoing both."""
    for token in (OLD_TOKEN, TOKEN):
        api.post(
            TOKEN_URL, json={"access_token": token, "expires_in": 86399, "token_type": "bearer"}
        )
    api.post(EVENTS_URL, status=401, json=echo(OLD_TOKEN))
    api.post(EVENTS_URL, status=400, json={**echo(TOKEN), "title": f"{OLD_TOKEN} / {TOKEN}"})
    return api


def test_the_exception_text_shows_no_token(echoing: responses.RequestsMock) -> None:
    client = PrisjaktClient()
    with pytest.raises(PrisjaktAPIError) as info:
        client.create_event(seed_payload())
    err = info.value
    shows_none(str(err), repr(err), err.problem, err.as_record(), err.request_id)
    assert err.title == "*** / ***"


def test_the_row_and_the_log_show_no_token(
    echoing: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event()
    with caplog.at_level(logging.DEBUG):
        deliver_event(event.pk)
    row = ConversionEvent.objects.get(pk=event.pk)
    assert row.status == ConversionEvent.Status.FAILED
    assert row.problem_title == "*** / ***"
    shows_none(
        row.problem_title, row.problem_detail, row.problem_type, row.field_errors, row.request_id
    )
    assert caplog.records
    shows_none(*(record.getMessage() for record in caplog.records))
    shows_none(*(record.__dict__ for record in caplog.records))


def test_the_admin_shows_no_token(echoing: responses.RequestsMock, admin_client: Client) -> None:
    event = make_event()
    deliver_event(event.pk)
    pages = [
        admin_client.get(reverse("admin:django_pjpixel_conversionevent_changelist")),
        admin_client.get(reverse("admin:django_pjpixel_conversionevent_change", args=[event.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "*** / ***" in page.content.decode()
        shows_none(page.content.decode())


def test_pjpixel_check_shows_no_token(api: responses.RequestsMock, oauth: dict[str, Any]) -> None:
    for token in (OLD_TOKEN, TOKEN):
        api.post(
            TOKEN_URL, json={"access_token": token, "expires_in": 86399, "token_type": "bearer"}
        )
    api.get(f"{API}/clients/test-client", status=401, json=echo(OLD_TOKEN))
    api.get(f"{API}/clients/test-client", status=401, json=echo(TOKEN))
    api.get(f"{EVENTS_URL}", status=404, json=echo(TOKEN))
    stdout, stderr = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("pjpixel_check", stdout=stdout, stderr=stderr)
    assert "HTTP 401" in stderr.getvalue()
    shows_none(stdout.getvalue(), stderr.getvalue())


def test_a_token_answered_in_another_encoding_is_not_quoted(
    api: responses.RequestsMock, oauth: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # A token endpoint answering a form rather than JSON: its body is the token.
    api.post(TOKEN_URL, status=200, body=f"access_token={TOKEN}&token_type=bearer")
    with pytest.raises(PrisjaktAPIError) as info:
        PrisjaktClient().create_event(seed_payload())
    shows_none(str(info.value), repr(info.value), info.value.as_record())
    assert "not JSON" in str(info.value)
