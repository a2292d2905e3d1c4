"""Settings of the deployment tests' shop: ``tests.settings`` with one deployment's choices.

The web server, the Celery worker and ``manage.py`` commands of one
deployment test all read them from the environment:

- ``PJPIXEL_DEPLOY_DATABASE_URL``: the shop's database (``postgres://``,
  ``mysql://`` for MariaDB through PyMySQL, ``sqlite:///<file>``);
- ``PJPIXEL_DEPLOY_SQLITE``: ``tuned`` (the docs' advice, "Deployment": a busy timeout,
  and ``IMMEDIATE`` transactions where Django has them) or ``default``
  (Django's defaults, as a shop that changed nothing has them);
- ``PJPIXEL_DEPLOY_USE_TZ``: ``true`` or ``false``;
- ``CELERY_BROKER_URL``, and the hooks of ``tests.settings`` (the queue, the
  emulator's URL, extra ``PJPIXEL`` keys).
"""

from __future__ import annotations

import os
from typing import Any

import dj_database_url
import django

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

ROOT_URLCONF = "tests.integration.deploy_shop"
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django.contrib.admin"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = os.environ.get("PJPIXEL_DEPLOY_USE_TZ", "true") == "true"


def database(url: str, sqlite: str = "tuned") -> dict[str, Any]:
    db: dict[str, Any] = dict(dj_database_url.parse(url))
    if db["ENGINE"] == "django.db.backends.mysql":
        import pymysql  # the MySQLdb interface without a C build (mysqlclient needs one)

        pymysql.install_as_MySQLdb()
        db["OPTIONS"] = {"charset": "utf8mb4"}
    elif db["ENGINE"] == "django.db.backends.sqlite3" and sqlite == "tuned":
        # Several processes share the file: wait for its lock, and take the write
        # lock when a transaction begins (no "database is locked" on an upgrade).
        db["OPTIONS"] = {"timeout": 20}
        if django.VERSION >= (5, 1):
            db["OPTIONS"].update(
                transaction_mode="IMMEDIATE",
                init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            )
    return db


DATABASES = {
    "default": database(
        os.environ.get("PJPIXEL_DEPLOY_DATABASE_URL", "sqlite:///deploy.sqlite3"),
        os.environ.get("PJPIXEL_DEPLOY_SQLITE", "tuned"),
    )
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_pjpixel": {"handlers": ["console"], "level": "INFO"}},
}
