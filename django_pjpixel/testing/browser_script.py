"""The stand-in for Prisjakt's browser script: where the emulator's server hands it out.

``pjpixel.min.js`` beside this module implements the documented interface
(``init``, ``getConversion``, ``clear``; the click of ``?pjclid=`` kept in
localStorage under ``pjpixel_conversion``). Point ``PJPIXEL["SCRIPT_URL"]``
at ``EmulatorServer.script_url`` and ``{% pjpixel_script %}`` pages load it.
"""

from __future__ import annotations

import functools
from importlib import resources

SCRIPT_PATH = "/libs/pjpixel/pjpixel.min.js"  # where Prisjakt's CDN has it
HEADERS = {"Content-Type": "text/javascript", "Cache-Control": "no-store"}


@functools.cache
def standin_script() -> bytes:
    return resources.files(__package__).joinpath("pjpixel.min.js").read_bytes()
