"""Server-side Prisjakt conversion tracking for Django shops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_pjpixel._version import __version__

__all__ = [
    "__version__",
    "attach_click",
    "connect_restatement_signal",
    "restate_purchase",
    "track_purchase",
]

if TYPE_CHECKING:
    from django_pjpixel.ledger.purchases import attach_click, track_purchase
    from django_pjpixel.ledger.restatements import connect_restatement_signal, restate_purchase


def __getattr__(name: str) -> Any:
    # Lazy so that importing the package (settings files, the pytest plugin)
    # never imports models before the app registry is ready.
    if name in {"attach_click", "track_purchase"}:
        from django_pjpixel.ledger import purchases

        return getattr(purchases, name)
    if name in {"connect_restatement_signal", "restate_purchase"}:
        from django_pjpixel.ledger import restatements

        return getattr(restatements, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
