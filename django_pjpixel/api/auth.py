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
and neither the token nor the secret is logged: ``hidden()`` lists the values
an answer's text is masked of (``problems``), the tokens given up included.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import requests
import requests.auth

from django_pjpixel.api.problems import api_error, decode_json
from django_pjpixel.api.transport import Deadline, exchange
from django_pjpixel.exceptions import (
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktAuthError,
)

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
# Tokens given up that an answer may still echo ("token <old> was revoked").
_PREVIOUS_TOKENS = 4


class Credentials(requests.auth.AuthBase):
    """One client's credentials, and its cached bearer token in ``"oauth2"`` mode.

    ``mode`` is ``"headers"`` or ``"oauth2"``; anything else raises
    ``PjpixelConfigurationError`` naming ``PJPIXEL["AUTH"]``. Thread-safe: one
    token is fetched at a time and shared by the threads using the client.
    Fork-safe: a child process forgets the token and gets a lock of its own
    (``after_fork``, also when the process id is seen to change).

    It is the requests ``auth`` of each request: the bearer token is put on the
    prepared request there, so no frame of the client holds it in a local
    (a debug page shows frames' locals).
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
        self.after_fork()

    def __repr__(self) -> str:
        return f"<Credentials {self.mode} client={self.client_id!r}>"

    @property
    def bearer(self) -> bool:
        """Whether requests carry a bearer token (and a 401 may mean it expired early)."""
        return self.mode == "oauth2"

    def after_fork(self) -> None:
        """Start afresh in this process: no token, a new lock (one held by a thread of
        the parent at ``fork()`` would never be released here)."""
        self._pid = os.getpid()
        self._token: str | None = None
        self._previous: deque[str] = deque(maxlen=_PREVIOUS_TOKENS)
        self._token_expires = 0.0
        self._token_lock = threading.Lock()

    def hidden(self) -> tuple[str, ...]:
        """What an answer's text must not show: the secret, the token, the previous tokens."""
        return tuple(v for v in (self._secret, self._token, *self._previous) if v)

    def install(self, session: requests.Session) -> None:
        """Put the headers every request carries on ``session``: ``client-id``, and in
        ``"headers"`` mode ``client-secret`` [seed]. Empty values are left out.
        """
        if self.client_id:
            session.headers["client-id"] = self.client_id
        if self.mode == "headers" and self._secret:
            session.headers["client-secret"] = self._secret

    def prepare(
        self, session: requests.Session, deadline: Deadline, timeout: tuple[float, float], cap: int
    ) -> None:
        """Make sure a request can be authenticated: in ``"oauth2"`` mode, fetch a token
        through ``session`` when there is none or it nearly expired.

        Raises ``PrisjaktAuthError`` when the token endpoint refuses the
        credentials (a 400, 401 or 403, or a 200 without an ``access_token``),
        and the other ``PrisjaktAPIError`` subclasses when it cannot be reached
        or fails.
        """
        if not self.bearer:
            return
        if self._pid != os.getpid():
            self.after_fork()
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires:
                self.forget_token()
                self._token, lifetime = self._fetch_token(session, deadline, timeout, cap)
                self._token_expires = time.monotonic() + max(lifetime - _TOKEN_MARGIN, 0.0)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """requests' auth hook: ``Authorization: Bearer <token>`` in ``"oauth2"`` mode."""
        if self.bearer and self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def forget_token(self) -> None:
        """Drop the cached token, so the next request fetches a new one (it stays
        among ``hidden()``: a later answer may echo it)."""
        if self._token is not None:
            self._previous.append(self._token)
        self._token = None

    def _fetch_token(
        self, session: requests.Session, deadline: Deadline, timeout: tuple[float, float], cap: int
    ) -> tuple[str, float]:
        answer = exchange(
            session,
            "POST",
            self.token_url,
            auth=_TokenForm(self.client_id, self._secret),
            deadline=deadline,
            timeout=timeout,
            cap=cap,
            what="POST to the token endpoint",
        )
        response = answer.response
        if response.status_code != 200:
            error = api_error(response, hidden=self.hidden())
            if isinstance(error, PrisjaktAuthError) or response.status_code == 400:
                raise PrisjaktAuthError(
                    "Prisjakt token endpoint refused the client credentials",
                    status=response.status_code,
                    problem=error.problem,
                    request_id=error.request_id,
                )
            raise error
        try:
            data = decode_json(response, hidden=self.hidden()) if answer.complete else None
        except PrisjaktAPIError as err:
            # Not JSON, maybe a form: its text may be the token itself, so none of it is kept.
            raise PrisjaktAPIError(
                "Prisjakt token endpoint answered 200 with a body that is not JSON",
                status=err.status,
                request_id=err.request_id,
                retryable=False,
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise PrisjaktAuthError(
                "Prisjakt token endpoint answered without an access_token", status=200
            )
        expires = data.get("expires_in") if isinstance(data, dict) else None
        lifetime = float(expires) if isinstance(expires, (int, float)) else _DEFAULT_LIFETIME
        return token, lifetime


class _TokenForm(requests.auth.AuthBase):
    """Puts the client-credentials form on the token request, as requests' ``auth`` hook.

    The form is built on the prepared request only, so no frame of this
    package holds the secret in a local (a debug page or an error reporter
    shows frames' locals), and the repr says nothing of it.
    """

    def __init__(self, client_id: str, secret: str) -> None:
        self._client_id = client_id
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_body(
            [
                ("grant_type", "client_credentials"),
                ("client_id", self._client_id),
                ("client_secret", self._secret),
            ],
            None,
        )
        return request

    def __repr__(self) -> str:
        return "<client credentials form, secret hidden>"
