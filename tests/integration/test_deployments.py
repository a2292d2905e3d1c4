"""The product as shops deploy it: every paid order reaches Prisjakt exactly once.

Each test serves the test shop (``deploy_shop``) with a real web server,
delivers with a real Celery worker on a real broker, on a real database, and
checks what the emulated Prisjakt holds and what the ledger says. A visitor
lands with ``?pjclid=`` and pays through HTTP (the ``deliver_event`` path,
one ``POST`` per order, claimed by ``outbox.claim_one``); then rows left by
an outage are sent by ``deliver_due`` in the worker (the chunk claim and one
many-events ``PATCH``).

The deployments cover every web server, every pool on both brokers, and
every database with ``USE_TZ`` on and off, each pair at least once, plus a
prefork worker whose parent used the API client before forking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from django_pjpixel.testing.server import EmulatorServer
from tests import services
from tests.celery_app import app as celery_app
from tests.integration.conftest import FAST_SETTINGS
from tests.integration.deploy_harness import (
    Shop,
    ShopDatabases,
    WebServer,
    deploy_env,
    order_prefix,
)
from tests.integration.harness import (
    CeleryWorker,
    RecordingEmulator,
    click_id,
    delete_queue,
    event_counts,
    publishing_to,
    unique_name,
)

pytestmark = [pytest.mark.services, pytest.mark.celery_worker, pytest.mark.slow]

VISITORS, ORDERS_EACH, BACKLOG = 2, 2, 3


@dataclass(frozen=True)
class Deployment:
    server: str  # gunicorn-sync, gunicorn-gthread (both --preload), uvicorn
    pool: str  # Celery's prefork, threads, solo
    broker: str  # redis, rabbitmq
    database: str  # postgres, mariadb, sqlite
    use_tz: bool
    check_at_start: bool = False  # pjpixel_check in the worker's parent, before the fork

    def __str__(self) -> str:
        tz = "tz" if self.use_tz else "naive"
        warm = "-checked-at-start" if self.check_at_start else ""
        return f"{self.server}-{self.pool}{warm}-{self.broker}-{self.database}-{tz}"


DEPLOYMENTS = [
    Deployment("gunicorn-sync", "prefork", "redis", "postgres", use_tz=True),
    Deployment("gunicorn-gthread", "threads", "rabbitmq", "mariadb", use_tz=True),
    Deployment("uvicorn", "solo", "redis", "sqlite", use_tz=True),
    Deployment("gunicorn-sync", "threads", "redis", "mariadb", use_tz=False),
    Deployment("uvicorn", "prefork", "rabbitmq", "postgres", use_tz=False),
    Deployment("gunicorn-gthread", "solo", "rabbitmq", "sqlite", use_tz=False),
]


@pytest.fixture(scope="session")
def shop_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopDatabases]:
    databases = ShopDatabases(tmp_path_factory.mktemp("shop-db"))
    yield databases
    databases.drop()


def broker_url(name: str) -> str:
    if name == "rabbitmq":
        services.require_rabbitmq()
        return services.RABBITMQ_URL
    services.require_redis()
    return services.REDIS_URL


def deliver_due_now(app: Celery, broker: str, queue: str) -> None:
    """What Celery beat does every minute: publish ``deliver_due`` to the worker's queue."""
    with publishing_to(app, broker, queue):
        app.send_task("django_pjpixel.tasks.deliver_due")


@dataclass
class Delivered:
    """What one deployment run left: the orders it paid and backlogged, and the ledger's rows."""

    paid: list[str]
    orders: list[str]
    rows: list[dict[str, Any]]


def run_deployment(
    deployment: Deployment,
    databases: ShopDatabases,
    emulator_server: EmulatorServer,
    tmp_path: Path,
    *,
    visitors: int = VISITORS,
    orders_each: int = ORDERS_EACH,
    concurrency: int = 2,
) -> Delivered:
    """Serve the shop, start the worker, pay through HTTP, then ``deliver_due`` sends a backlog."""
    broker = broker_url(deployment.broker)
    queue = unique_name("pjpixel-deploy")
    env = deploy_env(
        database_url=databases.url(deployment.database),
        use_tz=deployment.use_tz,
        broker_url=broker,
        queue=queue,
        api_url=emulator_server.url,
        pjpixel=FAST_SETTINGS,
    )
    if deployment.check_at_start:
        env["PJPIXEL_DEPLOY_CHECK_AT_START"] = "1"
    server = WebServer(deployment.server, env, tmp_path / "server.log")
    worker = CeleryWorker(
        broker_url=broker,
        queue=queue,
        log_path=tmp_path / "worker.log",
        env=env,
        concurrency=concurrency,
        pool=deployment.pool,
        app="tests.integration.deploy_celery",
    )
    prefix = order_prefix(deployment.database)
    started = time.monotonic()
    server.launch()
    worker.launch()
    try:
        server.ready()
        worker.ready()
        shop = Shop(server.url)
        paid = []
        for visitor in range(visitors):
            browser = shop.visitor(click_id())
            for order in range(orders_each):
                paid.append(f"{prefix}paid-{visitor}{order}")
                assert shop.pay(browser, paid[-1]) == "pending"
        shop.wait_final(prefix, len(paid))
        shop.backlog(f"{prefix}due", BACKLOG)  # what an outage left behind
        deliver_due_now(celery_app, broker, queue)
        rows = shop.wait_final(prefix, len(paid) + BACKLOG)
    except BaseException:
        print(f"\n===== {deployment.server} log =====\n{server.log()[-10_000:]}")
        print(f"\n===== worker log =====\n{worker.log()[-10_000:]}")
        raise
    finally:
        worker.stop(timeout=3.0 if broker.startswith("amqp") else 10.0)
        server.stop()
        delete_queue(broker, queue)
    print(
        f"\n[deploy] {deployment}: {len(rows)} orders, all final "
        f"{time.monotonic() - started:.1f} s after the start"
    )
    return Delivered(paid, [*paid, *(f"{prefix}due-{i:05d}" for i in range(BACKLOG))], rows)


def assert_each_once(emulator: RecordingEmulator, delivered: Delivered) -> None:
    """Prisjakt holds every order once; each row is sent, a POSTed one with its own event's id."""
    orders, rows = delivered.orders, delivered.rows
    prefix = orders[0][: orders[0].index("paid-")]
    at_prisjakt = {k: n for k, n in event_counts(emulator).items() if k.startswith(prefix)}
    assert at_prisjakt == dict.fromkeys(orders, 1)
    assert {row["order_id"]: row["status"] for row in rows} == dict.fromkeys(orders, "sent")
    remote_ids = {event["external_event_id"]: event["id"] for event in emulator.events}
    paid = delivered.paid
    posted = {row["order_id"]: row["remote_event_id"] for row in rows if row["order_id"] in paid}
    assert posted == {order: remote_ids[order] for order in paid}  # each row its own event


@pytest.mark.parametrize("deployment", [pytest.param(d, id=str(d)) for d in DEPLOYMENTS])
def test_every_paid_order_reaches_prisjakt_once(
    deployment: Deployment,
    shop_databases: ShopDatabases,
    emulator: RecordingEmulator,
    emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    delivered = run_deployment(deployment, shop_databases, emulator_server, tmp_path)
    assert_each_once(emulator, delivered)


def test_a_prefork_worker_whose_parent_checked_the_api_first(
    shop_databases: ShopDatabases,
    emulator: RecordingEmulator,
    emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    """``pjpixel_check`` in ``worker_init``: the client is made before the pool forks.

    Three children send at once (0.4 s of latency): with the parent's client
    they would share its kept-alive connection and read each other's answers.
    """
    emulator.latency = 0.4
    deployment = Deployment(
        "gunicorn-sync", "prefork", "redis", "postgres", use_tz=True, check_at_start=True
    )
    delivered = run_deployment(
        deployment, shop_databases, emulator_server, tmp_path, orders_each=3, concurrency=3
    )
    assert_each_once(emulator, delivered)
