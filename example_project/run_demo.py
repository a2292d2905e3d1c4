#!/usr/bin/env python
"""``make demo``: the example shop with everything it needs, started and stopped together.

Starts, each in its own process group: the Prisjakt API emulator
(``python -m django_pjpixel.testing.server``), a Celery worker, Celery beat
(the periodic ``deliver_due``) and the shop (``runserver``). Ctrl-C (SIGINT)
or SIGTERM stops every one of them, and the supervisor checks that none is
left behind.

With ``DEMO_SMOKE=1`` (or ``--smoke``) it serves nothing: it runs the scripted
journey (``manage.py demo_journey``) against the same emulator and worker and
exits with the journey's status.

Embedded defaults need no server: SQLite and the broker (kombu's filesystem
transport) live in ``example_project/var/`` (``DEMO_VAR_DIR`` to move it).
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and
Redis/RabbitMQ.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
# The same values as PJPIXEL in demo_site/settings.py: the emulator accepts only them.
PIXEL_ID = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-secret"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # demo only
DEFAULT_PORT = 8000
STOP_GRACE = 15.0


class Stop(Exception):
    """SIGINT or SIGTERM arrived: stop everything."""


class Signals:
    """Turns SIGINT/SIGTERM into ``Stop``, held back while a child is being registered."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self.hold = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def ignore(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.pending = signal.Signals(signum).name
        if not self.hold:
            raise Stop(self.pending)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.hold = True
        try:
            yield
        finally:
            self.hold = False
        if self.pending:
            raise Stop(self.pending)


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """``preferred`` when it is free, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def new_click_id() -> str:
    """A click id in Prisjakt's observed shape: a UUID, ``_`` and 16 hex digits."""
    return f"{uuid.uuid4()}_{secrets.token_hex(8)}"


class Supervisor:
    """Children in their own process groups, their output prefixed, all stopped together."""

    def __init__(self, env: dict[str, str], log_dir: Path | None, signals: Signals) -> None:
        self.env = env
        self.signals = signals
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._threads: list[threading.Thread] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with self.signals.held():  # a Ctrl-C now must not lose track of the new child
            proc = subprocess.Popen(
                args,
                cwd=HERE,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: Ctrl-C reaches us, not it
            )
            self.children.append((name, proc))
        sink: IO[str] | None = None
        if self.log_dir is not None:
            sink = (self.log_dir / f"{name}.log").open("w", encoding="utf-8")
        thread = threading.Thread(
            target=_pump, args=(name, proc, sink), name=f"pump-{name}", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        return proc

    def check_alive(self) -> None:
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited unexpectedly with status {code}")

    def stop_all(self) -> bool:
        """SIGTERM every group (newest first), then SIGKILL; True when none is left."""
        for _name, proc in reversed(self.children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"[demo] {name} did not stop in {STOP_GRACE:.0f} s: killing it", flush=True)
        clean = True
        for name, proc in self.children:
            # The leader has exited; a descendant may still hold the group.
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None or group_alive(proc.pid):
                print(f"[demo] {name} (process group {proc.pid}) is still alive", flush=True)
                clean = False
        for thread in self._threads:
            thread.join(timeout=2)
        return clean


def _pump(name: str, proc: subprocess.Popen[bytes], sink: IO[str] | None) -> None:
    assert proc.stdout is not None
    prefix = f"[{name}] "
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if sink is not None:
            sink.write(line + "\n")
            sink.flush()
        else:
            print(prefix + line, flush=True)
    if sink is not None:
        sink.close()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the process group ``pgid``.

    A killed descendant stays a zombie until its new parent reaps it, and in a
    container that parent may never do so: zombies hold no resources, so they
    do not count.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_until(ready: Callable[[], bool], what: str, sup: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        sup.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(0.2)


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(200 <= response.status < 500)
        except urllib.error.HTTPError as err:
            return err.code < 500
        except OSError:
            return False

    return probe


def port_open(host: str, port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return probe


def build_env(var_dir: Path, emulator_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "demo_site.settings"
    env["DEMO_VAR_DIR"] = str(var_dir)
    env["DEMO_API_URL"] = f"http://127.0.0.1:{emulator_port}/click-conversion"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def prepare(var_dir: Path, env: dict[str, str]) -> None:
    """Folders, ``check``, ``migrate`` and the admin user (one short Django process)."""
    var_dir.mkdir(parents=True, exist_ok=True)
    if (env.get("CELERY_BROKER_URL") or "filesystem://").startswith("filesystem:"):
        for folder in ("queue", "processed", "control"):
            (var_dir / "broker" / folder).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [PYTHON, "manage.py", "demo_setup", "--username", ADMIN_USER, "--password", ADMIN_PASSWORD],
        cwd=HERE,
        env=env,
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DEMO_PORT") or DEFAULT_PORT),
        help=f"the shop's port (default {DEFAULT_PORT}, or a free one if taken; 0: any free one)",
    )
    parser.add_argument("--emulator-port", type=int, default=0)
    parser.add_argument(
        "--smoke",
        action="store_true",
        default=os.environ.get("DEMO_SMOKE", "") not in ("", "0"),
        help="run the scripted journey instead of serving (DEMO_SMOKE=1)",
    )
    parser.add_argument("--visitors", type=int, default=int(os.environ.get("DEMO_VISITORS", "12")))
    parser.add_argument("--timeout", type=float, default=60.0, help="journey: seconds to wait")
    args = parser.parse_args(argv)

    var_dir = Path(os.environ.get("DEMO_VAR_DIR") or HERE / "var").resolve()
    emulator_port = args.emulator_port or free_port()
    shop_port = free_port(args.host, args.port)
    env = build_env(var_dir, emulator_port)
    log_dir = var_dir / "logs" if args.smoke else None

    signals = Signals()
    signals.install()
    sup = Supervisor(env, log_dir, signals)
    status = 0
    try:
        prepare(var_dir, env)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        emulator = [PYTHON, "-m", "django_pjpixel.testing.server", "--port", str(emulator_port)]
        emulator += [
            "--pixel",
            PIXEL_ID,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ]
        sup.start("emulator", emulator if args.smoke else [*emulator, "--verbose"])
        wait_until(port_open("127.0.0.1", emulator_port), "the API emulator", sup, 30)
        celery = [PYTHON, "-m", "celery", "-A", "demo_site"]
        sup.start(
            "worker",
            [
                *celery,
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"demo-{os.getpid()}@%h",
            ],
        )
        sup.start(
            "beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", str(var_dir / "beat-schedule")],
        )
        if args.smoke:
            status = run_journey(sup, args.visitors, args.timeout, log_dir)
        else:
            serve(sup, args.host, shop_port, emulator_port)
    except Stop as stop:
        print(f"\n[demo] {stop}: stopping…", flush=True)
        status = 130 if str(stop) == "SIGINT" else 143
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"[demo] {err}", file=sys.stderr, flush=True)
        if log_dir is not None:
            _print_log_tails(log_dir)
        status = 1
    finally:
        signals.ignore()
        count = len(sup.children)
        if sup.stop_all():
            if count:
                print(f"[demo] stopped all {count} processes; none left behind.", flush=True)
        else:
            status = status or 1
    return status


def serve(sup: Supervisor, host: str, port: int, emulator_port: int) -> None:
    sup.start(
        "shop", [PYTHON, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--skip-checks"]
    )
    base = f"http://{host}:{port}"
    wait_until(http_ok(base + "/"), "the shop", sup, 60)
    click = new_click_id()
    print(
        "\n".join(
            [
                "",
                "=" * 72,
                f"  Shop:          {base}/",
                f"  From Prisjakt: {base}/?pjclid={click}",
                f"  Admin:         {base}/admin/   login {ADMIN_USER} / password {ADMIN_PASSWORD}"
                " (demo only)",
                f"  API emulator:  http://127.0.0.1:{emulator_port}/click-conversion",
                "  Ctrl-C stops everything.",
                "=" * 72,
                "",
            ]
        ),
        flush=True,
    )
    while True:
        sup.check_alive()
        time.sleep(0.5)


def run_journey(sup: Supervisor, visitors: int, timeout: float, log_dir: Path | None) -> int:
    journey = subprocess.Popen(
        [
            PYTHON,
            "manage.py",
            "demo_journey",
            "--visitors",
            str(visitors),
            "--timeout",
            str(timeout),
        ],
        cwd=HERE,
        env=sup.env,
        stdin=subprocess.DEVNULL,
    )
    try:
        while journey.poll() is None:
            sup.check_alive()
            time.sleep(0.2)
    finally:
        if journey.poll() is None:
            journey.terminate()
            journey.wait(timeout=10)
    if journey.returncode != 0 and log_dir is not None:
        _print_log_tails(log_dir)
    return journey.returncode


def _print_log_tails(log_dir: Path, lines: int = 30) -> None:
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log} ---", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
