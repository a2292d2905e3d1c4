"""A private RabbitMQ node for tests that must change the broker's own settings.

The shared RabbitMQ (127.0.0.1:5672) is never stopped nor reconfigured: a test
that needs, say, a consumer timeout of a few seconds starts a node of its own
on free loopback ports, with its own name, data directory, Erlang cookie and
config, and stops it by the id of the process it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import suppress
from pathlib import Path

from tests.integration.harness import free_port, unique_name, wait_until
from tests.services import port_open, unavailable

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


def require_rabbitmq_server() -> None:
    """Skip (fail under CI) where no ``rabbitmq-server`` can be started."""
    if not RABBITMQ_SERVER.exists() and shutil.which("rabbitmq-server") is None:
        unavailable("rabbitmq-server is not installed: a private RabbitMQ node cannot start")


class RabbitMQServer:
    """A ``rabbitmq-server`` node of this test's own, ``consumer_timeout`` in milliseconds.

    RabbitMQ looks for deliveries held past ``consumer_timeout`` on each
    channel's tick (a minute by default); the tick is shortened here so a
    timeout of a few seconds is enforced within a second of expiring.
    """

    def __init__(self, root: Path, *, consumer_timeout_ms: int, tick_ms: int = 500) -> None:
        self.root = root
        self.port = free_port()
        self.dist_port = free_port()
        self.nodename = f"{unique_name('pjpixel')}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms
        self.tick_ms = tick_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, *, timeout: float = 60.0) -> RabbitMQServer:
        require_rabbitmq_server()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            f"consumer_timeout = {self.consumer_timeout_ms}\n"
        )
        (self.root / "advanced.config").write_text(
            f"[{{rabbit, [{{channel_tick_interval, {self.tick_ms}}}]}}].\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")  # no management listener
        (self.root / "rabbitmq-env.conf").write_text("")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                env=self.env(),
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited early:\n{self.log()}")
            return port_open("127.0.0.1", self.port, timeout=0.5)

        wait_until(listening, timeout=timeout, interval=0.2, what=f"RabbitMQ :{self.port}")
        return self

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        for path in sorted((self.root / "log").glob("*.log")):
            text += f"\n--- {path.name}\n" + path.read_text(errors="replace")
        return text

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl`` against this node (with its cookie)."""
        done = subprocess.run(
            [str(RABBITMQCTL), "-n", self.nodename, "-q", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def unacknowledged(self, queue: str) -> int:
        """Messages of ``queue`` delivered to a consumer and not acknowledged yet."""
        for line in self.ctl("list_queues", "name", "messages_unacknowledged").splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        return 0

    def stop(self) -> None:
        """Stop the node this object started (its process group), nothing else."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with suppress(subprocess.SubprocessError, OSError):
                self.ctl("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self.proc = None
        deadline = time.monotonic() + 10
        while port_open("127.0.0.1", self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.1)
