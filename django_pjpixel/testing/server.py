"""The emulator over real HTTP: a threaded WSGI server, loopback only by default.

Run it (``--help`` shows every option's default)::

    python -m django_pjpixel.testing.server

The API is then at ``http://127.0.0.1:8765/click-conversion`` and the OAuth2
token endpoint at ``http://127.0.0.1:8765/oauth2/token``, for the client
``demo-client`` with the secret ``demo-secret`` (roles ``event_publisher`` and
``shop_user``) and the pixel ``5c034de4-8e86-4d16-9fd1-20cfec6c97e4``: it
prints these as the ``PJPIXEL`` settings that report to it. ``Link`` headers
point back at the server itself.

In tests, ``with EmulatorServer(emulator) as server:`` serves ``emulator`` on a
free port from a daemon thread; ``server.url`` is its base URL. Connections
are HTTP/1.1 and kept alive between requests, as behind the real API's front
end; stopping the server ends them.

Its WSGI app and HTTP/1.1 handling (faults, held answers) are ``wsgi.py``'s.
The admin path ``/_emulator`` (``admin_path.py``) lets another process (the
demo) see and script what the emulator holds; ``server.script_url`` hands out
a stand-in for Prisjakt's browser script (``browser_script.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

from django_pjpixel.checks import is_loopback
from django_pjpixel.testing.browser_script import SCRIPT_PATH
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.wsgi import Handler, ThreadingWSGIServer, make_wsgi_app

DEFAULT_PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
# The emulator's own demo credentials (client id, secret): shown, as they guard nothing.
DEMO = ("demo-client", "demo-secret")
BASE_PATH = "/click-conversion"


class EmulatorServer:
    """``emulator`` served over HTTP from a daemon thread (``port=0``: a free one)."""

    def __init__(
        self,
        emulator: PrisjaktEmulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_sleep: float = 30.0,
        verbose: bool = False,
    ) -> None:
        self.emulator = emulator
        self._stopped = threading.Event()
        self.app = make_wsgi_app(emulator, timeout_sleep=timeout_sleep, wait=self._stopped.wait)
        self.httpd = ThreadingWSGIServer((host, port), Handler)
        self.httpd.verbose = verbose
        self.httpd.set_app(self.app)
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL on this server, e.g. ``http://127.0.0.1:PORT/click-conversion``."""
        return self.origin + self.emulator.base_path

    @property
    def script_url(self) -> str:
        """The stand-in browser script, for ``PJPIXEL["SCRIPT_URL"]``."""
        return self.origin + SCRIPT_PATH

    @property
    def token_url(self) -> str | None:
        """The token endpoint on this server, when the emulator has one."""
        path = self.emulator.token_path
        return None if path is None else self.origin + path

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pjpixel-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` (from another thread or a signal)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        self.httpd.stopping = True  # before the held answers wake: they are the last
        self._stopped.set()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.close_connections()
        self.httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _DefaultsFormatter(
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Every option's default in ``--help`` (a flag has none; ``--pixel``'s is in its help),
    and the settings in the epilog as lines of code."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_pjpixel.testing.server",
        description="Serve the emulated Prisjakt Click & Conversion API over HTTP.\n"
        "At start-up it prints the PJPIXEL settings that report to it.",
        epilog="With the defaults, a development shop's settings are:\n\n"
        + "".join(
            f"    {line}\n"
            for line in settings_lines(f"http://127.0.0.1:8765{BASE_PATH}", [DEFAULT_PIXEL], *DEMO)
        ),
        formatter_class=_DefaultsFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8765, help="0: a free port")
    parser.add_argument(
        "--pixel",
        action="append",
        help=f"a pixel id it knows, repeatable (default: {DEFAULT_PIXEL})",
    )
    parser.add_argument("--client-id", default=DEMO[0], help="the client id it accepts")
    parser.add_argument("--client-secret", default=DEMO[1], help="that client's secret")
    parser.add_argument(
        "--roles", default="event_publisher,shop_user", help="that client's roles, comma-separated"
    )
    parser.add_argument("--shop", default="1", help="the shop id that holds the pixels")
    parser.add_argument("--base-path", default=BASE_PATH, help="the API's path on the server")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--page-size", type=int, default=50, help="events a listed page holds")
    parser.add_argument("--rate-limit", type=int, default=10_000, help="requests an hour")
    parser.add_argument(
        "--timeout-sleep", type=float, default=30.0, help="seconds a scripted timeout holds"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def settings_lines(api_url: str, pixels: Sequence[str], client_id: str, secret: str) -> list[str]:
    """``PJPIXEL = {...}`` for a shop reporting to this emulator, a line each."""
    also = f"  # also: {', '.join(pixels[1:])}" if len(pixels) > 1 else ""
    return [
        "PJPIXEL = {",
        f'    "API_URL": {json.dumps(api_url)},',
        f'    "PIXEL_ID": {json.dumps(pixels[0])},{also}',
        f'    "CLIENT_ID": {json.dumps(client_id)},',
        f'    "CLIENT_SECRET": {json.dumps(secret)},',
        "}",
    ]


def emulator_from_args(args: argparse.Namespace) -> PrisjaktEmulator:
    pixels = args.pixel or [DEFAULT_PIXEL]
    emulator = PrisjaktEmulator(
        base_url=f"http://{args.host}:{args.port}{args.base_path}",
        token_url=f"http://{args.host}:{args.port}/oauth2/token",
        pixels=pixels,
        shops={args.shop: pixels},
        page_size=args.page_size,
        rate_limit=args.rate_limit,
        latency=args.latency,
    )
    emulator.add_client(args.client_id, args.client_secret, roles_of(args))
    return emulator


def roles_of(args: argparse.Namespace) -> list[str]:
    return [role.strip() for role in args.roles.split(",") if role.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host):
        sys.stderr.write(f"warning: serving on {args.host}, not loopback only\n")
    emulator = emulator_from_args(args)
    server = EmulatorServer(
        emulator, args.host, args.port, timeout_sleep=args.timeout_sleep, verbose=args.verbose
    )
    server.start()
    pixels = args.pixel or [DEFAULT_PIXEL]
    lines = settings_lines(server.url, pixels, args.client_id, args.client_secret)
    sys.stdout.write(
        f"pjpixel emulator: API at {server.url}, token at {server.token_url}, "
        f"browser script at {server.script_url}\n"
        "Report to it from a development shop with these settings:\n"
        + "".join(f"    {line}\n" for line in lines)
        + f"Roles of {args.client_id}: {', '.join(roles_of(args))}. Stop it with Ctrl-C.\n"
    )
    sys.stdout.flush()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
