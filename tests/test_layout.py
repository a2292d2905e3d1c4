"""The package's layout (DESIGN.md, "Package layout: by concern"): the root keeps the public
face, each concern is a subpackage, one concern a module, none over 400 lines."""

from __future__ import annotations

from pathlib import Path

import django_pjpixel

PACKAGE = Path(django_pjpixel.__file__).resolve().parent
MAX_LINES = 400
MAX_ROOT_MODULES = 22
CONCERNS = {"api", "ledger", "sending", "record", "admin"}
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
    assert {
        "sending/delivery.py",
        "sending/outbox.py",
        "sending/backlog.py",
        "ledger/publisher.py",
        "ledger/purchases.py",
        "api/client.py",
        "record/sync.py",
        "admin/outbox.py",
    } <= names


def test_the_root_keeps_the_public_face_and_no_more() -> None:
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at the package's root: {root}"


def test_each_concern_is_a_subpackage() -> None:
    packages = {
        path.parent.name for path in PACKAGE.glob("*/__init__.py") if path.parent.name in CONCERNS
    }
    assert packages == CONCERNS


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in modules()
    }
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"split these modules (DESIGN.md, at most {MAX_LINES} lines): {too_long}"
