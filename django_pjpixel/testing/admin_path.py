"""The emulator server's admin path, ``/_emulator``: not part of the emulated API.

It lets another process (the demo) see and script what the emulator holds;
it is never rate limited or recorded:

- ``GET /_emulator/state``: ``{"events", "requests", "clicks", "pixels"}``
- ``GET /_emulator/events``, ``GET /_emulator/requests``: those lists alone
- ``DELETE /_emulator/state``: ``reset()``, answers 204
- ``POST /_emulator/script``: ``{"steps": [503, "timeout"], "method": "POST",
  "path": "/events$"}`` queues faults, answers 204
"""

from __future__ import annotations

import json

from django_pjpixel.testing.emulator import PrisjaktEmulator

ADMIN_PREFIX = "/_emulator"


def answer_admin(
    emulator: PrisjaktEmulator, method: str, path: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body that answer an admin request for ``path``."""
    name = path[len(ADMIN_PREFIX) :].strip("/")
    state_views = {"state": None, "events": "events", "requests": "requests"}
    if method == "GET" and name in state_views:
        state = emulator.state()
        key = state_views[name]
        data = state if key is None else state[key]
        return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()
    if method == "DELETE" and name == "state":
        emulator.reset()
        return 204, {}, b""
    if method == "POST" and name == "script":
        try:
            spec = json.loads(body)
            emulator.script(spec["steps"], method=spec.get("method"), path=spec.get("path"))
        except (ValueError, KeyError, TypeError) as err:
            error = {"title": "Bad script", "status": 400, "detail": str(err)}
            return 400, {"Content-Type": "application/problem+json"}, json.dumps(error).encode()
        return 204, {}, b""
    error = {"title": "Not found", "status": 404, "detail": f"No admin resource {method} {path}"}
    return 404, {"Content-Type": "application/problem+json"}, json.dumps(error).encode()
