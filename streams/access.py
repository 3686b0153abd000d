"""Who may use the worker's web server (the dashboard, the JSON views, /score).

The server binds 127.0.0.1 by default (``TRIALWATCH_WEB_HOST``). A request from a
loopback peer is served as it is. A request from any other peer needs configured
credentials, a bearer token (``TRIALWATCH_WEB_TOKEN``) or basic auth
(``TRIALWATCH_WEB_USER`` + ``TRIALWATCH_WEB_PASSWORD``):

- none configured: 403, "serving beyond loopback needs credentials";
- configured, missing or wrong in the request: 401 (with a ``WWW-Authenticate``
  challenge, so a browser asks for the basic-auth login).

Every method is covered, so nothing that changes state (the POSTs) is reachable
from beyond loopback without them. A POST whose browser ``Origin`` names another
site is refused too (403), from loopback as well: a page elsewhere cannot make a
coordinator's browser acknowledge alerts on 127.0.0.1.

The peer is the TCP peer of the connection (``transport.get_extra_info("peername")``),
never a header: ``X-Forwarded-For`` cannot make a remote client look local. An
unknown peer counts as remote. Secrets are compared with ``hmac.compare_digest``
and are never logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

CHALLENGE = 'Basic realm="trialwatch", charset="UTF-8"'
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Credentials:
    token: str = ""
    user: str = ""
    password: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.token) or bool(self.user and self.password)

    def __repr__(self) -> str:  # never show a secret
        return f"Credentials(token={'***' if self.token else ''!r}, user={self.user!r})"

    @classmethod
    def of(cls, settings) -> Credentials:
        return cls(settings.web_token, settings.web_user, settings.web_password)


@dataclass(frozen=True)
class Decision:
    status: int  # 200 = serve it
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


def is_loopback(peer: object) -> bool:
    """``peer`` as ``transport.get_extra_info("peername")`` gives it: (host, port, ...)."""
    if not isinstance(peer, tuple | list) or not peer:
        return False
    host = str(peer[0]).split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def credentials_match(authorization: str | None, creds: Credentials) -> bool:
    """Does the ``Authorization`` header carry the configured token or basic auth?"""
    if not authorization or not creds.configured:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and creds.token:
        return _equal(value, creds.token)
    if scheme.lower() == "basic" and creds.user and creds.password:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # both compared, always: the time taken does not tell which one was wrong
        user_ok = _equal(user, creds.user)
        password_ok = _equal(password, creds.password)
        return bool(sep) and user_ok and password_ok
    return False


def cross_site(method: str, origin: str | None, host: str | None) -> bool:
    """A state-changing request a browser sent from a page of another origin."""
    if method.upper() not in STATE_CHANGING or not origin:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != (host or "").lower()


def decide(
    peer: object,
    authorization: str | None,
    creds: Credentials,
    method: str = "GET",
    origin: str | None = None,
    host: str | None = None,
) -> Decision:
    """The whole policy, as a pure function of what the request shows."""
    if cross_site(method, origin, host):
        return Decision(403, "refused: a state-changing request from another site's page")
    if is_loopback(peer):
        return Decision(200)
    if not creds.configured:
        return Decision(
            403,
            "refused: this server answers only loopback (127.0.0.1) clients unless "
            "credentials are configured (TRIALWATCH_WEB_TOKEN, or TRIALWATCH_WEB_USER "
            "and TRIALWATCH_WEB_PASSWORD)",
        )
    if not credentials_match(authorization, creds):
        return Decision(401, "authentication required: a bearer token or basic-auth credentials")
    return Decision(200)


def middleware(creds_of: Callable[[], Credentials]):
    """The aiohttp middleware applying ``decide`` to every request."""

    @web.middleware
    async def access(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        decision = decide(
            peer,
            request.headers.get("Authorization"),
            creds_of(),
            request.method,
            request.headers.get("Origin"),
            request.headers.get("Host"),
        )
        if decision.allowed:
            return await handler(request)
        headers = {"WWW-Authenticate": CHALLENGE} if decision.status == 401 else None
        return web.Response(status=decision.status, text=decision.message + "\n", headers=headers)

    return access
