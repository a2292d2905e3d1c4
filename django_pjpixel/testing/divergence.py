"""Making Prisjakt's record differ from what the shop sent, for reconciliation tests.

``PrisjaktEmulator`` inherits these methods; each changes what the API lists
afterwards, without a request and without validation, as if Prisjakt had
lost an event, counted a different amount, or recorded an event from
somewhere else (its browser pixel, another system):

- ``drop_event``: the event is no longer stored (nor listed, nor found);
- ``change_event``: its ``data`` (amount, currency, number of items) changes;
- ``add_foreign_event``: an event the shop never sent is stored.

Each answers the event as the API shows it (``drop_event``: as it was).
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django_pjpixel.testing.model import ApiState

if TYPE_CHECKING:
    from collections.abc import Callable


class RecordDivergence:
    """The methods above, over ``_state`` under ``_lock`` (``PrisjaktEmulator``'s)."""

    _lock: threading.RLock
    _state: ApiState
    add_event: Callable[..., dict[str, Any]]

    def drop_event(
        self,
        external_event_id: str | None = None,
        *,
        event_id: str | None = None,
        pixel_id: str | None = None,
    ) -> dict[str, Any]:
        """Forget the newest event with this ``external_event_id`` (or Prisjakt ``id``).

        Raises ``LookupError`` when there is none, and ``TypeError`` when
        neither is given.
        """
        if external_event_id is None and event_id is None:
            raise TypeError("drop_event: give external_event_id or event_id")
        with self._lock:
            event = self._state.find(external_event_id, event_id, pixel_id)
            self._state.remove(event)
            return event.as_json()

    def change_event(
        self,
        external_event_id: str | None = None,
        *,
        event_id: str | None = None,
        pixel_id: str | None = None,
        amount: Any = None,
        currency: Any = None,
        number_of_items: Any = None,
    ) -> dict[str, Any]:
        """Change the ``data`` of the newest event with this ``external_event_id`` (or ``id``).

        Only the values given change; any value is stored as given (an API
        that lists a malformed amount is a case to test too). Raises
        ``LookupError`` when there is no such event.
        """
        if external_event_id is None and event_id is None:
            raise TypeError("change_event: give external_event_id or event_id")
        changes = {
            key: value
            for key, value in (
                ("amount", amount),
                ("currency", currency),
                ("number_of_items", number_of_items),
            )
            if value is not None
        }
        with self._lock:
            event = self._state.find(external_event_id, event_id, pixel_id)
            event.data = {**event.data, **changes}
            self._state.changed()
            return event.as_json()

    def add_foreign_event(
        self,
        pixel_id: str | None = None,
        *,
        external_event_id: str | None = None,
        event_time: datetime | str | None = None,
        amount: int = 1234,
        currency: str = "SEK",
        number_of_items: int = 1,
        signed_click_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a purchase the shop never sent.

        Its ``external_event_id`` is ``"browser-"`` and 12 hex digits unless
        given; ``external_event_id=""`` stores an event that carries none (a
        browser pixel's ``track`` without ``eventId``).
        """
        if external_event_id is None:
            external_event_id = f"browser-{secrets.token_hex(6)}"
        return self.add_event(
            pixel_id,
            event_time=event_time,
            external_event_id=external_event_id or None,
            amount=amount,
            currency=currency,
            number_of_items=number_of_items,
            signed_click_id=signed_click_id,
        )
