"""How each request to the API says who sends it: header credentials or OAuth2 tokens.

Two schemes, chosen by ``PJPIXEL["AUTH"]``:

- ``"headers"`` (the default): ``client-id`` and ``client-secret`` request
  headers on every request [seed];
- ``"oauth2"``: the client-credentials grant, a form ``POST`` of
  ``grant_type=client_credentials``, ``client_id`` and ``client_secret`` to
  ``TOKEN_URL`` answering ``{"access_token": ..., "expires_in": 86399,
  "token_type": "bearer"}``, then ``Authorization: Bearer <token>`` [docs]. The
  token is cached until shortly before it expires and renewed on a 401
  [portal]; ``client-id`` is still sent as a header.

The secret only ever travels in a header or the token form, never in a URL,
and neither the token nor the secret is logged.
"""

from __future__ import annotations

import threading
import time

import requests

from django_pjpixel.exceptions import (
    PjpixelConfigurationError,
    PrisjaktAuthError,
    PrisjaktConnectionError,
    PrisjaktTimeout,
)
from django_pjpixel.problems import api_error, decode_json

AUTH_MODES = ("headers", "oauth2")
# The roles of a client are admin, shop_user and event_publisher [docs]. Prisjakt's
# newer portal names shop_user as the role of the many-events PATCH and of the
# listing, and no role for creating one event [portal]: so any of the three may
# POST an event, and batches and the listing need shop_user (or admin).
SEND_ROLES = ("shop_user", "event_publisher", "admin")
BATCH_ROLES = ("shop_user", "admin")
# A token is renewed this many seconds before its expires_in runs out, so a
# request never goes out with one that expires on the way.
_TOKEN_MARGIN = 60.0
# The lifetime assumed of a token answered without expires_in [open].
_DEFAULT_LIFETIME = 300.0


class Credentials:
    """One client's credentials, and its cached bearer token in ``"oauth2"`` mode.

    ``mode`` is ``"headers"`` or ``"oauth2"``; anything else raises
    ``PjpixelConfigurationError`` naming ``PJPIXEL["AUTH"]``. Thread-safe: one
    token is fetched at a time and shared by the threads using the client.
    """

    def __init__(self, *, mode: str, client_id: str, client_secret: str, token_url: str) -> None:
        if mode not in AUTH_MODES:
            raise PjpixelConfigurationError(
                f'PJPIXEL["AUTH"] must be "headers" or "oauth2", not {mode!r}'
            )
        self.mode = mode
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    @property
    def bearer(self) -> bool:
        """Whether requests carry a bearer token (and a 401 may mean it expired early)."""
        return self.mode == "oauth2"

    def install(self, session: requests.Session) -> None:
        """Put the headers every request carries on ``session``: ``client-id``, and in
        ``"headers"`` mode ``client-secret`` [seed]. Empty values are left out.
        """
        if self.client_id:
            session.headers["client-id"] = self.client_id
        if self.mode == "headers" and self._secret:
            session.headers["client-secret"] = self._secret

    def request_headers(
        self, session: requests.Session, timeout: tuple[float, float]
    ) -> dict[str, str]:
        """The headers of one request: ``{}``, or ``{"Authorization": "Bearer <token>"}``.

        In ``"oauth2"`` mode a missing or nearly expired token is first fetched
        through ``session`` with ``timeout`` (connect, read seconds). Raises
        ``PrisjaktAuthError`` when the token endpoint refuses the credentials (a
        400, 401 or 403, or a 200 without an ``access_token``), and the other
        ``PrisjaktAPIError`` subclasses when it cannot be reached or fails.
        """
        if not self.bearer:
            return {}
        return {"Authorization": f"Bearer {self._bearer_token(session, timeout)}"}

    def forget_token(self) -> None:
        """Drop the cached token, so the next request fetches a new one."""
        self._token = None

    def _bearer_token(self, session: requests.Session, timeout: tuple[float, float]) -> str:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires:
                self._token, lifetime = self._fetch_token(session, timeout)
                self._token_expires = time.monotonic() + max(lifetime - _TOKEN_MARGIN, 0.0)
            return self._token

    def _fetch_token(
        self, session: requests.Session, timeout: tuple[float, float]
    ) -> tuple[str, float]:
        try:
            response = session.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self._secret,
                },
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.Timeout as err:
            raise PrisjaktTimeout("Prisjakt token endpoint timed out") from err
        except requests.RequestException as err:
            raise PrisjaktConnectionError(
                f"Prisjakt token endpoint could not be reached: {type(err).__name__}"
            ) from err
        if response.status_code != 200:
            error = api_error(response, secret=self._secret)
            if isinstance(error, PrisjaktAuthError) or response.status_code == 400:
                raise PrisjaktAuthError(
                    "Prisjakt token endpoint refused the client credentials",
                    status=response.status_code,
                    problem=error.problem,
                    request_id=error.request_id,
                )
            raise error
        data = decode_json(response, secret=self._secret)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise PrisjaktAuthError(
                "Prisjakt token endpoint answered without an access_token", status=200
            )
        expires = data.get("expires_in")
        lifetime = float(expires) if isinstance(expires, (int, float)) else _DEFAULT_LIFETIME
        return token, lifetime
