"""The deployment tests' Celery app: the test app, and a start-up check a shop may run.

With ``PJPIXEL_DEPLOY_CHECK_AT_START=1`` the worker's main process runs
``pjpixel_check`` in ``worker_init``, before the prefork pool forks its
children: the client (its HTTP session, its kept-alive connection) exists in
the parent first, as in a shop that checks its credentials at start-up.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_init
from django.core.management import call_command

from tests.celery_app import app

__all__ = ["app"]


@worker_init.connect
def check_at_start(**kwargs: Any) -> None:
    if os.environ.get("PJPIXEL_DEPLOY_CHECK_AT_START") == "1":
        call_command("pjpixel_check")
