"""SQLite, the embedded default, with a broker that fails fast: no paid order is lost.

A shop on Django's default SQLite settings whose broker fails within
milliseconds (a transport that cannot load, a refused connection): one
visitor pays 30 orders in quick succession, then cron runs
``pjpixel_deliver``. Every order must have its row, and every row must reach
Prisjakt exactly once in that one run, leaving nothing due behind. (The
publisher used to write to the row after a failed publish, from its own
thread: on SQLite that write collided with the next checkout's transaction
and the purchase was lost, or it pushed the row past the run's start.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from django_pjpixel.testing.server import EmulatorServer
from tests.integration.conftest import FAST_SETTINGS
from tests.integration.deploy_harness import Shop, WebServer, deploy_env, manage
from tests.integration.harness import RecordingEmulator, click_id, event_counts, free_port

pytestmark = [pytest.mark.slow]

ORDERS = 30


def test_orders_paid_while_publishing_fails_are_all_sent_by_one_pjpixel_deliver(
    emulator: RecordingEmulator, emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    env = deploy_env(
        database_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        sqlite="default",  # no busy timeout or IMMEDIATE transactions configured
        use_tz=True,
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # refused at once
        queue="nowhere",
        api_url=emulator_server.url,
        # The default retries: each attempt fails at once, and the publisher is
        # still at work on earlier orders while the next ones are paid.
        pjpixel={**FAST_SETTINGS, "PUBLISH_RETRIES": 2},
    )
    migrated = manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    server = WebServer("gunicorn-sync", env, tmp_path / "server.log", workers=1)
    server.launch()
    try:
        server.ready()
        shop = Shop(server.url)
        browser = shop.visitor(click_id())
        orders = [f"sqlite-{i:02d}" for i in range(ORDERS)]
        answers = [shop.pay(browser, order) for order in orders]
        run = manage(env, "pjpixel_deliver")
        rows = shop.rows("sqlite-")
    finally:
        server.stop()
    log = server.log()
    print(f"\n[sqlite] pjpixel_deliver: {run.stdout.strip()!r}, exit {run.returncode}")
    assert "could not record the purchase" not in log, log[-5000:]
    assert answers == ["pending"] * ORDERS
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["sent:", str(ORDERS)]
    assert {row["order_id"]: row["status"] for row in rows} == dict.fromkeys(orders, "sent")
    assert event_counts(emulator) == dict.fromkeys(orders, 1)


@pytest.mark.parametrize(("sqlite", "warned"), [("default", True), ("tuned", False)])
def test_check_w004_warns_of_sqlites_defaults_only(
    sqlite: str, warned: bool, tmp_path: Path
) -> None:
    env = deploy_env(
        database_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        sqlite=sqlite,
        use_tz=True,
        broker_url="redis://127.0.0.1:6379/15",
        queue="nowhere",
        api_url="http://127.0.0.1:9/click-conversion",
        pjpixel={},
    )
    result = manage(env, "check", "--fail-level", "WARNING")
    assert ("django_pjpixel.W004" in result.stderr) is warned, result.stderr
    assert result.returncode == (1 if warned else 0), result.stdout + result.stderr
