"""The emulator on its own, held to prisjakt-api.md fact by fact.

Each test quotes the fact it checks (``[seed]``/``[docs]``/``[open]`` as in
the API notes). The seed's JSON and ``Link`` examples are copied verbatim.

This module tests ``PrisjaktEmulator`` itself (``testing/emulator.py``); the
tests of its parts mirror them: ``test_emulator_clock.py``,
``test_emulator_model.py``, ``test_emulator_wire.py``,
``test_emulator_faults.py`` and ``test_emulator_routes.py``. They share the
helpers and fixtures defined here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from django_pjpixel.testing.emulator import (
    DEFAULT_BASE_URL,
    EmulatorResponse,
    ManualClock,
    PrisjaktEmulator,
)
from tests.seed import BODY as SEED_BODY

PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
CLIENT = "test-client"
SECRET = "s3cr3t-never-shown"
AUTH = {"client-id": CLIENT, "client-secret": SECRET, "Content-Type": "application/json"}
CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def purchase(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(SEED_BODY)
    body["external_event_id"] = "order-1"
    body["signed_click_id"] = CLICK
    body.update(overrides)
    return body


def make_emulator(clock: ManualClock | None = None, **kwargs: Any) -> PrisjaktEmulator:
    kwargs.setdefault("pixels", {PIXEL})
    kwargs.setdefault(
        "clients",
        {
            CLIENT: {"secret": SECRET, "roles": ["event_publisher", "shop_user"]},
            "reader": {"secret": "reader-secret", "roles": ["shop_user"]},
            "boss": {"secret": "boss-secret-1", "roles": ["admin"]},
        },
    )
    kwargs.setdefault("shops", {"121": [PIXEL]})
    return PrisjaktEmulator(clock=clock or ManualClock(), **kwargs)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2025, 3, 13, 10, 45, 46, 987000, tzinfo=timezone.utc))


@pytest.fixture
def emu(clock: ManualClock) -> PrisjaktEmulator:
    return make_emulator(clock)


def call(
    emulator: PrisjaktEmulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] = AUTH,
    query: Mapping[str, str] | None = None,
    raw: bytes | None = None,
    base: str = DEFAULT_BASE_URL,
) -> EmulatorResponse:
    url = base + path + ("?" + urlencode(query) if query else "")
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    return emulator.handle(method, url, headers, data)


def post(emulator: PrisjaktEmulator, body: Any, **kwargs: Any) -> EmulatorResponse:
    return call(emulator, "POST", f"/pixels/{PIXEL}/events", body, **kwargs)


def field_errors_of(response: EmulatorResponse) -> dict[str, Any]:
    assert response.status == 400
    errors: dict[str, Any] = response.json()["field_errors"]
    return errors


def get_token(emulator: PrisjaktEmulator, client: str = CLIENT, secret: str = SECRET) -> str:
    form = {"grant_type": "client_credentials", "client_id": client, "client_secret": secret}
    answer = emulator.handle(
        "POST", "https://auth.pj.nu/oauth2/token", {}, urlencode(form).encode()
    )
    token: str = answer.json()["access_token"]
    return token


# -- Base address -------------------------------------------------------------


def test_base_address_is_the_seeds() -> None:
    # "Base address `https://api.pj.nu/click-conversion` [seed]"
    assert PrisjaktEmulator().base_url == "https://api.pj.nu/click-conversion"
    emulator = make_emulator()
    assert post(emulator, purchase()).status == 201
    outside = call(emulator, "POST", "", purchase(), base="https://api.pj.nu/elsewhere")
    assert outside.status == 404


def test_base_url_is_a_setting() -> None:
    # "Older docs used `https://api.schibsted.com/prisjakt/click` [docs], so the base URL
    # must be a setting."
    old = "https://api.schibsted.com/prisjakt/click"
    emulator = make_emulator(base_url=old + "/")
    assert emulator.base_path == "/prisjakt/click"
    assert post(emulator, purchase(), base=old).status == 201


def test_token_url_can_be_turned_off() -> None:
    emulator = make_emulator(token_url=None)
    answer = emulator.handle("POST", "https://auth.pj.nu/oauth2/token", {}, b"")
    assert answer.status == 404


# -- State, seeding and threads -----------------------------------------------


def test_reset_clears_state_not_configuration(emu: PrisjaktEmulator) -> None:
    post(emu, purchase())
    emu.add_click("c")
    get_token(emu)
    emu.script([500])
    emu.reset()
    assert (emu.events, emu.requests, emu.clicks, emu.tokens, emu.pending_script) == (
        [],
        [],
        {},
        [],
        0,
    )
    assert post(emu, purchase()).status == 201
    assert emu.state()["pixels"] == [PIXEL]


def test_add_event_needs_a_pixel_when_ambiguous() -> None:
    emulator = make_emulator(pixels={"a", "b"})
    with pytest.raises(ValueError, match="name the pixel_id"):
        emulator.add_event()
    event = emulator.add_event("c", signed_click_id=CLICK)
    assert event["click_id"] == "239cd31f-9d43-4cb4-b8dc-2057fe18c289"
    single = make_emulator()
    assert single.add_event()["event_time"] == "2025-03-13T10:45:46.987Z"


def test_thread_safety_one_event_per_reference() -> None:
    emulator = make_emulator()
    statuses: list[int] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        answer = post(emulator, purchase(external_event_id=f"o{index % 10}"))
        with lock:
            statuses.append(answer.status)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] * 10 + [409] * 90
    assert len({e["id"] for e in emulator.events}) == 10
    assert len(emulator.requests) == 100
