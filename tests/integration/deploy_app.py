"""The deployment tests' shop as a WSGI (gunicorn) and an ASGI (uvicorn) application.

The Celery app is imported with the application, as a Django project's
``__init__.py`` does, so that the checkout publishes to the configured broker.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.deploy_settings")

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

from tests.integration.deploy_celery import app as celery_app

__all__ = ["asgi", "celery_app", "wsgi"]

wsgi = get_wsgi_application()
asgi = get_asgi_application()
