"""A client made before ``fork()`` is not shared with the child (issue 11, item 1).

Two processes reading one pooled connection get each other's answers, or
interleave their requests' bytes. The parent uses ``get_client()`` first (as
``pjpixel_check`` at start-up does), forks, and parent and child each deliver
their own row at the same moment to a real emulator server answering in 0.4 s.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from django_pjpixel.api.client import PrisjaktClient, get_client
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.delivery import deliver_event
from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.server import EmulatorServer
from tests.helpers import PIXEL_ID, api_settings, make_event

SECRET = "s3cr3t-never-shown"

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = PrisjaktEmulator(
        pixels={PIXEL_ID},
        clients={"test-client": {"secret": SECRET, "roles": ["shop_user"]}},
        latency=0.4,
    )
    with EmulatorServer(emulator) as running:
        yield running


def settings_for(server: EmulatorServer, **extra: Any) -> dict[str, Any]:
    return api_settings(server.url, TOKEN_URL=server.token_url, **extra)


def deliver_in_parent_and_child(parent_pk: int, child_pk: int) -> int:
    """Fork; both deliver their row once the parent says go. The child's exit status."""
    connections.close_all()  # each process opens its own database connection
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(go_write)
            os.read(go_read, 1)
            deliver_event(child_pk)
            code = 0
        finally:
            os._exit(code)
    os.close(go_read)
    os.write(go_write, b"x")
    os.close(go_write)
    deliver_event(parent_pk)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("auth", ["headers", "oauth2"])
def test_parent_and_child_each_get_their_own_answer(server: EmulatorServer, auth: str) -> None:
    with override_settings(PJPIXEL=settings_for(server, AUTH=auth)):
        call_command("pjpixel_check", stdout=io.StringIO(), stderr=io.StringIO())
        for round_ in range(3):
            parent = make_event(f"parent-{round_}")
            child = make_event(f"child-{round_}")
            assert deliver_in_parent_and_child(parent.pk, child.pk) == 0
    stored = {e["external_event_id"]: e["id"] for e in server.emulator.events}
    assert sorted(stored) == sorted([f"{who}-{n}" for who in ("parent", "child") for n in range(3)])
    assert len(server.emulator.events) == 6  # each event once
    for row in ConversionEvent.objects.all():
        assert row.status == ConversionEvent.Status.SENT
        assert row.remote_event_id == stored[row.order_id]


def test_a_client_seen_in_another_process_starts_afresh(server: EmulatorServer) -> None:
    with override_settings(PJPIXEL=settings_for(server)):
        client = get_client()
        session = client.session
        client._pid = -1  # as if forked without the at-fork hook (a C-level fork)
        client.get_client()
        assert client.session is not session
        assert get_client() is client
        own = PrisjaktClient(session=session)
        own._pid = -1
        own.get_client()
        assert own.session is session  # a session given is kept, its pool emptied
        own.close()
