"""The README and the docs are a user's guide that cannot rot.

Their reference tables are checked against the code, and their install
snippets are executed in a fresh Django project (``django-admin startproject``
in a temporary directory, not the example project): the settings blocks
appended to its ``settings.py``, its file blocks written where they say, then
``check --fail-level WARNING``, ``migrate``, and the report blocks run against
the API emulator over real HTTP. The quickstart is followed as a new user
follows it, to an event delivered by a real Celery worker.

Markers (an HTML comment on the line before a fenced block), in the pages of
``DOCTEST_PAGES``, read in that order:
``<!-- doctest: settings -->`` appends the block to ``settings.py``;
``<!-- doctest: file <path> -->`` writes it to ``<path>`` in the project;
``<!-- doctest: report -->`` runs it, in order, in one script.
The quickstart's own (``docs/quickstart.md``): ``<!-- quickstart: settings -->``,
``<!-- quickstart: file <path> -->``, ``<!-- quickstart: shell -->`` (piped
into ``manage.py shell``).
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
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from django_pjpixel.conf import DEFAULTS
from tests import services

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PIXEL_ID = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
# The pages whose doctest blocks build the fresh project, in the order a shop
# follows them (the refund restates an order the report blocks paid).
DOCTEST_PAGES = [
    DOCS / "howto" / "install.md",
    DOCS / "howto" / "deployment.md",
    DOCS / "howto" / "report-a-paid-order.md",
    DOCS / "howto" / "refunds.md",
    DOCS / "howto" / "retention.md",
]
QUICKSTART = DOCS / "quickstart.md"

_BLOCK_RE = re.compile(
    r"<!-- doctest: (?P<kind>settings|report|file (?P<path>[\w./-]+)) -->\s*\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)
_QUICKSTART_RE = re.compile(
    r"<!-- quickstart: (?P<kind>settings|shell|file (?P<path>[\w./-]+)) -->\s*\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def doc_pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)


def doctest_blocks(kind: str) -> list[tuple[str | None, str]]:
    return [
        (m["path"], m["code"])
        for page in DOCTEST_PAGES
        for m in _BLOCK_RE.finditer(page.read_text(encoding="utf-8"))
        if m["kind"].split(" ", 1)[0] == kind
    ]


def quickstart_blocks(kind: str) -> list[tuple[str | None, str]]:
    return [
        (m["path"], m["code"])
        for m in _QUICKSTART_RE.finditer(QUICKSTART.read_text(encoding="utf-8"))
        if m["kind"].split(" ", 1)[0] == kind
    ]


def page_with(marker: str) -> str:
    """The text of the one docs page holding ``<!-- marker -->``."""
    found = [page for page in doc_pages() if f"<!-- {marker} -->" in page.read_text("utf-8")]
    assert len(found) == 1, f"<!-- {marker} --> is in {found}, not in exactly one page"
    return found[0].read_text(encoding="utf-8")


def table_after(marker: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table following ``<!-- marker -->``."""
    text = page_with(marker)
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


def test_readme_is_a_short_first_screen_that_links_into_the_docs() -> None:
    text = readme()
    assert text.startswith("# django-pjpixel\n")
    assert len(text.splitlines()) <= 300
    head = text[:2500]
    assert "make demo" in head
    assert "make test" in head
    for section in ("## Requirements", "## Install", "## Documentation"):
        assert section in text
    [screenshot] = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert (ROOT / screenshot).is_file(), screenshot
    for version in ("3.10", "3.13", "4.2", "5.2", "6.0", "6.1", "5.4"):
        assert version in text
    linked = set(re.findall(r"\]\((docs/[\w/.-]+\.md)(?:#[\w-]+)?\)", text))
    assert "docs/quickstart.md" in linked
    for link in linked:
        assert (ROOT / link).is_file(), f"the README links {link}, which does not exist"


def test_the_docs_have_the_sections_a_user_looks_for() -> None:
    for page, title in {
        "index.md": "# django-pjpixel",
        "quickstart.md": "# Quickstart",
        "howto/install.md": "# Install into a shop",
        "howto/report-a-paid-order.md": "# Report a paid order",
        "howto/refunds.md": "# Refunds and cancellations",
        "howto/consent.md": "# Consent",
        "howto/testing.md": "# Test your shop",
        "reference/settings.md": "# Settings",
        "reference/checks.md": "# System checks",
        "reference/commands.md": "# Management commands",
        "reference/admin.md": "# The admin",
        "explanation/delivery-guarantees.md": "# Delivery guarantees",
        "explanation/api-questions.md": "# Open API questions and the choices made",
        "explanation/benchmarks.md": "# Benchmarks",
        "explanation/architecture.md": "# How it is built",
        "contributing.md": "# Contributing",
    }.items():
        text = (DOCS / page).read_text(encoding="utf-8")
        assert text.startswith(title + "\n"), page
    screenshots = set(
        re.findall(
            r"\]\(\.\./_static/screenshots/([\w-]+\.png)\)",
            (DOCS / "reference" / "admin.md").read_text(encoding="utf-8"),
        )
    )
    assert {"conversion-events.png", "reconciliation.png"} <= screenshots
    for name in screenshots:
        assert (DOCS / "_static" / "screenshots" / name).is_file(), name


def test_doctest_markers_are_only_in_the_pages_the_tests_read() -> None:
    marked = {
        page
        for page in [README, *doc_pages()]
        if _BLOCK_RE.search(page.read_text(encoding="utf-8"))
    }
    assert marked == set(DOCTEST_PAGES), "a page with doctest blocks is not in DOCTEST_PAGES"


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


CONCERNS = ("admin", "api", "ledger", "record", "sending")


def test_how_it_is_built_lists_every_module_of_the_package() -> None:
    package = ROOT / "django_pjpixel"
    listed: set[str] = set()
    for row in table_after("modules"):
        listed.update(re.findall(r"`([\w/]+(?:\.py|/))`", row[1]))
    names = {path.name for path in package.glob("*.py")} - {"__init__.py"}
    for concern in CONCERNS:
        names |= {f"{concern}/{path.name}" for path in (package / concern).glob("*.py")} - {
            f"{concern}/__init__.py"
        }
    names |= {
        f"{path.name}/"
        for path in package.iterdir()
        if path.is_dir()
        and path.name not in {"locale", "migrations", "testing", "__pycache__", *CONCERNS}
    }
    missing = {name for name in names if not any(entry.startswith(name) for entry in listed)}
    assert not missing, f"not in the docs' 'How it is built': {sorted(missing)}"
    gone = {entry for entry in listed if (package / entry).exists() is False}
    assert not gone, f"in the docs' 'How it is built' but not in the package: {sorted(gone)}"


# -- the quickstart, followed as written ------------------------------------


def test_quickstart_stays_within_twenty_lines_of_settings_and_code() -> None:
    blocks = quickstart_blocks("settings") + quickstart_blocks("file") + quickstart_blocks("shell")
    lines = [line for _path, code in blocks for line in code.splitlines() if line.strip()]
    assert len(lines) <= 20, f"the quickstart asks for {len(lines)} lines"
    assert {path for path, _code in quickstart_blocks("file")} == {
        "myshop/celery.py",
        "myshop/__init__.py",
    }
    text = QUICKSTART.read_text(encoding="utf-8")
    assert 'pip install "django-pjpixel[redis]"' in text
    assert "python manage.py pjpixel_check" in text
    from django_pjpixel.testing import server

    try:
        from django_pjpixel.testing.cli import build_parser
    except ImportError:  # before the emulator's command line had a module of its own
        from django_pjpixel.testing.server import build_parser

    # The credentials the quickstart puts in PJPIXEL are the emulator's defaults.
    defaults = build_parser().parse_args([])
    settings_code = quickstart_blocks("settings")[0][1]
    assert f'"CLIENT_ID": "{defaults.client_id}"' in settings_code
    assert f'"CLIENT_SECRET": "{defaults.client_secret}"' in settings_code
    assert f'"PIXEL_ID": "{server.DEFAULT_PIXEL}"' in settings_code
    assert f"127.0.0.1:{defaults.port}{defaults.base_path}" in settings_code


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.celery_worker
def test_quickstart_delivers_the_first_event_with_a_real_worker(tmp_path: Path) -> None:
    services.require_redis()
    port = free_port()
    queue = f"quickstart-{uuid.uuid4().hex[:8]}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PJPIXEL_", "CELERY_", "DEMO_")) and key != "PYTHONPATH"
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    project = tmp_path / "myshop"
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "myshop"],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    for path, code in quickstart_blocks("file"):
        assert path is not None
        (project / path).write_text(code, encoding="utf-8")
    settings_py = project / "myshop" / "settings.py"
    [(_, settings_code)] = quickstart_blocks("settings")
    # Not part of the quickstart: the emulator's free port, the suite's Redis
    # database, and a queue of this test's own, so no other worker takes its task.
    overrides = textwrap.dedent(
        f"""
        PJPIXEL["API_URL"] = PJPIXEL["API_URL"].replace(":8765/", ":{port}/")
        CELERY_BROKER_URL = {services.REDIS_URL!r}
        CELERY_TASK_DEFAULT_QUEUE = {queue!r}
        """
    )
    settings_py.write_text(
        settings_py.read_text(encoding="utf-8") + "\n" + settings_code + overrides,
        encoding="utf-8",
    )

    def manage(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=project,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrate = manage("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying django_pjpixel.0001_initial... OK" in migrate.stdout
    assert "WARNINGS" not in migrate.stderr, migrate.stderr

    emulator = subprocess.Popen(
        [sys.executable, "-m", "django_pjpixel.testing.server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "myshop",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "solo",
            ],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/_emulator/state")
        [(_, shell_code)] = quickstart_blocks("shell")
        shell = manage("shell", stdin=shell_code)
        assert shell.returncode == 0, shell.stdout + shell.stderr
        deadline = time.monotonic() + 60
        events: list[dict[str, object]] = []
        while not events and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/events") as r:
                events = json.load(r)
            time.sleep(0.2)
        assert events, worker_log.read_text(encoding="utf-8")
        check = manage("pjpixel_check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "Prisjakt conversion tracking is ready." in check.stdout
    finally:
        for process in (worker, emulator):
            process.terminate()
            process.wait(timeout=30)

    [event] = events
    assert event["external_event_id"] == "1001"
    assert event["data"] == {"amount": 499, "currency": "SEK", "number_of_items": 1}
    assert "succeeded" in worker_log.read_text(encoding="utf-8")
