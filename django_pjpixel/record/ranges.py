"""The admin's range forms: whole local days, and the market where there are several.

``EventRangeForm`` (the *Prisjakt events* view: at most ``MAX_DAYS`` days and
a page) and ``ReconciliationForm`` (the *Reconciliation* page: a range of any
length) are bound to the query string by ``from_query``. With several
markets (``PJPIXEL["PIXELS"]``) both have a ``pixel`` select of the market
keys, the first market by default; a key that is no market, or a market
without its ``PIXEL_ID``, is an error on that field. ``cleaned_data["market"]``
is the chosen ``markets.Market`` (without ``PIXELS``, the single pixel's).
``day_range`` and ``check_days`` are the same whole days for the commands.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any, TypeVar

from django import forms
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_pjpixel import markets, times
from django_pjpixel.api.payloads import MAX_LIST_RANGE, check_range
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import InvalidInput

MAX_DAYS = MAX_LIST_RANGE.days
DEFAULT_DAYS = 7
DATE_FORMAT = "%Y-%m-%d"
# The query parameter of the market: a key of PJPIXEL["PIXELS"], as track_purchase(pixel=).
MARKET_PARAMETER = "pixel"

F = TypeVar("F", bound="RangeForm")


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """Whole days in the current time zone: ``first`` 00:00 to the end of ``last``."""
    zone = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(first, time.min), zone)
    end = timezone.make_aware(datetime.combine(last, time.max), zone)
    return start, end


def check_days(first: date, last: date) -> tuple[datetime, datetime]:
    """The range of whole days, or ``InvalidInput`` for what the API would refuse."""
    if last < first:
        raise InvalidInput("to", gettext("The end date must not be before the start date."))
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(
            "to", gettext("The range may span at most %(days)d days.") % {"days": MAX_DAYS}
        )
    start, end = day_range(first, last)
    try:
        start_utc, end_utc = start.astimezone(dt_timezone.utc), end.astimezone(dt_timezone.utc)
    except OverflowError as err:  # 0001-01-01 in Stockholm, 9999-12-31 in New York
        raise InvalidInput(
            "to", gettext("The dates must fall within the years 1 to 9999 in UTC.")
        ) from err
    try:
        # In UTC: subtracting two times of one zone ignores a clock change, the API
        # does not, so 60 whole days across the autumn change are refused here.
        check_range(start_utc, end_utc)
    except InvalidInput as err:
        raise InvalidInput(
            "to", gettext("The range may span at most %(days)d days.") % {"days": MAX_DAYS}
        ) from err
    return start, end


class RangeForm(forms.Form):
    """``from`` and ``to`` (``YYYY-MM-DD``, whole local days) and, with several markets,
    ``pixel`` (a market key); ``clean`` adds ``market``, ``start`` and ``end``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so the date fields are added here.
        for name, label in (("from", _("From")), ("to", _("To"))):
            self.fields[name] = forms.DateField(
                label=label,
                input_formats=[DATE_FORMAT],
                widget=forms.DateInput(attrs={"type": "date"}, format=DATE_FORMAT),
            )
        if markets.is_configured():
            self.fields[MARKET_PARAMETER] = forms.ChoiceField(
                label=_("Market"),
                choices=[
                    (m.key, markets.label(m.pixel_id) if m.pixel_id else m.key)
                    for m in markets.all_markets()
                ],
            )
        self.order_fields([MARKET_PARAMETER, "from", "to"])

    @classmethod
    def defaults(cls, today: date) -> dict[str, str]:
        """The values of what the query string leaves out."""
        raise NotImplementedError

    @classmethod
    def from_query(cls: type[F], query: Any, today: date | None = None) -> F:
        """The form bound to the query string, the defaults where it says nothing."""
        data = cls.defaults(today or times.localdate())
        if markets.is_configured():
            found = markets.all_markets()
            data[MARKET_PARAMETER] = found[0].key if found else ""
        names = [*data, *(name for name in cls.base_fields if name not in data)]
        data.update({name: query[name] for name in names if query.get(name)})
        return cls(data)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        key = cleaned.get(MARKET_PARAMETER)
        try:
            cleaned["market"] = markets.market_named(key) if key else markets.market_of()
        except InvalidInput as err:
            self.add_error(MARKET_PARAMETER, err.message)
        return cleaned

    def query(self, **extra: str) -> dict[str, str]:
        """The form's own values for another URL of the page (the CSV, another page)."""
        names = ("from", "to", MARKET_PARAMETER)
        return {**{name: self.data[name] for name in names if self.data.get(name)}, **extra}


class EventRangeForm(RangeForm):
    """The *Prisjakt events* view's: at most ``MAX_DAYS`` whole days, and ``page``."""

    page = forms.IntegerField(label=_("Page"), min_value=1, required=False)

    @classmethod
    def defaults(cls, today: date) -> dict[str, str]:
        """The last ``DEFAULT_DAYS`` days."""
        first = today - timedelta(days=DEFAULT_DAYS - 1)
        return {"from": first.isoformat(), "to": today.isoformat()}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("from"), cleaned.get("to")
        if isinstance(first, date) and isinstance(last, date):
            try:
                cleaned["start"], cleaned["end"] = check_days(first, last)
            except InvalidInput as err:
                self.add_error("to", err.message)
        return cleaned


class ReconciliationForm(RangeForm):
    """The *Reconciliation* page's: whole days of any length."""

    @classmethod
    def defaults(cls, today: date) -> dict[str, str]:
        """The last ``SYNC_DAYS`` days, what the periodic sync keeps."""
        first = today - timedelta(days=pjpixel_settings.SYNC_DAYS - 1)
        return {"from": first.strftime(DATE_FORMAT), "to": today.strftime(DATE_FORMAT)}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        first, last = cleaned.get("from"), cleaned.get("to")
        if isinstance(first, date) and isinstance(last, date):
            if last < first:
                self.add_error("to", gettext("The end date must not be before the start date."))
            else:
                cleaned["start"], cleaned["end"] = day_range(first, last)
        return cleaned
