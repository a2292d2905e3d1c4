"""Test helpers: an emulator of the Prisjakt Click & Conversion API.

- ``emulator.PrisjaktEmulator``: the API's documented behaviour, in memory,
  built on ``clock``, ``model``, ``wire``, ``faults``, ``routes`` and
  ``divergence``;
- ``responses_adapter.EmulatorMock``: the emulator behind ``requests``;
- ``server.EmulatorServer`` and ``python -m django_pjpixel.testing.server``:
  the emulator over real HTTP (``wsgi``), with its ``admin_path``, and the
  stand-in for Prisjakt's browser script (``browser_script``);
- ``pytest_plugin``: the ``pjpixel_api`` fixture.

Only the standard library is imported here; ``responses`` is needed by the
adapter and the fixture alone.
"""

from __future__ import annotations

from django_pjpixel.testing.emulator import (
    EmulatorResponse,
    ManualClock,
    PrisjaktEmulator,
    RecordedRequest,
)

__all__ = ["EmulatorResponse", "ManualClock", "PrisjaktEmulator", "RecordedRequest"]
