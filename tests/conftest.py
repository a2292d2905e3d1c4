from __future__ import annotations

import pytest

from tests import services


@pytest.fixture(autouse=True)
def _services_for_markers(request: pytest.FixtureRequest) -> None:
    """Tests marked ``postgres`` run only where PostgreSQL is the database."""
    if request.node.get_closest_marker("postgres"):
        services.require_postgres()


from tests.celery_app import app as celery_app  # noqa: E402  (binds the shared tasks)

__all__ = ["celery_app"]
