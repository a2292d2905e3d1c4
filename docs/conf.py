"""Sphinx configuration: MyST Markdown pages, the furo theme, autodoc of the public API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package's modules, which need a configured Django.
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django_pjpixel",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()

from django_pjpixel import __version__  # noqa: E402

project = "django-pjpixel"
author = "django-pjpixel maintainers"
copyright = "django-pjpixel maintainers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_mock_imports = ["health_check", "oscar"]

html_theme = "furo"
html_title = f"django-pjpixel {release}"
html_static_path = ["_static"]


class _EmptyGlobIsFine(logging.Filter):
    """The index lists its pages in reading order, then globs each folder so that a
    page added later appears by itself: a glob with nothing left to add is fine."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "didn't match any documents" not in record.getMessage()


logging.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlobIsFine())
