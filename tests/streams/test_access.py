"""streams.access: loopback is served; beyond it, only with configured credentials.

Peers are faked in-process (a mocked request whose transport reports a peername);
no real remote address is ever used."""

from __future__ import annotations

import base64
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from trialwatch.streams import access
from trialwatch.streams.access import Credentials, decide

LOCAL = ("127.0.0.1", 50000)
LOCAL6 = ("::1", 50000, 0, 0)
REMOTE = ("192.0.2.10", 50000)  # TEST-NET-1: documentation only, never routed
TOKEN = Credentials(token="s3cret-token")
BASIC = Credentials(user="coord", password="pa:ss")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("peer", [LOCAL, LOCAL6, ("::ffff:127.0.0.1", 1, 0, 0), ("127.8.9.1", 2)])
def test_loopback_needs_nothing(peer):
    assert decide(peer, None, Credentials()).allowed
    assert decide(peer, None, TOKEN, "POST").allowed


@pytest.mark.parametrize("peer", [REMOTE, ("10.0.0.5", 1), ("::ffff:192.0.2.1", 1, 0, 0), None, ""])
def test_beyond_loopback_without_configured_credentials_is_refused(peer):
    decision = decide(peer, basic("a", "b"), Credentials())
    assert decision.status == 403
    assert "TRIALWATCH_WEB_TOKEN" in decision.message


@pytest.mark.parametrize(
    "creds, header, status",
    [
        (TOKEN, None, 401),
        (TOKEN, "Bearer wrong", 401),
        (TOKEN, "Bearer s3cret-token", 200),
        (TOKEN, basic("coord", "s3cret-token"), 401),
        (BASIC, basic("coord", "pa:ss"), 200),
        (BASIC, basic("coord", "pa:sx"), 401),
        (BASIC, basic("other", "pa:ss"), 401),
        (BASIC, "Basic !!!notbase64", 401),
        (BASIC, "Bearer pa:ss", 401),
    ],
)
def test_beyond_loopback_with_credentials(creds, header, status):
    for method in ("GET", "POST"):
        decision = decide(REMOTE, header, creds, method)
        assert decision.status == status
        assert "s3cret" not in decision.message and "pa:ss" not in decision.message


def test_a_cross_site_post_is_refused_even_from_loopback():
    assert (
        decide(LOCAL, None, Credentials(), "POST", "http://evil.example", "127.0.0.1:6066").status
        == 403
    )
    assert decide(LOCAL, None, Credentials(), "POST", "null", "127.0.0.1:6066").status == 403
    assert decide(
        LOCAL, None, Credentials(), "POST", "http://127.0.0.1:6066", "127.0.0.1:6066"
    ).allowed
    assert decide(
        LOCAL, None, Credentials(), "GET", "http://evil.example", "127.0.0.1:6066"
    ).allowed


def test_credentials_never_show_in_repr():
    assert "s3cret" not in repr(TOKEN) and "pa:ss" not in repr(BASIC)


def _request(method: str, peer, headers: dict | None = None):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        peer if name == "peername" else default
    )
    return make_mocked_request(method, "/dashboard", headers=headers or {}, transport=transport)


async def _ok(request):
    return web.Response(text="served")


@pytest.mark.parametrize(
    "peer, creds, headers, status",
    [
        (LOCAL, Credentials(), {}, 200),
        (REMOTE, Credentials(), {}, 403),
        (REMOTE, TOKEN, {}, 401),
        (REMOTE, TOKEN, {"Authorization": "Bearer s3cret-token"}, 200),
        (REMOTE, BASIC, {"Authorization": basic("coord", "pa:ss")}, 200),
        # a forwarding header cannot make a remote peer look local
        (REMOTE, Credentials(), {"X-Forwarded-For": "127.0.0.1"}, 403),
    ],
)
async def test_the_middleware_applies_the_decision(peer, creds, headers, status):
    middleware = access.middleware(lambda: creds)
    for method in ("GET", "POST"):
        response = await middleware(_request(method, peer, headers), _ok)
        assert response.status == status
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        if status == 200:
            assert response.text == "served"


def test_the_faust_web_app_carries_the_middleware_and_the_size_bound():
    """streams.webapp relies on Faust's aiohttp driver passing web_application_options
    to aiohttp.web.Application (app.web.web_app): this fails when that stops."""
    from trialwatch.streams import webapp
    from trialwatch.streams.app import app

    aio = webapp.aiohttp_app(app)
    assert isinstance(aio, web.Application)
    assert any(m.__name__ == "access" for m in aio.middlewares)
    assert aio._client_max_size == webapp.MAX_REQUEST_BYTES
