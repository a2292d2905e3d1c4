"""``manage.py pjpixel_deliver``: deliver what is due, print the counts, exit 1 on failures."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_pjpixel.ledger.restatements import restate_purchase
from django_pjpixel.models import ConversionEvent
from django_pjpixel.testing.emulator import PrisjaktEmulator

pytestmark = pytest.mark.django_db

CLICK = "239cd31f-9d43-4cb4-b8dc-2057fe18c289_1b05fa7f1c34d125"


def make_event(order_id: str, **fields: Any) -> ConversionEvent:
    return ConversionEvent.objects.create(
        pixel_id="5c034de4-8e86-4d16-9fd1-20cfec6c97e4",
        order_id=order_id,
        event_time=timezone.now(),
        amount=Decimal("10"),
        currency=fields.pop("currency", "SEK"),
        number_of_items=1,
        click_id=CLICK,
        **fields,
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("pjpixel_deliver", *args, stdout=out)
    return out.getvalue()


def test_nothing_due(pjpixel_api: PrisjaktEmulator) -> None:
    assert run() == "Nothing is due.\n"


def test_prints_counts_per_outcome(
    use_tz: bool, pjpixel_api: PrisjaktEmulator, settings: Any
) -> None:
    settings.PJPIXEL = {**settings.PJPIXEL, "BATCH_SIZE": 1}  # one POST per event
    make_event("a")
    make_event("b")
    make_event("c")
    pjpixel_api.add_event(external_event_id="c")
    pjpixel_api.script([503], method="POST")
    assert run() == "pending: 1\nsent: 1\nduplicate: 1\n"
    assert pjpixel_api.pending_script == 0


def test_limit(pjpixel_api: PrisjaktEmulator) -> None:
    for order_id in "abc":
        make_event(order_id)
    assert run("--limit", "2") == "sent: 2\n"
    assert run("--limit", "2") == "sent: 1\n"


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(CommandError, match="--limit"):
        run("--limit", "0")


def test_exits_1_when_an_event_failed_permanently(pjpixel_api: PrisjaktEmulator) -> None:
    make_event("ok")
    make_event("bad", currency="USD")
    out = StringIO()
    with pytest.raises(CommandError, match="1 event\\(s\\) failed permanently") as info:
        call_command("pjpixel_deliver", stdout=out)
    assert info.value.returncode == 1
    assert out.getvalue() == "sent: 1\nfailed: 1\n"


def test_restatements_are_counted_and_their_failures_exit_1(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    for order_id in ("a", "b"):
        make_event(order_id, status=ConversionEvent.Status.SENT, attempts=1)
        restate_purchase(order_id=order_id, amount=0, number_of_items=0)
    pjpixel_api.script([400, 204, 400], method="PATCH")
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 restatement\(s\) failed permanently") as info:
        call_command("pjpixel_deliver", stdout=out)
    assert info.value.returncode == 1
    assert out.getvalue() == "restatement failed: 1\nrestatement sent: 1\n"


def test_help_documents_the_exit_status() -> None:
    from django_pjpixel.management.commands.pjpixel_deliver import Command

    assert "status 1" in Command.help
