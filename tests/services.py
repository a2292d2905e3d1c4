"""Which real services the tests can reach, and how a missing one is reported.

Where a service is absent the test skips with the reason; under CI
(``PJPIXEL_REQUIRE_SERVICES=1``, set by ``.ci/run``) the same is a failure, so
a green CI run always means the test really ran.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest
from django.conf import settings

REQUIRE = os.environ.get("PJPIXEL_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("PJPIXEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("PJPIXEL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        pytest.fail(f"required service missing (PJPIXEL_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    reason = getattr(settings, "POSTGRES_UNAVAILABLE", None)
    if reason:
        unavailable(reason)


def require_redis() -> None:
    if not port_open("127.0.0.1", 6379):
        unavailable("Redis is not reachable at 127.0.0.1:6379")


def require_rabbitmq() -> None:
    if not port_open("127.0.0.1", 5672):
        unavailable("RabbitMQ is not reachable at 127.0.0.1:5672")


def require_mariadb() -> None:
    reason = getattr(settings, "MARIADB_UNAVAILABLE", None)
    if reason:
        unavailable(reason)
