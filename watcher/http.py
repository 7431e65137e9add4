"""The one module that imports httpx.

Everything else, the built-in plugins included, takes its HTTP names from here, so that moving
to httpx's maintained fork (same API) is a one-line change. It also silences httpx's own
request log, which would print every URL at INFO, and a Slack webhook URL is a secret.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from httpx import (
    ASGITransport,
    AsyncBaseTransport,
    AsyncClient,
    ConnectError,
    HTTPError,
    Limits,
    MockTransport,
    Request,
    Response,
    Timeout,
    TimeoutException,
    TransportError,
)

__all__ = [
    "ASGITransport",
    "AsyncBaseTransport",
    "AsyncClient",
    "ClientPerRequest",
    "ConnectError",
    "HTTPError",
    "Limits",
    "MockTransport",
    "Request",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
    "describe_transport_error",
    "httpx",
    "quiet_http_logs",
]


def quiet_http_logs() -> None:
    """Keep httpx and httpcore from logging request URLs (they may hold secrets)."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, each once."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def describe_transport_error(exc: BaseException, peer: str = "the receiver") -> str:
    """Say in a few words why a request got no answer from ``peer``, without its URL or host.

    httpx's own messages may name the host, and its exceptions hold the request and so the URL
    (a Slack webhook URL is a secret): the wording is chosen from the exception's type and its
    causes only, e.g. ``"the receiver refused the connection"``, ``"could not resolve Slack's
    host name"``, ``"timed out waiting for the receiver"``. ``peer`` names who was called, as
    it reads in a sentence (``"the receiver"``, ``"Slack"``).
    """
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting to {peer}"
    if isinstance(exc, httpx.WriteTimeout):
        return f"timed out sending to {peer}"
    if isinstance(exc, httpx.PoolTimeout):
        return f"timed out waiting for a free connection to {peer}"
    if isinstance(exc, TimeoutException | TimeoutError):
        return f"timed out waiting for {peer}"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return f"could not resolve {peer}'s host name"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return f"{peer} refused the connection"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{peer}'s TLS certificate could not be verified"
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake with {peer} failed"
        if isinstance(cause, ConnectionResetError):
            return f"{peer} reset the connection"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"the URL given for {peer} is not an http or https URL"
    if isinstance(exc, httpx.ProxyError):
        return f"the proxy would not connect to {peer}"
    if isinstance(exc, ConnectError):
        return f"could not connect to {peer}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{peer} closed the connection without a valid HTTP answer"
    if isinstance(exc, httpx.NetworkError):
        return f"the connection to {peer} broke"
    if isinstance(exc, httpx.DecodingError):
        return f"the answer of {peer} could not be decoded"
    # The type's name says what happened and never holds the host.
    return f"the request to {peer} failed ({type(exc).__name__})"


class ClientPerRequest:
    """HTTP clients of one keep-alive connection each, each lent to one request at a time.

    For a sink that posts many small requests at once to one receiver. httpx's shared pool
    re-checks every pooled connection (a system call or two each) on every request and every
    response, and requests that start together are often handed the same idle connection, so
    all but one fail internally and queue again. A client per concurrent request needs
    neither: the connection it kept alive from its last request is the only one it checks.
    There are as many clients as requests ever ran at once (a sink's ``concurrency``);
    ``options`` are :class:`AsyncClient`'s.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._free: list[AsyncClient] = []
        self._all: list[AsyncClient] = []
        self._closed = False

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``content`` on a client no other request is using; return the read response."""
        if self._closed:
            raise RuntimeError("this HTTP client pool is closed")
        # Last in, first out: the client used most recently has a live connection.
        client = self._free.pop() if self._free else self._new_client()
        try:
            return await client.post(url, content=content, headers=headers)
        finally:
            self._free.append(client)

    def _new_client(self) -> AsyncClient:
        # One TLS context for all: loading the CA bundle costs ~15 ms a client otherwise.
        if "verify" not in self._options:
            self._options["verify"] = httpx.create_ssl_context()
        client = AsyncClient(
            limits=Limits(max_connections=1, max_keepalive_connections=1), **self._options
        )
        self._all.append(client)
        return client

    async def aclose(self) -> None:
        """Close every client and its connection; safe to call more than once."""
        self._closed = True
        clients, self._all, self._free = self._all, [], []
        for client in clients:
            await client.aclose()


quiet_http_logs()
