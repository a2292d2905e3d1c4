"""The emulator over real loopback HTTP: ``EmulatorServer``, the WSGI app, the admin path
and ``python -m django_pjpixel.testing.server``."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import requests

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import PrisjaktConnectionError, PrisjaktTimeout
from django_pjpixel.testing import server as server_module
from django_pjpixel.testing import wsgi
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer, make_wsgi_app

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLIENT = "test-client"
SECRET = "s3cr3t-never-shown"
AUTH = {"client-id": CLIENT, "client-secret": SECRET}
START = datetime(2025, 3, 1, tzinfo=timezone.utc)
END = datetime(2025, 3, 31, tzinfo=timezone.utc)


def event(order: str = "order-1") -> dict[str, Any]:
    return {
        "event_name": "purchase",
        "event_time": "2025-03-13T10:45:46.987Z",
        "external_event_id": order,
        "data": {"amount": 1234, "currency": "SEK", "number_of_items": 4},
        "signed_click_id": "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125",
    }


def make_emulator(**kwargs: Any) -> PrisjaktEmulator:
    return PrisjaktEmulator(
        pixels={PIXEL},
        clients={CLIENT: {"secret": SECRET, "roles": ["event_publisher", "shop_user"]}},
        **kwargs,
    )


@pytest.fixture
def emulator() -> PrisjaktEmulator:
    return make_emulator()


@pytest.fixture
def server(emulator: PrisjaktEmulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator, timeout_sleep=5.0) as running:
        yield running


def http_client(server: EmulatorServer, **kwargs: Any) -> PrisjaktClient:
    kwargs.setdefault("timeout", (2.0, 2.0))
    return PrisjaktClient(
        api_url=server.url,
        token_url=server.token_url,
        pixel_id=PIXEL,
        client_id=CLIENT,
        client_secret=SECRET,
        **kwargs,
    )


def test_server_binds_loopback_on_a_free_port(server: EmulatorServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/click-conversion"
    assert server.token_url == f"http://127.0.0.1:{server.port}/oauth2/token"
    assert server.httpd.server_address[0] == "127.0.0.1"


def test_post_over_http(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    response = requests.post(f"{server.url}/pixels/{PIXEL}/events", json=event(), headers=AUTH)
    assert response.status_code == 201
    assert response.json() == emulator.events[0]
    assert response.headers["request-id"] == emulator.requests[0].request_id
    assert response.headers["X-RateLimit-Remaining"] == "9999"
    recorded = emulator.requests[0]
    assert recorded.headers["host"] == f"127.0.0.1:{server.port}"
    assert recorded.headers["client-secret"] == "REDACTED"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.json == event()


def test_get_without_body_records_no_content_type(
    server: EmulatorServer, emulator: PrisjaktEmulator
) -> None:
    response = requests.get(f"{server.url}/clients/{CLIENT}", headers=AUTH, timeout=5)
    assert response.json() == {"id": CLIENT, "roles": ["event_publisher", "shop_user"]}
    assert "content-type" not in emulator.requests[0].headers


def test_client_over_http_every_page(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    emulator.page_size = 2
    for i in range(13):
        emulator.add_event(PIXEL, event_time=START + timedelta(hours=i), external_event_id=f"e{i}")
    client = http_client(server)
    first = client.list_events(start=START, end=END)
    assert first.links["next"].startswith(f"{server.url}/pixels/{PIXEL}/events?from=")
    assert (first.next, first.last) == (2, 7)
    events = list(client.iter_events(start=START, end=END))
    assert [e["external_event_id"] for e in events] == [f"e{i}" for i in reversed(range(13))]
    client.close()


def test_client_over_http_create_and_conflict(server: EmulatorServer) -> None:
    client = http_client(server)
    assert client.create_event(event()).status == 201
    assert client.create_events([event("o2"), event("o3")]).status == 204
    with pytest.raises(Exception, match="already has this event"):
        client.create_event(event())
    client.close()


def test_oauth2_over_http(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    client = http_client(server, auth="oauth2")
    assert client.create_event(event()).status == 201
    emulator.revoke_tokens()
    assert client.get_client().data["id"] == CLIENT
    assert [r.path for r in emulator.requests] == [
        "/oauth2/token",
        f"/pixels/{PIXEL}/events",
        f"/clients/{CLIENT}",
        "/oauth2/token",
        f"/clients/{CLIENT}",
    ]
    client.close()


def test_reset_closes_the_connection(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    emulator.script(["reset"])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/clients/{CLIENT}", headers=AUTH, timeout=5)
    emulator.script(["reset"])
    client = http_client(server)
    with pytest.raises(PrisjaktConnectionError):
        client.get_client()
    assert client.get_client().status == 200
    assert [r.fault for r in emulator.requests] == ["reset", "reset", None]
    client.close()


def test_timeout_holds_the_answer(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    emulator.script(["timeout"])
    client = http_client(server, timeout=(1.0, 0.3))
    began = time.monotonic()
    with pytest.raises(PrisjaktTimeout):
        client.get_client()
    assert 0.3 <= time.monotonic() - began < 3
    assert client.get_client().status == 200
    client.close()


def test_timeout_ends_in_a_504_for_a_patient_client(emulator: PrisjaktEmulator) -> None:
    with EmulatorServer(emulator, timeout_sleep=0.05) as running:
        emulator.script(["timeout"])
        response = requests.get(f"{running.url}/clients/{CLIENT}", headers=AUTH, timeout=5)
    assert response.status_code == 504
    assert response.json()["title"] == "Gateway Timeout"


def test_stop_interrupts_a_held_answer(emulator: PrisjaktEmulator) -> None:
    running = EmulatorServer(emulator, timeout_sleep=60).start()
    emulator.script(["timeout"])
    outcome: list[int] = []
    closing: list[str | None] = []

    def call() -> None:
        answer = requests.get(f"{running.url}/clients/{CLIENT}", headers=AUTH, timeout=10)
        outcome.append(answer.status_code)
        closing.append(answer.headers.get("Connection"))

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 5
    while not emulator.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    running.stop()
    worker.join(10)
    assert time.monotonic() - began < 5
    assert outcome == [504]
    assert closing == ["close"]  # the answer under way is finished, and says it is the last


def test_latency_and_threads(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    emulator.latency = 0.3
    statuses: list[int] = []

    def call(index: int) -> None:
        body = event(f"o{index}")
        answer = requests.post(
            f"{server.url}/pixels/{PIXEL}/events", json=body, headers=AUTH, timeout=10
        )
        statuses.append(answer.status_code)

    began = time.monotonic()
    workers = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    elapsed = time.monotonic() - began
    assert statuses == [201] * 8
    assert 0.3 <= elapsed < 2.0  # served side by side, not one after the other


def test_the_stand_in_browser_script(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    assert server.script_url == f"{server.origin}/libs/pjpixel/pjpixel.min.js"
    response = requests.get(server.script_url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript"
    for part in ("window.pjpixel", "init:", "getConversion:", "clear:", '"pjpixel_conversion"'):
        assert part in response.text
    assert emulator.requests == []  # not an API call


def test_admin_path(server: EmulatorServer, emulator: PrisjaktEmulator) -> None:
    admin = f"{server.origin}/_emulator"
    requests.post(f"{server.url}/pixels/{PIXEL}/events", json=event(), headers=AUTH, timeout=5)
    state = requests.get(f"{admin}/state", timeout=5).json()
    assert state["events"] == emulator.events
    assert state["pixels"] == [PIXEL]
    assert state["requests"][0]["headers"]["client-secret"] == "REDACTED"
    assert requests.get(f"{admin}/events", timeout=5).json() == emulator.events
    listed = requests.get(f"{admin}/requests", timeout=5).json()
    assert [r["status"] for r in listed] == [201]
    assert SECRET not in json.dumps(state)

    script = {"steps": [503], "method": "POST", "path": "/events$"}
    assert requests.post(f"{admin}/script", json=script, timeout=5).status_code == 204
    answer = requests.post(
        f"{server.url}/pixels/{PIXEL}/events", json=event("o2"), headers=AUTH, timeout=5
    )
    assert answer.status_code == 503
    bad = requests.post(f"{admin}/script", json={"steps": ["boom"]}, timeout=5)
    assert (bad.status_code, bad.json()["title"]) == (400, "Bad script")
    assert requests.post(f"{admin}/script", data=b"{", timeout=5).status_code == 400
    assert requests.get(f"{admin}/nothing", timeout=5).status_code == 404
    assert requests.get(admin, timeout=5).status_code == 404

    assert requests.delete(f"{admin}/state", timeout=5).status_code == 204
    assert emulator.events == []
    assert emulator.requests == []  # admin calls are never recorded


def test_verbose_server_logs_requests(
    emulator: PrisjaktEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with EmulatorServer(emulator, verbose=True) as running:
        requests.get(f"{running.url}/clicks/x", headers=AUTH, timeout=5)
    assert "GET /click-conversion/clicks/x" in capfd.readouterr().err


def test_server_without_token_url() -> None:
    with EmulatorServer(make_emulator(token_url=None)) as running:
        assert running.token_url is None


def test_stop_without_start(emulator: PrisjaktEmulator) -> None:
    EmulatorServer(emulator).stop()


def test_wait_returns_once_stopped(emulator: PrisjaktEmulator) -> None:
    running = EmulatorServer(emulator).start()
    assert running.wait(0.01) is False
    threading.Timer(0.05, running.stop).start()
    assert running.wait(5) is True


def test_wsgi_app_alone() -> None:
    # Outside the server (no socket to reset) a reset is a proxy's 502, and the sleeps go
    # through the emulator's own sleep function.
    emulator = make_emulator(latency=0.5)
    slept: list[float] = []
    emulator.sleep = slept.append
    app = make_wsgi_app(emulator, timeout_sleep=7)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def run(path: str, method: str = "GET", body: bytes = b"") -> bytes:
        environ: dict[str, Any] = {
            "PATH_INFO": path,
            "REQUEST_METHOD": method,
            "HTTP_CLIENT_ID": CLIENT,
            "HTTP_CLIENT_SECRET": SECRET,
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "wsgi.input": io.BytesIO(body),
        }
        setup_testing_defaults(environ)
        return b"".join(app(environ, lambda status, headers: started.append((status, headers))))

    emulator.script(["reset", "timeout"])
    assert b"502 Bad Gateway" in run("/click-conversion/clicks/x")
    assert started[-1][0] == "502 Bad Gateway"
    run("/click-conversion/clicks/x")
    assert started[-1][0] == "504 Gateway Timeout"
    run(f"/click-conversion/pixels/{PIXEL}/events", "POST", json.dumps(event()).encode())
    assert started[-1][0] == "201 Created"
    assert slept == [7, 0.5]
    emulator.script([599])
    run("/click-conversion/clicks/x")
    assert started[-1][0] == "599 Unknown"


@pytest.mark.parametrize("loopback", [True, False])
def test_main_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loopback: bool
) -> None:
    def interrupted(self: EmulatorServer, timeout: float | None = None) -> bool:
        assert self.emulator.page_size == 3
        assert self.emulator.latency == 0.1
        assert self.emulator.state()["pixels"] == ["p1", "p2"]
        raise KeyboardInterrupt

    monkeypatch.setattr(EmulatorServer, "wait", interrupted)
    monkeypatch.setattr(server_module, "is_loopback", lambda host: loopback)
    argv = ["--port", "0", "--pixel", "p1", "--pixel", "p2", "--page-size", "3"]
    assert server_module.main([*argv, "--latency", "0.1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("pjpixel emulator: API at http://127.0.0.1:")
    assert "/click-conversion, token at http://127.0.0.1:" in out
    assert "/libs/pjpixel/pjpixel.min.js" in out
    assert ("not loopback only" in err) is not loopback
    assert '"PIXEL_ID": "p1",  # also: p2' in out
    assert "Roles of demo-client: event_publisher, shop_user." in out


def test_the_emulator_prints_the_settings_that_reach_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a new user pastes into settings.py: every value the emulator accepts."""
    seen: list[EmulatorServer] = []

    def interrupted(self: EmulatorServer, timeout: float | None = None) -> bool:
        seen.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(EmulatorServer, "wait", interrupted)
    assert (
        server_module.main(["--port", "0", "--client-id", "my-shop", "--client-secret", "pssst"])
        == 0
    )
    out = capsys.readouterr().out
    [server] = seen
    block = out[out.index("PJPIXEL = {") :]
    assert block.splitlines()[:6] == [
        "PJPIXEL = {",
        f'        "API_URL": "{server.url}",',
        f'        "PIXEL_ID": "{PIXEL}",',
        '        "CLIENT_ID": "my-shop",',
        '        "CLIENT_SECRET": "pssst",',
        "    }",
    ]
    assert server.url == f"http://127.0.0.1:{server.port}/click-conversion"


def test_help_shows_every_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no value cut at a line's end
    with pytest.raises(SystemExit):
        server_module.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in (
        "(default: 127.0.0.1)",
        "(default: 8765)",
        f"(default: {PIXEL})",
        "(default: demo-client)",
        "(default: demo-secret)",
        "(default: event_publisher,shop_user)",
        "(default: 1)",
        "(default: /click-conversion)",
        "(default: 50)",
        "(default: 10000)",
        "(default: 30.0)",
    ):
        assert default in text
    assert '"API_URL": "http://127.0.0.1:8765/click-conversion",' in text
    assert '"CLIENT_SECRET": "demo-secret",' in text


def test_emulator_from_args_defaults() -> None:
    args = server_module.build_parser().parse_args([])
    emulator = server_module.emulator_from_args(args)
    assert args.host == "127.0.0.1"
    assert emulator.state()["pixels"] == [PIXEL]
    assert emulator.base_path == "/click-conversion"
    answer = emulator.handle(
        "GET",
        "http://127.0.0.1:8765/click-conversion/shops/1/pixels",
        {"client-id": "demo-client", "client-secret": "demo-secret"},
        None,
    )
    assert answer.json() == [{"id": PIXEL, "shop_id": "1"}]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_python_m_server_entry_point() -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "django_pjpixel.testing.server",
        "--port",
        str(port),
        "--client-id",
        CLIENT,
        "--client-secret",
        SECRET,
        "--page-size",
        "1",
    ]
    origin = f"http://127.0.0.1:{port}"
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    state = requests.get(f"{origin}/_emulator/state", timeout=1).json()
                    break
                except requests.ConnectionError:
                    assert process.poll() is None, process.stderr.read() if process.stderr else ""
                    assert time.monotonic() < deadline, "the emulator did not come up"
                    time.sleep(0.1)
            assert state["events"] == []
            url = f"{origin}/click-conversion/pixels/{PIXEL}/events"
            for order in ("o1", "o2"):
                posted = requests.post(url, json=event(order), headers=AUTH, timeout=5)
                assert posted.status_code == 201
            listed = requests.get(
                url,
                params={"from": "2025-03-01T00:00:00Z", "to": "2025-03-31T00:00:00Z"},
                headers=AUTH,
                timeout=5,
            )
            assert listed.links["next"]["url"].startswith(f"{url}?from=2025-03-01T00%3A00%3A00Z")
            events = requests.get(f"{origin}/_emulator/events", timeout=5).json()
            assert [e["external_event_id"] for e in events] == ["o1", "o2"]
        finally:
            process.terminate()
            process.wait(10)
        assert process.stdout is not None
        assert f"API at {origin}/click-conversion" in process.stdout.read()


# -- keep-alive ----------------------------------------------------------------


def local_ports(session: requests.Session, url: str, count: int) -> list[int]:
    """The client-side port of each of ``count`` requests made through ``session``."""
    ports = []
    for _ in range(count):
        response = session.get(url, headers=AUTH, timeout=5, stream=True)
        ports.append(response.raw.connection.sock.getsockname()[1])
        response.content  # noqa: B018  (read it all: the connection goes back to the pool)
        response.close()
    return ports


def test_one_connection_serves_many_requests(server: EmulatorServer) -> None:
    with requests.Session() as session:
        ports = local_ports(session, f"{server.url}/clients/{CLIENT}", 5)
    assert len(set(ports)) == 1


def test_connection_close_and_http_1_0_are_honoured(server: EmulatorServer) -> None:
    url = f"{server.url}/clients/{CLIENT}"
    with requests.Session() as session:
        kept = session.get(url, headers=AUTH, timeout=5)
        session.headers["Connection"] = "close"
        closing = [session.get(url, headers=AUTH, timeout=5) for _ in range(3)]
    assert "Connection" not in kept.headers
    assert [(r.status_code, r.headers["Connection"]) for r in closing] == [(200, "close")] * 3
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            f"GET /click-conversion/clients/{CLIENT} HTTP/1.0\r\n"
            f"client-id: {CLIENT}\r\nclient-secret: {SECRET}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after one answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"\r\nConnection: close" in head
    assert json.loads(body)["id"] == CLIENT


def test_stop_ends_kept_alive_connections(emulator: PrisjaktEmulator) -> None:
    running = EmulatorServer(emulator).start()
    url = f"{running.url}/clients/{CLIENT}"
    with requests.Session() as session:
        assert session.get(url, headers=AUTH, timeout=5).status_code == 200
        running.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, headers=AUTH, timeout=5)
    assert len(emulator.requests) == 1


def test_an_idle_connection_is_closed(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wsgi.Handler, "IDLE_TIMEOUT", 0.2)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        began = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by our timeout
    assert 0.15 <= time.monotonic() - began < 4


def test_a_reset_on_a_kept_alive_connection_leaves_the_next_request_working(
    server: EmulatorServer, emulator: PrisjaktEmulator
) -> None:
    url = f"{server.url}/clients/{CLIENT}"
    with requests.Session() as session:
        assert session.get(url, headers=AUTH, timeout=5).status_code == 200
        emulator.script(["reset"])
        with pytest.raises(requests.ConnectionError):
            session.get(url, headers=AUTH, timeout=5)
        assert session.get(url, headers=AUTH, timeout=5).status_code == 200
