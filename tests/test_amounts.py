"""Amounts rounded once, half-up, from the value the shop gave: through
``track_purchase``, the row (``api_amount``) and the payload ``deliver_event`` sends."""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_pjpixel.ledger.purchases import track_purchase
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.delivery import build_payload, deliver_event
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, PIXEL_ID

pytestmark = pytest.mark.django_db

_orders = itertools.count()


def record(amount: object) -> ConversionEvent:
    event = track_purchase(
        order_id=f"amount-{next(_orders)}",
        amount=amount,  # type: ignore[arg-type]  # every form a shop may pass
        number_of_items=1,
        signed_click_id=CLICK,
    )
    assert event is not None
    return event


@pytest.mark.parametrize(
    ("amount", "sent"),
    [
        # Issue 11: rounded to cents for the row, then again for the API.
        (Decimal("1234.495"), 1234),
        (Decimal("10.4951"), 10),
        # The float's shortest repr is 1245.495: half-up from there.
        (996.396 * 1.25, 1245),
        ("1234.5", 1235),
        (Decimal("1234.49999"), 1234),
    ],
)
def test_the_amount_sent_is_rounded_once(
    pjpixel_api: PrisjaktEmulator, amount: object, sent: int
) -> None:
    event = record(amount)
    assert deliver_event(event.pk).status == ConversionEvent.Status.SENT
    (stored,) = pjpixel_api.events
    assert stored["data"]["amount"] == sent
    row = ConversionEvent.objects.get(pk=event.pk)
    assert row.api_amount == sent


def test_minor_units_are_rounded_once_too(pjpixel_api: PrisjaktEmulator) -> None:
    with override_settings(PJPIXEL={"PIXEL_ID": PIXEL_ID, "AMOUNT_UNITS": "minor"}):
        event = record(Decimal("12.345"))  # 1234.5 öre, not 12.35 SEK's 1235
    deliver_event(event.pk)
    assert [e["data"]["amount"] for e in pjpixel_api.events] == [1235]


def test_a_row_from_before_api_amount_sends_its_stored_amount(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    event = record(Decimal("99.5"))
    ConversionEvent.objects.filter(pk=event.pk).update(api_amount=None)
    deliver_event(event.pk)
    assert [e["data"]["amount"] for e in pjpixel_api.events] == [100]


# The shop's value, written as a decimal with at most 4 places and 12 digits, so its
# float has that same shortest repr; each form of it must be sent the same. At most
# 9,999,999.9949: in minor units that is the largest amount the API takes.
exact_amounts = st.decimals(
    min_value=0, max_value=Decimal("9999999.9949"), places=4, allow_nan=False
)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    exact=exact_amounts,
    form=st.sampled_from(["decimal", "float", "str", "int"]),
    units=st.sampled_from(["major", "minor"]),
)
def test_property_rounded_once_half_up_from_the_shops_value(
    exact: Decimal, form: str, units: str
) -> None:
    if form == "int":
        exact = Decimal(int(exact))
    given_amount: object = {
        "decimal": exact,
        "float": float(exact),
        "str": str(exact),
        "int": int(exact),
    }[form]
    scale = 100 if units == "minor" else 1
    expected = int((exact * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    with override_settings(PJPIXEL={"PIXEL_ID": PIXEL_ID, "AMOUNT_UNITS": units}):
        event = record(given_amount)
        row = ConversionEvent.objects.get(pk=event.pk)
        assert build_payload(row)["data"]["amount"] == expected
    assert row.api_amount == expected
    assert row.amount == exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
