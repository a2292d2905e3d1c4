"""Django settings of the benchmarks: the test settings, an own database, broker and URLs.

The database is PostgreSQL ``PJPIXEL_BENCH_DB_NAME`` (default
``pjpixel_bench``, created and dropped by ``python -m benchmarks``) on the
server of the test settings, or, where PostgreSQL is absent or
``PJPIXEL_BENCH_DB=sqlite``, the SQLite file ``PJPIXEL_BENCH_SQLITE``
(default ``artifacts/bench.sqlite3``). Celery publishes to Redis database 11
(``PJPIXEL_BENCH_BROKER_URL``) on its own queue, so nothing reaches the
queues the test suite's workers read.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, INSTALLED_APPS, PJPIXEL, POSTGRES_UNAVAILABLE

ROOT_DIR = Path(__file__).resolve().parent.parent
ROOT_URLCONF = "benchmarks.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks"]
DEBUG = False

BENCH_DB_NAME = os.environ.get("PJPIXEL_BENCH_DB_NAME", "pjpixel_bench")
BENCH_SQLITE = Path(
    os.environ.get("PJPIXEL_BENCH_SQLITE", ROOT_DIR / "artifacts" / "bench.sqlite3")
)
if os.environ.get("PJPIXEL_BENCH_DB") == "mariadb":  # the history benchmark's second run
    from tests.settings import MARIADB_URL

    DATABASES = {
        "default": {
            **dj_database_url.parse(MARIADB_URL),
            "NAME": BENCH_DB_NAME,
            "OPTIONS": {"charset": "utf8mb4"},
        }
    }
elif POSTGRES_UNAVAILABLE or os.environ.get("PJPIXEL_BENCH_DB") == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BENCH_SQLITE,
            "OPTIONS": {"timeout": 30},
        }
    }
else:
    DATABASES = {"default": {**DATABASES["default"], "NAME": BENCH_DB_NAME}}

# Persistent connections, as a tuned shop runs: no connection setup inside the timings.
DATABASES["default"]["CONN_MAX_AGE"] = 600

PJPIXEL = {**PJPIXEL, "API_URL": os.environ.get("PJPIXEL_BENCH_API_URL", PJPIXEL["API_URL"])}

CELERY_BROKER_URL = os.environ.get("PJPIXEL_BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PJPIXEL_BENCH_QUEUE", "pjpixel-bench")
# The throughput benchmark's Celery worker: Celery closes the database connection
# after every task, so the worker takes its connections from Django's pool
# (Django 5.1+), as the docs advise (Deployment); the pool replaces persistent connections.
if os.environ.get("PJPIXEL_BENCH_DB_POOL") == "1":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {"min_size": 2, "max_size": 16},
    }
