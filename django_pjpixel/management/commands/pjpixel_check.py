"""``manage.py pjpixel_check``: can this shop report purchases to Prisjakt? The last step
of setting up, and what to run after any change of the settings.

For each pixel (with several markets, ``PJPIXEL["PIXELS"]``, a section each):
its settings set, who the credentials are and their roles, whether the pixel
exists (by listing a day of its events), and a first sync of Prisjakt's
events into the mirror where none was complete yet (else when the last was).
Then the outbox's failed rows: their count, and the latest one's reason with
its first field error; and the orders reported again as another purchase
(``conflicts``). Exit status 0 when every pixel is ready and no report
failed; 1 otherwise (the failures on stdout, the verdict on stderr).
``--health`` instead summarises delivery (``health.delivery_health``, the
outbox admin's summary), exit status 1 when it is unhealthy. ``--pixel KEY``
does either for one market.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_pjpixel import times
from django_pjpixel.api.auth import BATCH_ROLES, SEND_ROLES
from django_pjpixel.api.client import PrisjaktClient, get_client
from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktConnectionError,
    PrisjaktTimeout,
)
from django_pjpixel.health import delivery_health
from django_pjpixel.logtext import masked, one_line
from django_pjpixel.markets import Market, all_markets, is_configured, market_named
from django_pjpixel.models import INVALID_PURCHASE, ConversionEvent
from django_pjpixel.record.sync import last_sync, sync_recent

# Failed rows counted exactly up to this many; beyond, "more than".
FAILED_COUNTED = 100


class Command(BaseCommand):
    help = "Check the Prisjakt credentials and pixel: who they are, roles, pixel, writable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--health", action="store_true", help="summarise delivery health instead (no API call)"
        )
        parser.add_argument("--pixel", help='one market, a key of PJPIXEL["PIXELS"]')

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = market_option(options["pixel"])
        if options["health"]:
            self.check_health(chosen)
            return
        several = is_configured()
        found = all_markets() if chosen is None else [chosen]
        if not found:
            raise CommandError(_('PJPIXEL["PIXELS"] names no market; manage.py check says why.'))
        not_ready = [market.key for market in found if not self.check_market(market)]
        failed = self.report_failed(chosen)
        if not_ready:
            message = _("Prisjakt conversion tracking is not ready.")
            if several:
                message = _("Prisjakt conversion tracking is not ready (markets: %(keys)s).") % {
                    "keys": ", ".join(not_ready)
                }
            raise CommandError(message)
        if failed:
            raise CommandError(
                ngettext(
                    "Prisjakt conversion tracking is set up, but %(count)d report failed.",
                    "Prisjakt conversion tracking is set up, but %(count)d reports failed.",
                    failed,
                )
                % {"count": failed}
            )
        self.stdout.write(self.style.SUCCESS(_("Prisjakt conversion tracking is ready.")))

    def check_market(self, market: Market) -> bool:
        """One market's section (the single pixel's: the whole report); whether it is ready."""
        if market.key:
            self.stdout.write(self.style.MIGRATE_HEADING(_("Market %(key)s") % {"key": market.key}))
        self.stdout.write(_("API: %(url)s") % {"url": market.api_url})
        self.stdout.write(_("Pixel: %(pixel)s") % {"pixel": market.pixel_id or "-"})
        self.stdout.write(_("Client id: %(client)s") % {"client": market.client_id or "-"})
        if market.missing():
            self.stderr.write(_("The settings are incomplete: %s") % _not_set(market))
            return False
        try:
            client = get_client(market.pixel_id)
            roles = self.check_credentials(client)
            pixel_ok = self.check_pixel(client, roles)
        except PjpixelConfigurationError as err:
            raise CommandError(_("The settings are incomplete: %s") % err) from err
        may_send = self.report_roles(roles)
        # None: the pixel could not be listed for want of a role, which sending
        # one event at a time does not need (nor is there a sync to run).
        synced = self.first_sync(market) if pixel_ok else True
        return may_send and pixel_ok is not False and synced

    def first_sync(self, market: Market) -> bool:
        """Prisjakt's events in the mirror: a first sync where none was complete; whether
        the mirror holds a complete one now."""
        run = last_sync(market.pixel_id)
        if run is not None:
            line = _("Last complete sync of Prisjakt's events: %(when)s")
            self.stdout.write(line % {"when": _local(run.finished_at or run.started_at)})
            return True
        try:
            run = sync_recent(pixel_id=market.pixel_id)
        except PrisjaktAPIError as err:
            self.stderr.write(_("First sync: %s") % describe(err, _("the pixel")))
            return False
        if not run.complete:
            self.stderr.write(_("First sync: it stopped early: %s") % run.error)
            return False
        days = pjpixel_settings.SYNC_DAYS
        line = ngettext(
            "First sync of Prisjakt's events: %(count)d event in the last %(days)d days.",
            "First sync of Prisjakt's events: %(count)d events in the last %(days)d days.",
            run.events,
        )
        self.stdout.write(self.style.SUCCESS(line % {"count": run.events, "days": days}))
        return True

    def report_failed(self, market: Market | None = None) -> int:
        """The failed rows (of ``market``'s pixel; None: of every pixel), on stdout: their
        count, the latest one's reason and how to send it; how many there are. Counted up to
        ``FAILED_COUNTED``: failures pile up over the years, the count does not read them all.
        """
        failed = ConversionEvent.objects.filter(status=ConversionEvent.Status.FAILED)
        if market is not None:
            failed = failed.filter(pixel_id=market.pixel_id)
        titles = list(
            failed.order_by().values_list("problem_title", flat=True)[: FAILED_COUNTED + 1]
        )
        counts = {"total": len(titles), "invalid": titles.count(INVALID_PURCHASE)}
        self.count_conflicts(market)
        latest = failed.order_by("-updated_at", "-pk").first()
        if latest is None:
            self.stdout.write(_("Failed events: none."))
            return 0
        counted = _(
            "Failed events: %(total)d, %(invalid)d of them reported by the shop with an "
            "invalid value; see Conversion events in the admin (status: Failed)."
        )
        if counts["total"] > FAILED_COUNTED:
            counted = _(
                "Failed events: more than %(total)d; see Conversion events in the admin "
                "(status: Failed)."
            )
            counts["total"] = FAILED_COUNTED
        lines = [
            counted % counts,
            _("The latest, order %(order)s: %(reason)s")
            % {"order": one_line(latest.order_id), "reason": latest.reason or "-"},
            _(
                "Report such an order again with the right values (order_completed or "
                "track_purchase) and it is sent; one Prisjakt refused is sent again by the "
                "admin's action Retry failed events."
            ),
        ]
        for line in lines:
            self.stdout.write(self.style.ERROR(line))
        return int(counts["total"])

    def count_conflicts(self, market: Market | None) -> None:
        """Orders reported again as another purchase (``conflicts``), if any."""
        rows = ConversionEvent.objects.filter(conflict_at__isnull=False)
        count = (rows if market is None else rows.filter(pixel_id=market.pixel_id)).count()
        if count:
            line = _(
                "Orders reported again as another purchase: %(count)d; see Conversion "
                "events in the admin (conflicting report)."
            )
            self.stdout.write(self.style.WARNING(line % {"count": count}))

    def report_roles(self, roles: list[str] | None) -> bool:
        """Say what the roles allow; whether they may send events at all."""
        if roles is None:
            return False
        if not any(role in SEND_ROLES for role in roles):
            self.stderr.write(
                _("The credentials may not send events: that needs the role %(roles)s.")
                % {"roles": " / ".join(SEND_ROLES)}
            )
            return False
        self.stdout.write(self.style.SUCCESS(_("The credentials may send events.")))
        if not any(role in BATCH_ROLES for role in roles):
            self.stdout.write(
                self.style.WARNING(
                    _(
                        "They may send them one at a time only: batches (the many-events "
                        "PATCH) and listing events need the role %(roles)s."
                    )
                    % {"roles": " / ".join(BATCH_ROLES)}
                )
            )
        return True

    def check_health(self, market: Market | None) -> None:
        health = delivery_health(pixel_id=market.pixel_id if market else None)
        if market is not None:
            self.stdout.write(self.style.MIGRATE_HEADING(_("Market %(key)s") % {"key": market.key}))
        for line in health.lines():
            self.stdout.write(line)
        for problem in health.problems:
            self.stderr.write(problem)
        if not health.healthy:
            raise CommandError(_("Delivery to Prisjakt is unhealthy."))
        self.stdout.write(self.style.SUCCESS(_("Delivery to Prisjakt is healthy.")))

    def check_credentials(self, client: PrisjaktClient) -> list[str] | None:
        """The roles of the credentials; None when the API would not say."""
        try:
            result = client.get_client()
        except PrisjaktAPIError as err:
            self.stderr.write(_("Credentials: %s") % describe(err, _("the client id")))
            return None
        data = result.data if isinstance(result.data, dict) else {}
        roles = [role for role in data.get("roles") or [] if isinstance(role, str)]
        who = data.get("id") if isinstance(data.get("id"), str) else client.client_id
        self.stdout.write(_("Credentials: client %(who)s") % {"who": who})
        self.stdout.write(
            _("Roles: %(roles)s") % {"roles": ", ".join(roles) if roles else _("none")}
        )
        return roles

    def check_pixel(self, client: PrisjaktClient, roles: list[str] | None) -> bool | None:
        """Whether the pixel exists, by listing a day of its events; None: not checked,
        because the roles do not include one the listing needs."""
        end = times.now()
        try:
            client.list_events(start=end - timedelta(days=1), end=end)
        except PrisjaktAPIError as err:
            if err.status == 403 and roles is not None and not set(roles) & set(BATCH_ROLES):
                self.stdout.write(
                    _("Pixel: not checked: listing events needs the role %(roles)s.")
                    % {"roles": " / ".join(BATCH_ROLES)}
                )
                return None
            self.stderr.write(_("Pixel: %s") % describe(err, _("the pixel")))
            return False
        self.stdout.write(
            self.style.SUCCESS(_("Pixel %(pixel)s exists.") % {"pixel": client.pixel_id})
        )
        return True


def market_option(key: str | None, returncode: int = 1) -> Market | None:
    """The market ``--pixel KEY`` names (None: the option is absent); a key that is no
    market, or the empty key, is a ``CommandError`` naming the markets."""
    if key is None:
        return None
    try:
        return market_named(key)
    except InvalidInput as err:
        raise CommandError(f"--pixel: {err.message}", returncode=returncode) from None


def _local(value: datetime) -> str:
    return f"{value if timezone.is_naive(value) else timezone.localtime(value):%Y-%m-%d %H:%M}"


def _not_set(market: Market) -> str:
    return _("%(names)s not set") % {"names": ", ".join(market.missing())}


def describe(err: PrisjaktAPIError, what: str) -> str:
    """One line for an error answer, naming the likely cause."""
    if isinstance(err, PrisjaktTimeout):
        text = _("the request to Prisjakt timed out")
    elif isinstance(err, PrisjaktConnectionError):
        text = _("Prisjakt could not be reached (%(error)s)") % {"error": err.message}
    elif err.status == 401:
        text = _("HTTP 401: Prisjakt refused the credentials; check CLIENT_ID and CLIENT_SECRET")
    elif err.status == 403:
        text = _("HTTP 403: the credentials lack the role for this")
    elif err.status == 404:
        text = _("HTTP 404: Prisjakt does not know %(what)s") % {"what": what}
    elif err.status is not None:
        text = _("HTTP %(status)d") % {"status": err.status}
    else:
        text = err.message
    extra = [value for value in (err.title, err.detail) if value]
    if err.request_id:
        extra.append(_("request id %(id)s") % {"id": err.request_id})
    return one_line(masked(" — ".join([text, *extra])))
