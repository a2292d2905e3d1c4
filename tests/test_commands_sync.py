"""``pjpixel_sync`` against the API emulator."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_pjpixel.models import PrisjaktEvent, PrisjaktSync
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.test_commands_admin import fails, run

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a shell's stderr does."""

    def isatty(self) -> bool:
        return True


def seed(api: PrisjaktEmulator, count: int, days_ago: int = 0) -> None:
    now = timezone.now() - timedelta(days=days_ago)
    for index in range(count):
        api.add_event(event_time=now - timedelta(hours=index + 1), external_event_id=f"o{index}")


def test_the_last_days_by_default(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 3)
    seed(pjpixel_api, 2, days_ago=10)  # beyond the default seven days
    out, err = run("pjpixel_sync")
    assert "3 events at Prisjakt from" in out
    assert "in 1 pages." in out
    assert "The mirror is up to date." in out
    assert err == ""  # no progress bar where stderr is not a terminal
    assert PrisjaktEvent.objects.count() == 3
    run_ = PrisjaktSync.objects.get()
    assert run_.end - run_.start == timedelta(days=7)


def test_days_and_a_range_of_whole_days(pjpixel_api: PrisjaktEmulator) -> None:
    seed(pjpixel_api, 2, days_ago=10)
    run("pjpixel_sync", "--days", "12")
    assert PrisjaktEvent.objects.count() == 2
    today = timezone.localdate()
    first = (today - timedelta(days=100)).isoformat()
    out, _ = run("pjpixel_sync", "--from", first, "--to", today.isoformat())
    assert f"from {first} 00:00 to {today.isoformat()} 23:59" in out
    requests = [r for r in pjpixel_api.requests if r.method == "GET"]
    assert len(requests) == 1 + 2  # 100 days are listed as two ranges of at most 60


def test_a_progress_bar_on_a_terminal(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.page_size = 2
    seed(pjpixel_api, 5)
    out, terminal = io.StringIO(), Terminal()
    call_command("pjpixel_sync", "--days", "1", stdout=out, stderr=terminal)
    bar = terminal.getvalue()
    assert "/3 [" in bar  # pages of 3, the total from the Link header's last page
    assert " events]" in bar
    assert "5 events at Prisjakt" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-03-01"], "Give --from and --to together."),
        (["--days", "2", "--from", "2025-03-01", "--to", "2025-03-02"], "not both"),
        (["--days", "0"], "--days must be at least 1."),
        (["--from", "2025-03-02", "--to", "2025-03-01"], "must not be before from"),
    ],
)
def test_wrong_options(pjpixel_api: PrisjaktEmulator, args: list[str], message: str) -> None:
    _, _, error = fails("pjpixel_sync", *args)
    assert message in error
    assert pjpixel_api.requests == []


def test_a_date_that_is_no_date() -> None:
    with pytest.raises(CommandError, match="not a date"):
        call_command("pjpixel_sync", "--from", "March", "--to", "2025-03-01")


def test_an_api_error_names_the_cause(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([401])
    _, _, error = fails("pjpixel_sync")
    assert "HTTP 401" in error


def test_incomplete_settings(pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, object]) -> None:
    pjpixel["PIXEL_ID"] = ""
    _, _, error = fails("pjpixel_sync")
    assert "The settings are incomplete" in error


def test_a_run_stopped_at_the_page_cap_exits_1(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, object]
) -> None:
    pjpixel_api.page_size = 1
    seed(pjpixel_api, 3)
    pjpixel["MAX_PAGES"] = 2
    out, _, error = fails("pjpixel_sync")
    assert "2 events at Prisjakt" in out
    assert "The sync stopped early: stopped at the page cap (MAX_PAGES = 2)" in error
