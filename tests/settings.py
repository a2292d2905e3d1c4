"""Settings for the test suite.

The default database is PostgreSQL at ``DATABASE_URL`` (the services this
project's machines run); where it cannot be reached the suite falls back to
SQLite and the tests marked ``postgres`` skip, or fail under CI (see
``tests/services.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django
import pymysql

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Stockholm"
LANGUAGE_CODE = "en"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pjpixel",
    # For the ready consent hook of django_pjpixel.consent (tests/test_consent.py).
    "cookie_consent",
    # Its delivery-health check is registered (3.x) or named in a view (4.x).
    "health_check",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django_pjpixel.middleware.PjclidMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SQLITE_PATH = BASE_DIR / "test.sqlite3"


def _postgres_reachable(db: dict[str, object]) -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a test dependency
        return "psycopg is not installed"
    try:
        psycopg.connect(
            host=str(db["HOST"]),
            port=str(db["PORT"]),
            user=str(db["USER"]),
            password=str(db["PASSWORD"]),
            dbname=str(db["NAME"]),
            connect_timeout=3,
        ).close()
    except psycopg.Error as err:
        return f"PostgreSQL at {db['HOST']}:{db['PORT']} is not reachable: {err}".strip()
    return None


DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
_db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
# SQLite as the docs advise (check django_pjpixel.W004): a busy timeout, and
# the write lock taken when a transaction begins.
_SQLITE: dict[str, Any] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": SQLITE_PATH,
    "OPTIONS": {
        "timeout": 20,
        **({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {}),
    },
}
POSTGRES_UNAVAILABLE: str | None = None
if _db["ENGINE"] == "django.db.backends.postgresql":
    POSTGRES_UNAVAILABLE = _postgres_reachable(_db)
    if POSTGRES_UNAVAILABLE:
        _db = dict(_SQLITE)
else:  # the tests run on PostgreSQL, or else on their own SQLite file
    _db = dict(_SQLITE)
    POSTGRES_UNAVAILABLE = f"DATABASE_URL is {DATABASE_URL!r}, not PostgreSQL"
DATABASES = {"default": _db}

PJPIXEL = {
    "PIXEL_ID": "5c034de4-8e86-4d16-9fd1-20cfec6c97e4",
    "CLIENT_ID": "test-client",
    "CLIENT_SECRET": "s3cr3t-never-shown",
    "API_URL": "https://api.pj.nu/click-conversion",
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_pjpixel": {"handlers": ["null"], "level": "DEBUG"}},
}
SESSION_COOKIE_AGE = 60 * 60 * 24 * 31  # at least the 30-day attribution window

# Hooks for the integration tests' Celery worker subprocess (tests/integration/harness.py):
# the pytest-django test database, the emulator server, extra PJPIXEL keys (JSON), the queue.
import json  # noqa: E402

if os.environ.get("PJPIXEL_TEST_DB_NAME") and not POSTGRES_UNAVAILABLE:
    DATABASES["default"]["NAME"] = os.environ["PJPIXEL_TEST_DB_NAME"]
if os.environ.get("PJPIXEL_TEST_API_URL"):
    PJPIXEL["API_URL"] = os.environ["PJPIXEL_TEST_API_URL"]
PJPIXEL.update(json.loads(os.environ.get("PJPIXEL_TEST_SETTINGS") or "{}"))
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("PJPIXEL_TEST_CELERY_QUEUE", "celery")

# MariaDB, where it answers, as a second alias: the tests marked ``mariadb`` route
# django_pjpixel's models there (``tests.integration.test_concurrency``). PyMySQL
# stands in for mysqlclient, which needs a C build and the client library.
MARIADB_URL = os.environ.get("PJPIXEL_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
MARIADB_UNAVAILABLE: str | None = None
_mariadb: dict[str, Any] = dict(dj_database_url.parse(MARIADB_URL))


def _mariadb_reachable(db: dict[str, Any]) -> str | None:
    """None when MariaDB answers, else the reason it does not."""
    try:
        pymysql.connect(
            host=str(db["HOST"]),
            port=int(db["PORT"] or 3306),
            user=str(db["USER"]),
            password=str(db["PASSWORD"]),
            connect_timeout=3,
        ).close()
    except pymysql.MySQLError as err:
        return f"MariaDB at {db['HOST']}:{db['PORT']} is not reachable: {err}"
    return None


if _mariadb["ENGINE"] == "django.db.backends.mysql":
    pymysql.install_as_MySQLdb()
    MARIADB_UNAVAILABLE = _mariadb_reachable(_mariadb)
else:
    MARIADB_UNAVAILABLE = f"PJPIXEL_TEST_MARIADB_URL is {MARIADB_URL!r}, not MySQL/MariaDB"
if not MARIADB_UNAVAILABLE:
    DATABASES["mariadb"] = {
        **_mariadb,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": f"test_pjpixel_{os.getpid()}"},
    }

# Each pytest process gets its own PostgreSQL test database, so two suites (tox
# envs, a developer's run beside CI) never drop each other's database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["TEST"] = {"NAME": f"test_pjpixel_{os.getpid()}"}
