from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from tests import services
from tests.celery_app import app as celery_app  # binds the shared tasks to the test app

# tests/oscar is a django-oscar shop with settings of its own, so it runs in a pytest
# process of its own: `pytest tests/oscar --ds=tests.oscar.settings` (`make test` does).
OSCAR_SETTINGS = "tests.oscar.settings"
collect_ignore = [] if os.environ.get("DJANGO_SETTINGS_MODULE") == OSCAR_SETTINGS else ["oscar"]


@pytest.fixture(autouse=True)
def _services_for_markers(request: pytest.FixtureRequest) -> None:
    """Tests marked ``postgres`` run only where PostgreSQL is the database; ``mariadb``: MariaDB."""
    if request.node.get_closest_marker("postgres"):
        services.require_postgres()
    if request.node.get_closest_marker("mariadb"):
        services.require_mariadb()


@pytest.fixture(autouse=True)
def _publishes_done() -> Iterator[None]:
    """What a test's commits queued is published before the next test (to the same broker)."""
    yield
    from django_pjpixel.ledger.publisher import flush_publishes

    flush_publishes(10)


@pytest.fixture(autouse=True)
def _no_rate_limit_pause() -> Iterator[None]:
    """A stop of ``deliver_due`` for the rate limit is kept by the process: not between tests."""
    from django_pjpixel.sending import backlog

    backlog._pauses.clear()
    yield
    backlog._pauses.clear()


@pytest.fixture
def pjpixel(settings: Any) -> dict[str, Any]:
    """``settings.PJPIXEL`` to change for one test (a fresh copy)."""
    settings.PJPIXEL = dict(settings.PJPIXEL)
    return settings.PJPIXEL  # type: ignore[no-any-return]


@pytest.fixture
def installed_long_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    """django_pjpixel was installed a day ago: a first sync of Prisjakt's events is due (the
    test database's migrations ran moments ago, a new install's "not synced yet")."""
    from datetime import timedelta

    from django.utils import timezone

    from django_pjpixel import health

    monkeypatch.setattr(health, "installed_at", lambda: timezone.now() - timedelta(days=1))


@pytest.fixture
def inline_queue() -> Iterator[None]:
    """Celery runs queued tasks eagerly, in the publishing thread: no broker, no worker."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False


@pytest.fixture
def receivers() -> Iterator[list[Any]]:
    """Signal receivers connected in a test (``tests.helpers.connect``), disconnected after it."""
    connected: list[Any] = []
    yield connected
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """The transport mocked: register Prisjakt's answers on it (``api.post(url, ...)``)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture(params=[True, False], ids=["USE_TZ=True", "USE_TZ=False"])
def use_tz(request: pytest.FixtureRequest, settings: Any) -> bool:
    """The test once with ``USE_TZ = True`` and once with ``False``.

    Under ``False`` Django hands out naive datetimes in ``TIME_ZONE``
    (``Europe/Stockholm`` here), and stores them naive in the database too.
    """
    settings.USE_TZ = request.param
    return bool(request.param)
