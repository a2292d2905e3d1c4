"""The README is a user's guide that cannot rot.

Its reference tables are checked against the code, and its install snippets
are executed in a fresh Django project (``django-admin startproject`` in a
temporary directory, not the example project): the settings blocks appended
to its ``settings.py``, its file blocks written where they say, then
``check --fail-level WARNING``, ``migrate``, and the report blocks run against
the API emulator over real HTTP.

README markers (an HTML comment on the line before a fenced block):
``<!-- doctest: settings -->`` appends the block to ``settings.py``;
``<!-- doctest: file <path> -->`` writes it to ``<path>`` in the project;
``<!-- doctest: report -->`` runs it, in order, in one script.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from django_pjpixel.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PIXEL_ID = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"

_BLOCK_RE = re.compile(
    r"<!-- doctest: (?P<kind>settings|report|file (?P<path>[\w./-]+)) -->\s*\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def doctest_blocks(kind: str) -> list[tuple[str | None, str]]:
    return [
        (m["path"], m["code"])
        for m in _BLOCK_RE.finditer(readme())
        if m["kind"].split(" ", 1)[0] == kind
    ]


def table_after(marker: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table following ``<!-- marker -->``."""
    text = readme()
    start = text.index(f"<!-- {marker} -->")
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if all(cell and set(cell) <= {"-", ":"} for cell in cells):
            continue
        rows.append(cells)
    return rows[1:]  # without the header


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"expected a `code` cell, got {cell!r}"
    return match[1]


# -- the reference tables ------------------------------------------------------


def test_settings_table_lists_every_setting_with_its_default() -> None:
    rows = {_code(row[0]): row for row in table_after("settings-table")}
    assert sorted(rows) == sorted(DEFAULTS), "the README's settings table and conf.DEFAULTS differ"
    for key, row in rows.items():
        shown = eval(_code(row[1]), {"timedelta": timedelta})
        assert shown == DEFAULTS[key], f"README says {key} defaults to {row[1]}"
        assert type(shown) is type(DEFAULTS[key]), f"{key}: {row[1]} has the wrong type"
        assert row[2], f"{key} has no description"


def check_ids_in_code() -> set[str]:
    source = (ROOT / "django_pjpixel" / "checks.py").read_text(encoding="utf-8")
    ids = set(re.findall(r"django_pjpixel\.([EW]\d{3})", source))
    ids |= set(re.findall(r"""["']([EW]\d{3})["']""", source))  # f"django_pjpixel.{code}"
    for module in (ROOT / "django_pjpixel").rglob("*.py"):
        ids |= set(re.findall(r"django_pjpixel\.([EW]\d{3})", module.read_text(encoding="utf-8")))
    return {f"django_pjpixel.{code}" for code in ids}


def test_checks_table_lists_every_check_id() -> None:
    rows = table_after("checks-table")
    documented = [_code(row[0]) for row in rows]
    assert len(documented) == len(set(documented)), "a check id is listed twice"
    assert set(documented) == check_ids_in_code()
    for row in rows:
        level = "warning" if ".W" in row[0] else "error"
        assert row[1] == level, f"{row[0]} is an {level}, the README says {row[1]}"


def test_check_ids_are_found_in_the_code() -> None:
    assert "django_pjpixel.E002" in check_ids_in_code()  # built as f"django_pjpixel.{code}"
    assert "django_pjpixel.W003" in check_ids_in_code()


def test_readme_keeps_its_first_screen_and_sections() -> None:
    text = readme()
    assert text.startswith("# django-pjpixel\n")
    head = text[:1500]
    assert "make demo" in head
    assert "make test" in head
    for section in (
        "## Requirements",
        "## Install into your shop",
        "## Report a paid order",
        "## Refunds and cancellations",
        "## Consent",
        "## The admin",
        "## Testing your shop",
        "## Settings reference",
        "## System checks",
        "## Delivery guarantees",
        "## Open API questions and the choices made",
        "## Benchmarks",
        "## Screenshots",
    ):
        assert section in text
    assert "artifacts/screenshots/" in text
    for version in ("3.10", "3.13", "4.2", "5.2", "6.0", "6.1", "5.4"):
        assert version in text


def test_doctest_blocks_are_present_and_parse() -> None:
    assert len(doctest_blocks("settings")) >= 3
    assert len(doctest_blocks("report")) >= 2
    files = dict(doctest_blocks("file"))
    assert {"myshop/celery.py", "orders/signals.py", "orders/apps.py"} <= set(files)
    for _path, code in doctest_blocks("settings") + doctest_blocks("report"):
        ast.parse(code)
    for code in files.values():
        ast.parse(code)


# -- the install snippets, executed in a fresh project ----------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# What the README's report blocks assume is in scope: the shop's Order model.
REPORT_PRELUDE = """
import django
django.setup()

class Order:  # stands in for the shop's model: only used as the signal's sender
    pass
"""

# The webhook case through the real middleware: a landing with ?pjclid=, then
# attach_click at checkout, then the shop's own order_paid signal (hooked by
# the README's orders/apps.py) with no request at all.
HOOK_SCRIPT = """
from types import SimpleNamespace

from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory

from django_pjpixel import attach_click
from django_pjpixel.middleware import PjclidMiddleware
from orders.signals import order_paid

landing = RequestFactory().get("/?pjclid=239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d127")
landing.session = SessionStore()
PjclidMiddleware(lambda request: HttpResponse())(landing)
attach_click(landing, "10043")

order = SimpleNamespace(pk=10043, total=Decimal("289.00"), currency="SEK", number_of_items=2)
with transaction.atomic():
    order_paid.send(sender=Order, order=order)

# What beat's deliver_due does: the README's refund of order 10041 reaches Prisjakt.
from django_pjpixel.tasks import deliver_due

print(deliver_due())
"""


@pytest.mark.slow
def test_readme_install_snippets_work_in_a_fresh_project(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PJPIXEL_", "CELERY_", "DEMO_")) and key != "PYTHONPATH"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="myshop.settings",
        PJPIXEL_CLIENT_SECRET="readme-secret",
        CELERY_BROKER_URL="memory://",
        PYTHONDONTWRITEBYTECODE="1",
    )
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "myshop", str(project)],
        check=True,
        env=env,
        cwd=tmp_path,
    )

    (project / "orders").mkdir()
    (project / "orders" / "__init__.py").write_text("")
    for path, code in doctest_blocks("file"):
        assert path is not None
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    settings_py = project / "myshop" / "settings.py"
    snippets = "\n\n".join(code for _path, code in doctest_blocks("settings"))
    test_overrides = textwrap.dedent(
        f"""
        # -- added by tests/test_readme.py, not part of the README --
        INSTALLED_APPS += ["orders"]  # the shop's own app from the README's hook example
        PJPIXEL["API_URL"] = "http://127.0.0.1:{port}/click-conversion"
        CELERY_TASK_ALWAYS_EAGER = True  # no worker here: deliver at commit, in-process
        """
    )
    settings_py.write_text(
        settings_py.read_text(encoding="utf-8") + "\n\n" + snippets + "\n" + test_overrides,
        encoding="utf-8",
    )

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    check = manage("check", "--fail-level", "WARNING")
    assert "no issues" in check.stdout
    manage("migrate", "--noinput")

    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_pjpixel.testing.server",
            "--port",
            str(port),
            "--client-id",
            "my-shop",
            "--client-secret",
            "readme-secret",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/_emulator/state")
        report = REPORT_PRELUDE + "\n".join(code for _p, code in doctest_blocks("report"))
        report += HOOK_SCRIPT
        (project / "report_purchase.py").write_text(report, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "report_purchase.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/events", timeout=5) as r:
            events = json.load(r)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)

    by_order = {event["external_event_id"]: event for event in events}
    assert len(events) == len(by_order) == 3, events
    # Paid at 1234 SEK for 4 items, then two came back.
    assert by_order["10041"]["data"] == {"amount": 617, "currency": "SEK", "number_of_items": 2}
    assert by_order["10042"]["data"]["amount"] == 3990
    assert by_order["10043"]["data"] == {"amount": 289, "currency": "SEK", "number_of_items": 2}
    assert by_order["10043"]["click_id"] == "239cd31f-9d43-4cb4-b8dc-2057fe18c289"


def test_how_it_is_built_lists_every_module_of_the_package() -> None:
    package = ROOT / "django_pjpixel"
    listed: set[str] = set()
    for row in table_after("modules"):
        listed.update(re.findall(r"`([\w/]+(?:\.py|/))`", row[1]))
    names = {path.name for path in package.glob("*.py")} - {"__init__.py"}
    names |= {
        f"{path.name}/"
        for path in package.iterdir()
        if path.is_dir() and path.name not in {"locale", "migrations", "testing", "__pycache__"}
    }
    missing = {name for name in names if not any(entry.startswith(name) for entry in listed)}
    assert not missing, f"not in the README's 'How it is built': {sorted(missing)}"
    gone = {entry for entry in listed if (package / entry).exists() is False}
    assert not gone, f"in the README's 'How it is built' but not in the package: {sorted(gone)}"
