"""Every path the docs tell shops to write, where they write it (DESIGN.md, "Public
interface"): settings, imports, task names, logger names and the pytest plugin."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging

import pytest
from celery import current_app

import django_pjpixel
from django_pjpixel import tasks

PUBLIC = [
    ("django_pjpixel.middleware", "PjclidMiddleware"),
    ("django_pjpixel.signals", "order_completed"),
    ("django_pjpixel.signals", "pre_send"),
    ("django_pjpixel.signals", "post_send"),
    ("django_pjpixel.signals", "Cancel"),
    ("django_pjpixel.signals", "connect_order_signal"),
    ("django_pjpixel.signals", "connect_restatement_signal"),
    ("django_pjpixel", "track_purchase"),
    ("django_pjpixel", "attach_click"),
    ("django_pjpixel", "restate_purchase"),
    ("django_pjpixel", "connect_restatement_signal"),
    ("django_pjpixel", "__version__"),
    ("django_pjpixel.consent", "cookie_equals"),
    ("django_pjpixel.consent", "cookie_consent_group"),
    ("django_pjpixel.healthcheck", "DeliveryHealthCheck"),
    ("django_pjpixel.markets", "route_by_currency"),
    ("django_pjpixel.tasks", "deliver_event"),
    ("django_pjpixel.tasks", "deliver_due"),
    ("django_pjpixel.tasks", "sync_events"),
    ("django_pjpixel.tasks", "purge"),
    ("django_pjpixel.testing.emulator", "PrisjaktEmulator"),
    ("django_pjpixel.testing.server", "main"),
    ("django_pjpixel.testing.pytest_plugin", "pjpixel_api"),
]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_a_documented_name_imports_from_its_documented_path(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def test_the_oscar_app_is_where_shops_list_it() -> None:
    # Imported by tests/oscar, in a process with django-oscar's settings.
    assert importlib.util.find_spec("django_pjpixel.contrib.oscar.apps") is not None


def test_the_functions_at_the_package_face_are_the_ledgers() -> None:
    from django_pjpixel.ledger import attaching, purchases, restatements

    assert django_pjpixel.track_purchase is purchases.track_purchase
    assert django_pjpixel.attach_click is attaching.attach_click
    assert django_pjpixel.restate_purchase is restatements.restate_purchase


def test_the_tasks_keep_the_names_beat_schedules_use() -> None:
    names = {
        "django_pjpixel.tasks.deliver_event",
        "django_pjpixel.tasks.deliver_due",
        "django_pjpixel.tasks.sync_events",
        "django_pjpixel.tasks.purge",
    }
    assert set(tasks.TASK_NAMES) == names
    assert names <= set(current_app.tasks)


def test_the_pytest_plugin_entry_point_names_the_plugin() -> None:
    (entry,) = [
        entry
        for entry in importlib.metadata.entry_points(group="pytest11")
        if entry.name == "pjpixel"
    ]
    assert entry.value == "django_pjpixel.testing.pytest_plugin"


LOGGERS = {
    # Where the records come from; a shop's LOGGING names these, so a module move keeps them.
    "django_pjpixel.api.client": "django_pjpixel.client",
    "django_pjpixel.api.pagination": "django_pjpixel.client",
    "django_pjpixel.ledger.purchases": "django_pjpixel.purchases",
    "django_pjpixel.ledger.conflicts": "django_pjpixel.purchases",
    "django_pjpixel.api.clickids": "django_pjpixel.clickids",
    "django_pjpixel.ledger.attaching": "django_pjpixel.attaching",
    "django_pjpixel.ledger.restatements": "django_pjpixel.restatements",
    "django_pjpixel.ledger.publisher": "django_pjpixel.publisher",
    "django_pjpixel.sending.delivery": "django_pjpixel.delivery",
    "django_pjpixel.sending.backlog": "django_pjpixel.backlog",
    "django_pjpixel.sending.restating": "django_pjpixel.restating",
    "django_pjpixel.record.sync": "django_pjpixel.sync",
    "django_pjpixel.tasks": "django_pjpixel.delivery",
    "django_pjpixel.health": "django_pjpixel.health",
    "django_pjpixel.middleware": "django_pjpixel.middleware",
    "django_pjpixel.attribution": "django_pjpixel.attribution",
    "django_pjpixel.markets": "django_pjpixel.markets",
    "django_pjpixel.contrib.oscar.receivers": "django_pjpixel.contrib.oscar.receivers",
}


@pytest.mark.parametrize(("module", "logger"), sorted(LOGGERS.items()))
def test_each_module_logs_under_its_documented_logger(module: str, logger: str) -> None:
    found = importlib.import_module(module).logger
    assert isinstance(found, logging.Logger)
    assert found.name == logger
