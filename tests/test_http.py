"""watcher.http: ClientPerRequest against a real loopback server, and transport errors in words."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest
import trustme

from watcher.client import APIClient
from watcher.clock import ManualClock
from watcher.http import (
    ClientPerRequest,
    ConnectError,
    api_transport,
    describe_transport_error,
    httpx,
)
from watcher.serving import serve_asgi
from watcher.simulator import Simulator, serve_simulator

Message = MutableMapping[str, Any]


class PortRecorder:
    """Answers 200, noting the client port of each request; can hold answers until released."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.release = anyio.Event()
        self.release.set()
        #: Set once ``expect`` requests are in flight together.
        self.all_in = anyio.Event()
        self.expect = 0

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass
        self.ports.append(scope["client"][1])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.expect and self.in_flight >= self.expect:
            self.all_in.set()
        await self.release.wait()
        self.in_flight -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def post_all(pool: ClientPerRequest, url: str, n: int) -> list[int]:
    """POST ``n`` requests at once; return their status codes."""
    statuses: list[int] = []

    async def one(i: int) -> None:
        response = await pool.post(
            url, content=b'{"n":%d}' % i, headers={"x-n": str(i)}, deadline=5
        )
        statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return statuses


async def test_concurrent_requests_each_get_a_connection_and_keep_it() -> None:
    """Four requests at once run side by side, and later rounds reuse those four connections."""
    app = PortRecorder()
    async with serve_asgi(app) as url:
        pool = ClientPerRequest(timeout=5)
        try:
            app.release = anyio.Event()
            app.expect = 4
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(post_all, pool, url, 4)
                    # All four reach the server before any is answered: none queued behind another.
                    await app.all_in.wait()
                    app.release.set()
                for _ in range(3):
                    assert await post_all(pool, url, 4) == [200] * 4
        finally:
            await pool.aclose()
    assert app.peak == 4
    assert len(app.ports) == 16
    assert len(set(app.ports)) == 4


async def test_one_request_at_a_time_uses_one_connection() -> None:
    """Sequential requests share one kept-alive connection."""
    app = PortRecorder()
    async with serve_asgi(app) as url:
        pool = ClientPerRequest(timeout=5)
        try:
            for i in range(5):
                response = await pool.post(url, content=b"{}", headers={"x-n": str(i)}, deadline=5)
                assert response.status_code == 200
        finally:
            await pool.aclose()
    assert len(app.ports) == 5
    assert len(set(app.ports)) == 1


async def test_a_closed_pool_refuses_to_post() -> None:
    """After aclose (which may be called twice) a post raises instead of opening a connection."""
    app = PortRecorder()
    async with serve_asgi(app) as url:
        pool = ClientPerRequest(timeout=5)
        await pool.post(url, content=b"{}", headers={}, deadline=5)
        await pool.aclose()
        await pool.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await pool.post(url, content=b"{}", headers={}, deadline=5)
    assert len(app.ports) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    """A private CA, and a PEM file (key and chain) for 127.0.0.1 that it issued."""
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return ca, str(pem)


async def test_an_untrusted_certificate_is_refused(tls_files: tuple[trustme.CA, str]) -> None:
    """By default the pool verifies TLS against the usual CA bundle: a private CA is refused."""
    _, pem = tls_files
    app = PortRecorder()
    async with serve_asgi(app, ssl_certfile=pem) as url:
        assert url.startswith("https://")
        pool = ClientPerRequest(timeout=5)
        try:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.post(url, content=b"{}", headers={}, deadline=5)
        finally:
            await pool.aclose()
    assert app.ports == []


async def test_a_given_tls_context_is_used_by_every_client(
    tls_files: tuple[trustme.CA, str],
) -> None:
    """``verify`` passes through: with the private CA trusted, concurrent posts over TLS work."""
    ca, pem = tls_files
    context = ssl.create_default_context()
    ca.configure_trust(context)
    app = PortRecorder()
    async with serve_asgi(app, ssl_certfile=pem) as url:
        pool = ClientPerRequest(timeout=5, verify=context)
        try:
            assert await post_all(pool, url, 3) == [200] * 3
        finally:
            await pool.aclose()
    assert len(app.ports) == 3


# -- describe_transport_error ------------------------------------------------------------------


async def _post_error(url: str, **options: Any) -> httpx.HTTPError:
    """What a real POST to ``url`` raises."""
    async with httpx.AsyncClient(timeout=5, **options) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.post(url, content=b"{}")
    return caught.value


async def test_a_refused_connection_is_described_without_the_address() -> None:
    """A port nothing listens on reads as a refused connection, naming the peer, not the host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await _post_error(f"http://127.0.0.1:{port}/hook?token=zz9")
    assert describe_transport_error(error) == "the receiver refused the connection"
    assert describe_transport_error(error, "Slack") == "Slack refused the connection"


async def test_an_untrusted_certificate_is_described(tls_files: tuple[trustme.CA, str]) -> None:
    """A TLS certificate that does not verify is said so, without the host."""
    _, pem = tls_files
    async with serve_asgi(PortRecorder(), ssl_certfile=pem) as url:
        error = await _post_error(url)
    text = describe_transport_error(error, "Slack")
    assert text == "Slack's TLS certificate could not be verified"
    assert "127.0.0.1" not in text


def _gaierror_chain() -> httpx.ConnectError:
    """What httpx raises when getaddrinfo fails: a ConnectError raised from a gaierror."""
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError("[Errno -2] hooks.example.com: not known") from exc
    except httpx.ConnectError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_gaierror_chain(), "could not resolve Slack's host name"),
        (httpx.ConnectTimeout("hooks.example.com"), "timed out connecting to Slack"),
        (httpx.ReadTimeout("hooks.example.com"), "timed out waiting for Slack"),
        (httpx.WriteTimeout("hooks.example.com"), "timed out sending to Slack"),
        (httpx.ConnectError("hooks.example.com"), "could not connect to Slack"),
        (
            httpx.RemoteProtocolError("hooks.example.com"),
            "Slack closed the connection without a valid HTTP answer",
        ),
        (httpx.ReadError("hooks.example.com"), "the connection to Slack broke"),
        (
            httpx.UnsupportedProtocol("ftp://hooks.example.com"),
            "the URL given for Slack is not an http or https URL",
        ),
        (
            httpx.TooManyRedirects("hooks.example.com"),
            "the request to Slack failed (TooManyRedirects)",
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
def test_each_transport_error_gets_its_own_words(error: httpx.HTTPError, expected: str) -> None:
    """Every kind of transport failure has a short description that never quotes httpx's text."""
    text = describe_transport_error(error, "Slack")
    assert text == expected
    assert "example.com" not in text


PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "HTTP_PROXY"])
def test_the_api_client_keeps_httpx_transport_behind_a_proxy(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy named in the environment is honoured: only httpx's own transport reads it."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert api_transport() is not None  # no proxy: aiohttp's
    monkeypatch.setenv(variable, "http://127.0.0.1:3128")
    assert api_transport() is None


async def test_the_api_client_reads_pages_on_the_aiohttp_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an injected transport the client talks through aiohttp's, to a real server."""
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    sim = Simulator(ManualClock(1_750_000_000.0), seed=5)
    sim.add_jobs(150, "succeeded", start=1_749_000_000.0, interval=60)
    async with serve_simulator(sim, port=0) as url, APIClient(base_url=url) as client:
        assert "Aiohttp" in type(client._http._transport).__mro__[1].__name__
        first = await client.list_job_objects(limit=100)
        second = await client.list_job_objects(limit=100, after=first.last_id)
    assert len(first.items) == 100 and first.has_more
    assert len(second.items) == 50 and not second.has_more
