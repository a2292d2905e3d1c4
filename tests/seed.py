"""The test vectors of Prisjakt's conversion-tracking page (``seed-conversion-tracking.txt``).

Kept verbatim, line breaks included, so tests feed the seed's own examples
through the code; ``tests/test_seed.py`` checks them against the page itself
where the project's shared notes are beside the checkout.
"""

from __future__ import annotations

# The cURL example's --data.
BODY = """{
"event_name": "purchase",
"event_time": "2025-03-13T10:45:46.987Z",
"external_event_id": "<your-reference-or-order-id>",
"data": {
"amount": 1234,
"currency": "SEK",
"number_of_items": 4
},
"signed_click_id": "<query-param-pjclid-sent-to-webpage>"
}"""

# The two error bodies.
NOT_FOUND = """{
"title": "Shop not found",
"status": 404,
"detail": "A shop with ID 121213 could not be found",
"context": {
"request-id": "96206250-bb0f-487b-a334-18192bec8592"
}
}"""
VALIDATION = """{
"title": "Request validation failed",
"status": 400,
"detail": "Request contains invalid fields: shopId. See field_errors for more details.",
"field_errors": {
"shopId": {
"message": "invalid integer",
"value": "alfa"
}
},
"context": {
"request-id": "d61579e9-eb4a-4fef-87e9-75438bbcfcf4"
}
}"""

# The Link header on the last page (7) of a listing.
LINK_LINE = (
    "Link: <https://dev-api.pj.nu/click-conversion/pixels/5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
    "/events?from=2023-04-01T17%3A32%3A28.000Z&to=2023-04-21T17%3A32%3A28.000Z&page=1>; "
    'rel="first", <https://dev-api.pj.nu/click-conversion/pixels/5c034de4-8e86-4d16-9fd1-'
    "20cfec6c97e4/events?from=2023-04-01T17%3A32%3A28.000Z&to=2023-04-21T17%3A32%3A28.000Z"
    '&page=7>; rel="last", <https://dev-api.pj.nu/click-conversion/pixels/5c034de4-8e86-4d16-'
    "9fd1-20cfec6c97e4/events?from=2023-04-01T17%3A32%3A28.000Z&to=2023-04-21T17%3A32%3A28.000Z"
    '&page=6>; rel="prev"'
)
LINK = LINK_LINE.removeprefix("Link: ")


def body(order_id: str, click_id: str) -> str:
    """The cURL body with its two placeholders filled in."""
    return BODY.replace("<your-reference-or-order-id>", order_id).replace(
        "<query-param-pjclid-sent-to-webpage>", click_id
    )
