"""Real deployments of the test shop: its database, its web server, a visitor's HTTP client.

``ShopDatabases`` creates one database per engine for the whole session
(PostgreSQL, MariaDB, an SQLite file) and migrates it once; ``WebServer``
serves ``deploy_app`` with gunicorn (``--preload``; sync or gthread workers)
or uvicorn (ASGI); ``Shop`` is what a visitor's browser and the test see of
it. Every process is started and stopped by the id of the process it
started, and every address is loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import requests

from tests import services
from tests.integration.harness import ROOT, free_port, wait_until

BIN = Path(sys.executable).parent
SETTINGS = "tests.integration.deploy_settings"
MARIADB = ("127.0.0.1", 3306)
SERVERS = ("gunicorn-sync", "gunicorn-gthread", "uvicorn")


def deploy_env(
    *,
    database_url: str,
    use_tz: bool,
    broker_url: str,
    queue: str,
    api_url: str,
    pjpixel: Mapping[str, Any],
    sqlite: str = "tuned",
) -> dict[str, str]:
    """The environment every process of one deployment shares."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "PJPIXEL_DEPLOY_DATABASE_URL": database_url,
        "PJPIXEL_DEPLOY_USE_TZ": "true" if use_tz else "false",
        "PJPIXEL_DEPLOY_SQLITE": sqlite,
        "CELERY_BROKER_URL": broker_url,
        "PJPIXEL_TEST_CELERY_QUEUE": queue,
        "PJPIXEL_TEST_API_URL": api_url,
        "PJPIXEL_TEST_SETTINGS": json.dumps(dict(pjpixel)),
        "PYTHONUNBUFFERED": "1",
    }


def manage(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``django-admin <args>`` with the deployment's settings, as cron or a release step runs it."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ShopDatabases:
    """One migrated database per engine for a session: ``url(engine)``; ``drop()`` at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.name = f"pjpixel_deploy_{os.getpid()}"
        self._urls: dict[str, str] = {}

    def url(self, engine: str) -> str:
        if engine not in self._urls:
            url = self._create(engine)
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS}
            result = manage({**env, "PJPIXEL_DEPLOY_DATABASE_URL": url}, "migrate", "--noinput")
            assert result.returncode == 0, result.stdout + result.stderr
            self._urls[engine] = url
        return self._urls[engine]

    def _create(self, engine: str) -> str:
        if engine == "sqlite":
            return f"sqlite:///{self.tmp / 'shop.sqlite3'}"
        if engine == "postgres":
            services.require_postgres()
            self._postgres(
                f'DROP DATABASE IF EXISTS "{self.name}"', f'CREATE DATABASE "{self.name}"'
            )
            return f"postgres://postgres@127.0.0.1:5432/{self.name}"
        assert engine == "mariadb", engine
        if not services.port_open(*MARIADB):
            services.unavailable("MariaDB is not reachable at 127.0.0.1:3306")
        self._mariadb(f"DROP DATABASE IF EXISTS `{self.name}`", f"CREATE DATABASE `{self.name}`")
        return f"mysql://root@127.0.0.1:3306/{self.name}"

    def drop(self) -> None:
        if "postgres" in self._urls:
            with suppress(Exception):
                self._postgres(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        if "mariadb" in self._urls:
            with suppress(Exception):
                self._mariadb(f"DROP DATABASE IF EXISTS `{self.name}`")

    @staticmethod
    def _postgres(*statements: str) -> None:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/test", autocommit=True, connect_timeout=5
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  # our own names

    @staticmethod
    def _mariadb(*statements: str) -> None:
        import pymysql

        conn = pymysql.connect(host=MARIADB[0], port=MARIADB[1], user="root", connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()


class WebServer:
    """The shop behind gunicorn ``--preload`` (sync or gthread workers) or uvicorn (ASGI)."""

    def __init__(self, kind: str, env: Mapping[str, str], log_path: Path, workers: int = 2) -> None:
        assert kind in SERVERS, kind
        self.kind = kind
        self.env = dict(env)
        self.log_path = log_path
        self.workers = workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        if self.kind == "uvicorn":
            return [
                str(BIN / "uvicorn"),
                "tests.integration.deploy_app:asgi",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--lifespan=off",  # Django's ASGI handler does not speak it
                "--log-level=warning",
            ]
        worker_class = self.kind.removeprefix("gunicorn-")
        return [
            str(BIN / "gunicorn"),
            "tests.integration.deploy_app:wsgi",
            "--preload",  # Django is imported once, then the workers are forked
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={self.workers}",
            f"--worker-class={worker_class}",
            "--threads=4",
            "--graceful-timeout=5",
            "--log-level=warning",
        ]

    def launch(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def ready(self, timeout: float = 30.0) -> WebServer:
        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.log()}")
            try:
                return requests.get(self.url + "/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout=timeout, interval=0.1, what=f"{self.kind} to answer")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # a graceful stop, as a deploy does
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Shop:
    """What a visitor's browser, and the test, see of a served shop."""

    def __init__(self, url: str) -> None:
        self.url = url

    def visitor(self, click: str) -> requests.Session:
        """A browser that lands from Prisjakt with ``?pjclid=click``; its cookies kept."""
        browser = requests.Session()
        response = browser.get(f"{self.url}/?pjclid={click}", timeout=10)
        assert response.status_code == 200, response.text
        return browser

    def pay(self, browser: requests.Session, order_id: str) -> str:
        response = browser.post(f"{self.url}/pay/{order_id}/", timeout=30)
        assert response.status_code == 200, response.text[:2000]
        return str(response.json()["status"])

    def backlog(self, prefix: str, count: int) -> None:
        """``count`` rows due now, as an outage leaves them: ``<prefix>-00000`` and on."""
        params: dict[str, str | int] = {"prefix": prefix, "count": count}
        response = requests.post(f"{self.url}/backlog/", params=params, timeout=30)
        assert response.status_code == 200, response.text[:2000]

    def rows(self, prefix: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/rows/", params={"prefix": prefix}, timeout=30)
        assert response.status_code == 200, response.text[:2000]
        return list(response.json()["rows"])

    def wait_final(self, prefix: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The ledger's rows of ``prefix`` once ``count`` of them are final (bounded wait)."""
        final = {"sent", "duplicate", "failed", "skipped", "dead"}
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(prefix)
            if len(rows) == count and all(row["status"] in final for row in rows):
                return rows
            if time.monotonic() > deadline:
                return rows  # the test's assertions say what is missing
            time.sleep(0.1)


def order_prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}-"
