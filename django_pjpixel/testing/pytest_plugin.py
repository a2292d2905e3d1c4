"""The ``pjpixel_api`` fixture, registered through the ``pytest11`` entry point.

``pjpixel_api`` is a ``PrisjaktEmulator`` configured from the current
``settings.PJPIXEL`` (pixel id, client id and secret, ``API_URL``,
``TOKEN_URL``, and each market of ``PIXELS``), with ``responses`` intercepting
every ``requests`` call: calls to the API and token URLs reach the emulator,
any other call fails with ``ConnectionError``. Each client gets the
``event_publisher`` and ``shop_user`` roles (a market's client, its market's
pixel only), and shop ``"1"`` holds the pixels. Tests inspect ``.events`` and
``.requests`` and set ``.latency``, ``.script([...])``::

    def test_paid_order_reaches_prisjakt(pjpixel_api):
        pay_order()
        assert pjpixel_api.events[0]["external_event_id"] == "order-1"

Nothing is imported at module level beyond pytest, so a shop's test run never
breaks on this plugin: neither Django settings nor ``responses`` are needed
until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_pjpixel.testing.emulator import PrisjaktEmulator


def emulator_from_settings() -> PrisjaktEmulator:
    """An emulator that accepts exactly what ``settings.PJPIXEL`` configures.

    Each market of ``PJPIXEL["PIXELS"]`` adds its pixel and its client, which
    may use its own market's pixels only (a 403 for another's).
    """
    from django_pjpixel.conf import pjpixel_settings
    from django_pjpixel.markets import all_markets, is_configured
    from django_pjpixel.testing.emulator import PrisjaktEmulator

    conf = pjpixel_settings
    emulator = PrisjaktEmulator(base_url=conf.API_URL, token_url=conf.TOKEN_URL)
    pixels = [conf.PIXEL_ID] if conf.PIXEL_ID else []
    roles = ["event_publisher", "shop_user"]
    if conf.CLIENT_ID:
        emulator.add_client(conf.CLIENT_ID, conf.CLIENT_SECRET, roles)
    clients: dict[tuple[str, str], list[str]] = {}
    for market in all_markets() if is_configured() else []:
        pixels += [market.pixel_id] if market.pixel_id else []
        if market.client_id:
            clients.setdefault((market.client_id, market.client_secret), []).append(market.pixel_id)
    for (client_id, secret), allowed in clients.items():
        emulator.add_client(client_id, secret, roles, pixels=allowed)
    pixels = list(dict.fromkeys(pixels))
    for pixel in pixels:
        emulator.add_pixel(pixel)
    if pixels:
        emulator.add_shop("1", pixels)
    return emulator


@pytest.fixture
def pjpixel_api() -> Iterator[PrisjaktEmulator]:
    """An emulated Prisjakt API behind ``requests`` for the length of one test."""
    from django_pjpixel.testing.responses_adapter import EmulatorMock

    with EmulatorMock(emulator_from_settings()) as emulator:
        yield emulator
