"""Settings of the example shop (a demo: the secrets here are not secret).

Embedded defaults need no server: SQLite and the Celery broker both live in
``example_project/var/`` (kombu's filesystem transport). ``DATABASE_URL`` and
``CELERY_BROKER_URL`` in the environment switch to PostgreSQL and Redis or
RabbitMQ; ``DEMO_API_URL`` points django-pjpixel at the API emulator that
``run_demo.py`` starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DEMO_VAR_DIR") or BASE_DIR / "var").resolve()

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Stockholm"
LANGUAGE_CODE = "en"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pjpixel",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After SessionMiddleware: it keeps the visitor's click in the session.
    "django_pjpixel.middleware.PjclidMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
                "shop.context_processors.consent",
            ]
        },
    }
]

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

# Sessions must outlive the 30-day attribution window (check django_pjpixel.W003).
SESSION_COOKIE_AGE = 60 * 60 * 24 * 31


DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'demo.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (shop, worker, beat) share one file: wait for its lock,
    # and take the write lock when a transaction begins, so that two readers
    # never both try to upgrade ("database is locked" at once).
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
    if django.VERSION >= (5, 1):
        DATABASES["default"]["OPTIONS"].update(
            transaction_mode="IMMEDIATE",
            init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        )

# The API emulator started by run_demo.py (which passes it these credentials);
# loopback http passes django_pjpixel.E006.
PJPIXEL = {
    "PIXEL_ID": "5c034de4-8e86-4d16-9fd1-20cfec6c97e4",
    "CLIENT_ID": "demo-client",
    "CLIENT_SECRET": "demo-secret",
    "API_URL": os.environ.get("DEMO_API_URL", "http://127.0.0.1:8765/click-conversion"),
    "CONSENT": "shop.consent.pjpixel_allowed",
    # Short retries so that the demo shows a recovery within a minute.
    "RETRY_BASE_DELAY": 2.0,
    "RETRY_MAX_DELAY": 30.0,
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://"
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem:"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.25,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # What a shop runs every 60 s; the demo uses 15 s to show a recovery sooner.
    "pjpixel-deliver-due": {
        "task": "django_pjpixel.tasks.deliver_due",
        "schedule": float(os.environ.get("DEMO_DELIVER_DUE_SECONDS", "15")),
    },
    # What a shop runs every hour; the demo every minute, so its reconciliation is current.
    "pjpixel-sync-events": {
        "task": "django_pjpixel.tasks.sync_events",
        "schedule": 60.0,
    },
}

# The fake payment provider signs its webhook with this shared token.
DEMO_PAYMENT_TOKEN = os.environ.get("DEMO_PAYMENT_TOKEN", "demo-webhook-token")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "loggers": {
        "django_pjpixel": {"handlers": ["console"], "level": "INFO"},
        "shop": {"handlers": ["console"], "level": "INFO"},
    },
}
