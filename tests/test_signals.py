"""The signal objects, and the import paths the docs document for shops."""

from __future__ import annotations

import importlib

import pytest
from django.dispatch import Signal

import django_pjpixel
from django_pjpixel import signals, tasks
from django_pjpixel.ledger import purchases
from django_pjpixel.ledger.publisher import DELIVER_EVENT_TASK
from tests.celery_app import app as celery_app


def test_signals_holds_the_three_signals_and_cancel() -> None:
    for name in ("order_completed", "pre_send", "post_send"):
        assert isinstance(getattr(signals, name), Signal)
    assert signals.Cancel().reason == "cancelled by a pre_send receiver"


@pytest.mark.parametrize(
    ("path", "name", "home"),
    [
        ("django_pjpixel.signals", "connect_order_signal", purchases.connect_order_signal),
        ("django_pjpixel.signals", "track_purchase", purchases.track_purchase),
        ("django_pjpixel", "track_purchase", purchases.track_purchase),
        ("django_pjpixel", "attach_click", purchases.attach_click),
        ("django_pjpixel.tasks", "deliver_event", tasks.deliver_event),
        ("django_pjpixel.tasks", "deliver_due", tasks.deliver_due),
    ],
)
def test_documented_import_paths_work(path: str, name: str, home: object) -> None:
    module = importlib.import_module(path)
    assert getattr(module, name) is home
    exec(f"from {path} import {name}", {})  # the docs' own spelling


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'deliver_due'"):
        _ = signals.deliver_due  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = django_pjpixel.nothing


def test_the_publisher_names_the_registered_task() -> None:
    # The publisher sends deliver_event by name; apps.ready() registered it.
    assert celery_app.tasks[DELIVER_EVENT_TASK] is tasks.deliver_event._get_current_object()
