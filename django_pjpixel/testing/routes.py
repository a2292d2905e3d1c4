"""The API's endpoints: authentication, the token endpoint, and routing below the base URL.

``Router.route`` answers a request for a path below the base URL as the
endpoint table of ``/work/shared/prisjakt-api.md`` says [seed, docs]: create
one event, create or update many (``PATCH``), list a pixel's events a page at a
time with a ``Link`` header, and read one event, click, client or shop.
``Router.token`` is the OAuth2 token endpoint [docs, portal]. A refusal is
raised as a ``Problem``. ``PrisjaktEmulator`` calls the router under its lock,
after its faults and its rate limit have let the request through.

Choices for the points the API notes leave open:

- The client secret is required on every request; ``Authorization: Bearer``
  with a token from ``token_url`` replaces both headers. The many-events
  ``PATCH`` and the listing need the ``shop_user`` role [portal] (or ``admin``);
  creating one event, whose page names no role, takes any of ``shop_user``,
  ``event_publisher`` and ``admin``; any role may read one event, click,
  client or shop.
  ``GET /clients/{id}`` shows the caller itself (an ``admin`` any client).
  A client limited to some pixels (``add_client(..., pixels=...)``: a
  market's credentials) gets 403 for another pixel's events.
- ``PATCH`` takes a bare JSON array or ``{"events": [...]}``; an empty array
  is a 204; when any event is invalid nothing is stored.
- A listing filters and orders by ``event_time`` (newest first, later stored
  first on a tie); its body is a bare JSON list (``list_wrapper_key`` wraps
  it); a page past the last is an empty list with 200; ``page_size`` is 50.
  ``unstable_pages`` repeats the last event of page *n* at the top of page
  *n + 1*, as the docs warn the real API may.
"""

from __future__ import annotations

import json
import math
import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, quote

from django_pjpixel.testing.clock import parse_iso_time
from django_pjpixel.testing.model import (
    POST_ROLES,
    SHOP_USER_ROLES,
    ApiState,
    Client,
    Problem,
    validate_event,
    validation_problem,
)
from django_pjpixel.testing.wire import REDACTED, EmulatorResponse, Request, json_response

MAX_LIST_RANGE = timedelta(days=60)


class Settings(Protocol):
    """The emulator's settings the endpoints read, at each request (tests change them)."""

    base_path: str
    page_size: int
    unstable_pages: bool
    list_wrapper_key: str | None
    token_lifetime: int


class Router:
    """The API's endpoints over ``state``; ``settings`` is ``PrisjaktEmulator`` itself."""

    def __init__(self, state: ApiState, settings: Settings) -> None:
        self.state = state
        self.settings = settings

    def rate_key(self, request: Request) -> str:
        """The client id the request counts against, its credentials checked or not:
        the rate limit is per client id [docs] and counted before authentication."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = self.state.tokens.get(auth[7:].strip())
            if token is not None:
                return token[0]
        return request.headers.get("client-id", "")

    def authenticate(self, request: Request) -> Client:
        """The client the ``client-id`` and ``client-secret`` headers name [seed], or an
        issued ``Authorization: Bearer`` token [docs]; a 401 otherwise."""
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            entry = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if entry is None or entry[1] <= self.state.clock():
                raise Problem(401, "Unauthorized", "The bearer token is invalid or expired")
            return self.state.clients[entry[0]]
        client_id = request.headers.get("client-id")
        if not client_id:
            raise Problem(401, "Unauthorized", "The client-id header is required")
        client = self.state.clients.get(client_id)
        given = request.headers.get("client-secret")
        if client is None or given is None or not secrets.compare_digest(given, client.secret):
            raise Problem(401, "Unauthorized", "Invalid client credentials")
        return client

    def token(self, request: Request) -> EmulatorResponse:
        """The OAuth2 token endpoint: the client credentials grant answers a bearer
        token valid ``token_lifetime`` seconds [docs, portal]; refusals are OAuth2's."""
        if request.method != "POST":
            return _oauth_error(405, "invalid_request")
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        request.payload = {k: REDACTED if k == "client_secret" else v for k, v in form.items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        client = self.state.clients.get(form.get("client_id", ""))
        given = form.get("client_secret", "")
        if client is None or not secrets.compare_digest(given, client.secret):
            return _oauth_error(401, "invalid_client")
        token = self.state.issue_token(client.id, self.settings.token_lifetime)
        body = {
            "access_token": token,
            "expires_in": self.settings.token_lifetime,
            "token_type": "bearer",
        }
        return json_response(200, body, {"Cache-Control": "no-store"})

    def route(self, request: Request, rel: str) -> EmulatorResponse:
        """Answer a request for ``rel``, its path below the base URL, as the endpoint
        table says [seed, docs]; a refusal is raised as a ``Problem``."""
        segments = [s for s in rel.split("/") if s]
        method = request.method
        if len(segments) == 3 and segments[0] == "pixels" and segments[2] == "events":
            handlers = {"POST": self._create, "PATCH": self._create_many, "GET": self._list}
            handler = handlers.get(method)
            if handler is None:
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET, PATCH, POST"})
            client = self.authenticate(request)
            allowed = POST_ROLES if method == "POST" else SHOP_USER_ROLES
            if not allowed.intersection(client.roles):
                raise Problem(
                    403,
                    "Forbidden",
                    f"The client needs one of the roles {', '.join(sorted(allowed))} for this call",
                )
            pixel = segments[1]
            if pixel not in self.state.pixels:
                raise Problem(404, "Pixel not found", f"A pixel with ID {pixel} could not be found")
            if not client.may_use(pixel):
                raise Problem(403, "Forbidden", f"The client may not use the pixel {pixel}")
            response = handler(request, pixel)
        elif len(segments) == 2 and segments[0] in ("events", "clicks", "clients"):
            if method != "GET":
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET"})
            client = self.authenticate(request)
            response = self._get_one(segments[0], segments[1], client)
        elif len(segments) == 3 and segments[0] == "shops" and segments[2] == "pixels":
            if method != "GET":
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET"})
            self.authenticate(request)
            shop = self.state.shops.get(segments[1])
            if shop is None:
                raise Problem(
                    404, "Shop not found", f"A shop with ID {segments[1]} could not be found"
                )
            pixels = [{"id": p, "shop_id": segments[1]} for p in shop]
            response = json_response(200, pixels)
        else:
            raise Problem(404, "Not found", f"No resource at {request.path}")
        return response

    def _get_one(self, kind: str, ident: str, client: Client) -> EmulatorResponse:
        found: dict[str, Any] | None = None
        if kind == "events":
            found = next((e.as_json() for e in self.state.events if e.id == ident), None)
        elif kind == "clicks":
            found = self.state.clicks.get(ident)
        else:
            other = self.state.clients.get(ident)
            if other is not None and (other is client or "admin" in client.roles):
                found = {"id": other.id, "roles": list(other.roles)}
        if found is None:
            noun = kind[:-1]
            raise Problem(
                404,
                f"{noun.capitalize()} not found",
                f"A {noun} with ID {ident} could not be found",
            )
        return json_response(200, found)

    def _json_body(self, request: Request) -> Any:
        try:
            request.payload = json.loads(request.body)
        except (ValueError, RecursionError):
            raise validation_problem(
                {
                    "body": {
                        "message": "invalid JSON",
                        "value": request.body.decode("utf-8", "replace"),
                    }
                }
            ) from None
        return request.payload

    def _create(self, request: Request, pixel: str) -> EmulatorResponse:
        payload = self._json_body(request)
        errors = validate_event(payload, "")
        if errors:
            raise validation_problem(errors)
        external = payload.get("external_event_id")
        if external is not None and self.state.recent(pixel, external) is not None:
            raise Problem(
                409,
                "Event already exists",
                f"An event with external event ID {external} already exists",
            )
        event = self.state.store(pixel, payload)
        return json_response(201, event.as_json(), {"Location": f"/events/{event.id}"})

    def _create_many(self, request: Request, pixel: str) -> EmulatorResponse:
        payload = self._json_body(request)
        if isinstance(payload, dict) and set(payload) == {"events"}:
            payload = payload["events"]
        if not isinstance(payload, list):
            raise validation_problem(
                {"body": {"message": "must be a JSON array of events", "value": payload}}
            )
        errors: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(payload):
            errors.update(validate_event(item, f"events[{index}]."))
        if errors:
            raise validation_problem(errors)
        for item in payload:
            external = item.get("external_event_id")
            existing = self.state.recent(pixel, external) if external is not None else None
            if existing is None:
                self.state.store(pixel, item)
            else:
                self.state.fill(existing, item)
        return EmulatorResponse(204, {})

    def _list(self, request: Request, pixel: str) -> EmulatorResponse:
        errors: dict[str, dict[str, Any]] = {}
        bounds: dict[str, datetime] = {}
        for name in ("from", "to"):
            raw = request.query.get(name)
            parsed = parse_iso_time(raw)
            if parsed is None:
                message = "required" if raw is None else "invalid ISO-8601 time"
                errors[name] = {"message": message, "value": raw}
            else:
                bounds[name] = parsed
        raw_page = request.query.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() and raw_page.isascii() else 0
        if page < 1:
            errors["page"] = {"message": "invalid integer", "value": raw_page}
        if not errors and bounds["to"] < bounds["from"]:
            errors["to"] = {"message": "must not be before from", "value": request.query["to"]}
        if not errors and bounds["to"] - bounds["from"] > MAX_LIST_RANGE:
            errors["to"] = {
                "message": "the range from from to to may span at most 60 days",
                "value": request.query["to"],
            }
        if errors:
            raise validation_problem(errors)
        chosen = self.state.listing(pixel, bounds["from"], bounds["to"])
        size = max(1, self.settings.page_size)
        last = max(1, math.ceil(len(chosen) / size))
        start = (page - 1) * size
        items = chosen.newest(start, start + size)
        if self.settings.unstable_pages and page > 1 and items:
            items = [*chosen.newest(start - 1, start), *items]
        listed = [e.as_json() for e in items]
        body: Any = (
            listed
            if self.settings.list_wrapper_key is None
            else {self.settings.list_wrapper_key: listed}
        )
        headers: dict[str, str] = {}
        if last > 1:
            headers["Link"] = self._link_header(request, pixel, page, last)
        return json_response(200, body, headers)

    def _link_header(self, request: Request, pixel: str, page: int, last: int) -> str:
        base = (
            f"{request.origin}{self.settings.base_path}/pixels/{quote(pixel, safe='')}/events"
            f"?from={quote(request.query['from'], safe='')}"
            f"&to={quote(request.query['to'], safe='')}&page="
        )
        rels = [("first", 1), ("last", last)]
        if page > 1:
            rels.append(("prev", page - 1))
        if page < last:
            rels.append(("next", page + 1))
        return ", ".join(f'<{base}{number}>; rel="{rel}"' for rel, number in rels)


def _oauth_error(status: int, error: str) -> EmulatorResponse:
    return json_response(status, {"error": error}, {"Cache-Control": "no-store"})
