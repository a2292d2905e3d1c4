"""Erasure leaves no copy: the click id goes from every text and JSON column of every table.

A click id is copied beyond its own column: a 400's ``field_errors`` echo the
``signed_click_id`` sent [seed], a problem's title or detail may quote it, the
mirror keeps the event as listed. Each test writes the click id into every
column of every row that can hold it (found from the models' fields, so a new
column or model is covered without touching this file), erases it, then
searches every text and JSON column of the app's tables for it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
import responses
from django.apps import apps
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models
from django.test import Client
from django.urls import reverse

from django_pjpixel import times
from django_pjpixel.ledger.retention import erase, purge
from django_pjpixel.models import (
    ConversionEvent,
    OrderClick,
    PrisjaktEvent,
    PrisjaktSync,
    Restatement,
)
from django_pjpixel.sending.delivery import deliver_event
from tests.helpers import PIXEL_ID, make_event

# On MariaDB too: a JSON column is searched as its text there (``Cast``), as on
# PostgreSQL and SQLite.
ALIASES = ["default", *(["mariadb"] if "mariadb" in django_settings.DATABASES else [])]
pytestmark = pytest.mark.django_db(databases=ALIASES)

CLICK = "4f1c2a9e-7b3d-4e8f-a1b2-c3d4e5f60718_0a1b2c3d4e5f6a7b"
OTHER = "9f0e1d2c-3b4a-4c5d-8e7f-001122334455_0123456789abcdef"
ORDER = "ORD-erase"
NOW = datetime(2026, 6, 1, 12, tzinfo=dt_timezone.utc)
OLD = times.as_django(NOW - timedelta(days=400))
# The shop's order ids are keys, never copies of a click id.
KEYS = {"order_id", "external_event_id"}
# NO_CLICK_OF_ITS_OWN: the listing request carries no click id, so no answer to it
# can echo one: purge, which ages rows by their own click, does not look in a sync's
# error; erase does.


def app_models() -> list[type[models.Model]]:
    return list(apps.get_app_config("django_pjpixel").get_models())


def text_columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, (models.CharField, models.TextField, models.JSONField))
    ]


def copy_of(click: str, field: models.Field[Any, Any]) -> Any:
    """The click id as an answer or a listing would hold it in ``field``."""
    if isinstance(field, models.JSONField):
        return {
            "signed_click_id": {"message": f"unknown click {click}", "value": click},
            "context": [click, {"click_id": click}],
            click: "as a key",
        }
    if field.name == "click_id":
        return click
    text = f"copy {click} here"
    return text if field.max_length is None or len(text) <= field.max_length else click


def fill(row: models.Model, click: str) -> models.Model:
    """Write ``click`` into every text and JSON column of ``row`` that can hold it."""
    for field in text_columns(type(row)):
        fits = field.max_length is None or field.max_length >= len(click)
        if field.primary_key or field.choices or field.name in KEYS or not fits:
            continue
        setattr(row, field.attname, copy_of(click, field))
    row.save()
    return row


def rows_for(order_id: str, click: str, written: datetime) -> list[models.Model]:
    """One row of every table, of ``order_id``, each with ``click`` in every place."""
    event = make_event(order_id, status=ConversionEvent.Status.SENT, created_at=written)
    rows: list[models.Model] = [
        event,
        Restatement(
            event=event,
            order_id=order_id,
            pixel_id=PIXEL_ID,
            amount=Decimal(0),
            number_of_items=0,
            currency="SEK",
            status=Restatement.Status.FAILED,
            created_at=written,
        ),
        OrderClick(order_id=order_id, click_id=click, captured_at=written, created_at=written),
        PrisjaktEvent(
            id=f"pj-{order_id}",
            pixel_id=PIXEL_ID,
            external_event_id=order_id,
            first_seen=written,
            last_seen=written,
        ),
        PrisjaktSync(pixel_id=PIXEL_ID, start=written, end=written, started_at=written),
    ]
    assert {type(row) for row in rows} == set(app_models()), "a new model: add a row of it here"
    return [fill(row, click) for row in rows]


def holding(click: str) -> list[str]:
    """Every column of every table that still holds ``click``, as ``Model.pk.column``."""
    found = []
    for model in app_models():
        for values in model._default_manager.values("pk", *(f.name for f in text_columns(model))):
            found += [
                f"{model.__name__}.{values['pk']}.{name}"
                for name, value in values.items()
                if name != "pk" and click in json.dumps(value)
            ]
    return found


def test_every_place_is_written() -> None:
    rows_for(ORDER, CLICK, OLD)
    assert len(holding(CLICK)) >= 15


@pytest.fixture(
    params=["default", pytest.param("mariadb", marks=[pytest.mark.mariadb, pytest.mark.services])]
)
def database(request: pytest.FixtureRequest, settings: Any) -> str:
    """The database the app's tables live in for this test."""
    if request.param == "mariadb":
        settings.DATABASE_ROUTERS = ["tests.integration.test_concurrency.OutboxOnMariaDB"]
    return str(request.param)


@pytest.mark.usefixtures("database")
def test_erase_a_click_leaves_no_copy() -> None:
    rows_for(ORDER, CLICK, OLD)
    rows_for("ORD-other", OTHER, OLD)
    erase(click_id=CLICK)
    assert holding(CLICK) == []
    assert len(holding(OTHER)) >= 15


@pytest.mark.usefixtures("database")
def test_erase_an_order_leaves_no_copy() -> None:
    rows_for(ORDER, CLICK, OLD)
    erase(order_id=ORDER)
    assert holding(CLICK) == []


@pytest.mark.usefixtures("database")
def test_purge_leaves_no_copy() -> None:
    rows_for(ORDER, CLICK, OLD)
    PrisjaktSync.objects.all().delete()  # see NO_CLICK_OF_ITS_OWN
    young = times.as_django(times.now())
    rows_for("ORD-young", OTHER, young)
    purge()
    assert holding(CLICK) == []
    # A row not past the retention keeps its click and its copies.
    assert ConversionEvent.objects.get(order_id="ORD-young").click_id == OTHER
    assert len(holding(OTHER)) >= 10


@pytest.fixture
def echoing_api(api: responses.RequestsMock, pjpixel: dict[str, Any]) -> responses.RequestsMock:
    """The API refuses the click and echoes it, as its validation errors do [seed]."""
    api.post(
        f"{pjpixel['API_URL']}/pixels/{PIXEL_ID}/events",
        status=400,
        json={
            "title": "Request validation failed",
            "status": 400,
            "detail": f"Request contains invalid fields: signed_click_id ({CLICK}).",
            "field_errors": {"signed_click_id": {"message": "unknown click", "value": CLICK}},
        },
    )
    return api


def test_pjpixel_erase_clears_the_value_sent_in_the_admin(
    echoing_api: responses.RequestsMock, admin_client: Client
) -> None:
    event = make_event(ORDER, click_id=CLICK)
    deliver_event(event.pk)
    url = reverse("admin:django_pjpixel_conversionevent_change", args=[event.pk])
    assert CLICK in admin_client.get(url).content.decode()

    call_command("pjpixel_erase", "--click", CLICK, stdout=StringIO())

    page = admin_client.get(url).content.decode()
    assert CLICK not in page
    assert "[erased]" in page
    assert holding(CLICK) == []


def test_a_copy_left_by_an_earlier_erasure_is_found_and_erased() -> None:
    """A row whose click column an older version already cleared, its copies kept:
    erasing the click id again with --everywhere finds them, and says so (exit 0)."""
    event = make_event(ORDER, click_id="", status=ConversionEvent.Status.FAILED)
    ConversionEvent.objects.filter(pk=event.pk).update(
        field_errors={"signed_click_id": {"message": "unknown click", "value": CLICK}}
    )
    with pytest.raises(CommandError):  # exit 1: without --everywhere, no row holds the click
        call_command("pjpixel_erase", "--click", CLICK, stdout=StringIO())
    assert holding(CLICK) != []

    out = StringIO()
    call_command("pjpixel_erase", "--click", CLICK, "--everywhere", stdout=out)
    assert "other rows holding a copy: 1" in out.getvalue()
    assert holding(CLICK) == []
