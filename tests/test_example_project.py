"""The example shop end to end, as ``make demo`` runs it: real processes, real HTTP.

Each test starts ``example_project/run_demo.py`` (the supervisor behind
``make demo``) with its own ``DEMO_VAR_DIR`` under ``tmp_path``, so it never
touches a developer's ``example_project/var/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.browser import SCREENSHOTS, chromium

ROOT = Path(__file__).resolve().parent.parent
RUN_DEMO = ROOT / "example_project" / "run_demo.py"
CLICK_RE = re.compile(
    r"From Prisjakt: (?P<url>http://\S+\?pjclid=(?P<click>[0-9a-f-]{36}_[0-9a-f]{16}))"
)


def demo_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh clone: none of the test suite's own settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "DEMO_", "DATABASE_URL", "COV_"))
        and key != "PYTHONPATH"
    }
    env["DEMO_VAR_DIR"] = str(var_dir)
    env.update(extra)
    return env


def run_smoke(var_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_DEMO), "--visitors", "8", "--timeout", "45"],
        env=demo_env(var_dir, DEMO_SMOKE="1", **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )


def assert_journey_passed(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    table = {
        label.strip(): value.strip()
        for label, value in re.findall(r"^(\S[^\n]*?)\s{2,}(\S[^\n]*)$", result.stdout, re.M)
    }
    assert table["orders paid"] == "8", output
    assert table["attributable (click + consent)"] == "4", output
    assert table["attributable delivered exactly once"] == "4 / 4", output
    assert table["duplicates"] == "0", output
    assert table["non-attributable orders at Prisjakt"] == "0", output
    assert "OK: every attributable order delivered once" in result.stdout
    assert "stopped all 3 processes; none left behind" in result.stdout, output


@pytest.mark.slow
@pytest.mark.celery_worker
def test_demo_smoke_journey_on_the_embedded_defaults(tmp_path: Path) -> None:
    result = run_smoke(tmp_path)
    assert_journey_passed(result)
    assert (tmp_path / "demo.sqlite3").exists()
    assert (tmp_path / "broker" / "queue").is_dir()


@pytest.mark.slow
@pytest.mark.celery_worker
@pytest.mark.services
def test_demo_smoke_journey_on_redis(tmp_path: Path) -> None:
    services.require_redis()
    import redis

    url = "redis://127.0.0.1:6379/12"
    redis.Redis.from_url(url).flushdb()
    try:
        result = run_smoke(tmp_path, CELERY_BROKER_URL=url)
    finally:
        redis.Redis.from_url(url).flushdb()
    assert_journey_passed(result)
    assert not (tmp_path / "broker").exists()


@pytest.mark.slow
@pytest.mark.celery_worker
@pytest.mark.services
def test_demo_smoke_journey_on_postgres_and_rabbitmq(tmp_path: Path) -> None:
    services.require_rabbitmq()
    import psycopg

    admin_url = "postgresql://postgres@127.0.0.1:5432/test"
    name = f"pjpixel_demo_{os.getpid()}_{int(time.time())}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.Error as err:
        services.unavailable(f"PostgreSQL is not reachable at 127.0.0.1:5432: {err}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            result = run_smoke(
                tmp_path,
                DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}",
                CELERY_BROKER_URL=services.RABBITMQ_URL,
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert_journey_passed(result)
    assert not (tmp_path / "demo.sqlite3").exists()


# -- serving -------------------------------------------------------------------


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := pattern.search(line):
                    return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the demo did not print {pattern.pattern!r}:\n{self.output}")

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def child_pids(self) -> set[int]:
        """Processes whose parent is the supervisor (each leads its own group)."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid:
                pids.add(int(stat.parent.name))
        return pids


def _load_run_demo() -> Any:
    spec = importlib.util.spec_from_file_location("run_demo", RUN_DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


group_alive = _load_run_demo().group_alive


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    proc = subprocess.Popen(
        [sys.executable, str(RUN_DEMO), "--port", "0"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Demo(proc)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.slow
@pytest.mark.celery_worker
def test_ctrl_c_stops_every_process_the_demo_started(demo: Demo) -> None:
    demo.wait_for(CLICK_RE)
    children = demo.child_pids()
    assert len(children) == 4, demo.output  # emulator, worker, beat, shop
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(timeout=30) == 130
    time.sleep(0.2)
    assert not [pid for pid in children if group_alive(pid)], demo.output
    assert "stopped all 4 processes; none left behind" in demo.output


def emulator_events(api_url: str) -> list[dict[str, object]]:
    origin = api_url.split("/click-conversion")[0]
    with urllib.request.urlopen(f"{origin}/_emulator/events", timeout=5) as response:
        events: list[dict[str, object]] = json.load(response)
    return events


def event_data(api_url: str, order_id: str) -> Any:
    [event] = [e for e in emulator_events(api_url) if e["external_event_id"] == order_id]
    return event["data"]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.celery_worker
def test_browser_landing_checkout_payment_shows_in_the_admin(demo: Demo) -> None:
    from playwright.sync_api import expect

    landing = demo.wait_for(CLICK_RE)
    shop = demo.wait_for(re.compile(r"Shop:\s+(?P<url>http://\S+/)"))["url"]
    api_url = demo.wait_for(re.compile(r"API emulator:\s+(?P<url>http://\S+)"))["url"]

    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(landing["url"])
        expect(page.locator("#consent-banner")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "demo-1-landing.png")
        page.click("#consent-accept")
        expect(page.locator("#consent-banner")).to_have_count(0)
        page.locator(".add-to-cart").first.click()
        expect(page.locator("#checkout")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "demo-2-cart.png")
        page.click("#checkout")
        expect(page.locator("#pay")).to_be_visible()
        page.screenshot(path=SCREENSHOTS / "demo-3-fakepay.png")
        order_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        page.click("#pay")
        expect(page.locator("#order-status")).to_contain_text("Paid")

        deadline = time.monotonic() + 45
        while not [e for e in emulator_events(api_url) if e["external_event_id"] == order_id]:
            assert time.monotonic() < deadline, "the worker did not deliver:\n" + demo.output
            time.sleep(0.3)
        [event] = [e for e in emulator_events(api_url) if e["external_event_id"] == order_id]
        assert event["click_id"] == landing["click"].split("_")[0]
        page.reload()
        expect(page.locator("#pjpixel-status")).to_contain_text("Sent")
        page.screenshot(path=SCREENSHOTS / "demo-4-order.png")

        page.goto(shop + "admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        page.goto(shop + "admin/django_pjpixel/conversionevent/")
        outbox_row = page.locator("#result_list tr").filter(
            has=page.get_by_text(order_id, exact=True)
        )
        expect(outbox_row).to_have_count(1)
        expect(outbox_row).to_contain_text("Sent")
        page.screenshot(path=SCREENSHOTS / "demo-5-admin-outbox.png", full_page=True)
        page.goto(shop + "admin/django_pjpixel/conversionevent/prisjakt-events/")
        prisjakt_row = page.locator("table.pjpixel-events tr").filter(
            has=page.get_by_text(order_id, exact=True)
        )
        expect(prisjakt_row).to_have_count(1)
        expect(prisjakt_row).to_contain_text(landing["click"].split("_")[0])
        page.screenshot(path=SCREENSHOTS / "demo-6-admin-prisjakt-events.png", full_page=True)

        # Staff cancel the order in the shop's own admin: Prisjakt gets amount 0.
        page.goto(shop + "admin/shop/order/")
        page.check(f'input[name="_selected_action"][value="{order_id}"]')
        page.select_option('select[name="action"]', "cancel")
        page.click('button[name="index"]')
        expect(page.locator(".messagelist")).to_contain_text(f"Order {order_id}: cancelled")
        deadline = time.monotonic() + 45  # deliver_due runs every 15 s in the demo
        while event_data(api_url, order_id)["amount"] != 0:
            assert time.monotonic() < deadline, "deliver_due did not restate:\n" + demo.output
            time.sleep(0.3)
        assert event_data(api_url, order_id) == {
            "amount": 0,
            "currency": "SEK",
            "number_of_items": 0,
        }
        page.goto(shop + "admin/django_pjpixel/conversionevent/?restated=yes")
        restated_row = page.locator("#result_list tr").filter(
            has=page.get_by_text(order_id, exact=True)
        )
        expect(restated_row).to_contain_text("0.00 SEK, 0 items")
        restated_row.get_by_role("link", name=order_id, exact=True).click()
        expect(page.locator(".inline-group")).to_contain_text("cancelled by staff")
        expect(page.locator(".inline-group")).to_contain_text("Sent")
        page.screenshot(path=SCREENSHOTS / "demo-7-admin-restated.png", full_page=True)
