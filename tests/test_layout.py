"""The package's layout: one concern a module, none over 400 lines (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path

import django_pjpixel

PACKAGE = Path(django_pjpixel.__file__).resolve().parent
MAX_LINES = 400
# Generated or data, not code a reader navigates.
EXEMPT = ("migrations", "locale")


def modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if not any(part in EXEMPT for part in path.relative_to(PACKAGE).parts)
    )


def test_the_package_has_its_modules() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in modules()}
    assert {"delivery.py", "outbox.py", "backlog.py", "publisher.py", "purchases.py"} <= names


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in modules()
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"split these modules (DESIGN.md, at most {MAX_LINES} lines): {too_long}"
