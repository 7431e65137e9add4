"""The one module that imports httpx.

Everything else, the built-in plugins included, takes its HTTP names from here, so that moving
to httpx's maintained fork (same API) is a one-line change. It also silences httpx's own
request log, which would print every URL at INFO, and a Slack webhook URL is a secret.
"""

from __future__ import annotations

import email.message
import errno
import json
import logging
import socket
import ssl
import urllib.request
import zlib
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx
from httpx import (
    ASGITransport,
    AsyncBaseTransport,
    AsyncClient,
    AsyncHTTPTransport,
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

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = [
    "SINK_ANSWER_BYTES",
    "ASGITransport",
    "Answer",
    "BearerAuth",
    "AsyncBaseTransport",
    "AsyncClient",
    "AsyncHTTPTransport",
    "ClientPerRequest",
    "ConnectError",
    "DeadlineExceeded",
    "HTTPError",
    "Limits",
    "MockTransport",
    "Request",
    "Response",
    "Timeout",
    "TimeoutException",
    "TransportError",
    "ResponseTooLarge",
    "api_transport",
    "describe_transport_error",
    "fetch",
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
    # The causes first: aiohttp's transport maps a refused connection to a ConnectTimeout.
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
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting to {peer}"
    if isinstance(exc, httpx.WriteTimeout):
        return f"timed out sending to {peer}"
    if isinstance(exc, httpx.PoolTimeout):
        return f"timed out waiting for a free connection to {peer}"
    if isinstance(exc, TimeoutException | TimeoutError):
        return f"timed out waiting for {peer}"
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


#: The most a sink reads of a receiver's answer: it needs the status and a short reason only.
SINK_ANSWER_BYTES: Final = 4096


class DeadlineExceeded(TimeoutException):
    """The whole request (connect, send and the whole answer) took longer than its deadline.

    A :class:`TimeoutException`, so whoever retries timeouts retries this one too. Its message
    names the deadline only, never the URL.
    """

    def __init__(self, deadline: float) -> None:
        super().__init__(f"timed out: no whole answer within {deadline:g}s")
        self.deadline = deadline


class ResponseTooLarge(Exception):
    """An answer's body, once decompressed, is larger than the caller's ``limit`` in bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Answer:
    """A response read by :func:`fetch`: its status, its headers and (at most) its body."""

    status_code: int
    headers: httpx.Headers
    #: The decompressed body, at most the limit given to :func:`fetch`.
    content: bytes
    #: True when the body was longer than the limit and only its start was kept.
    truncated: bool = False

    @property
    def text(self) -> str:
        """The body as text, in the charset the response names (UTF-8 by default)."""
        message = email.message.Message()
        message["content-type"] = self.headers.get("content-type", "")
        charset = message.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON.

        Never raises: a receiver's answer is untrusted, and a capped body of ``[[[[...`` nests
        deeper than the json module goes (RecursionError) as easily as it is cut mid-value.
        """
        try:
            return json.loads(self.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None


def _inflater(encoding: str) -> Any:
    """A bounded decompressor for ``encoding``, None for identity; raise for other encodings."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    raise LookupError(encoding)


async def _read_limited(response: Response, limit: int, *, truncate: bool) -> tuple[bytes, bool]:
    """Read ``response``'s decompressed body up to ``limit`` bytes: (body, truncated).

    gzip and deflate (what httpx asks for) are decompressed here, never more than ``limit + 1``
    bytes at a time, so a small compressed body cannot expand into memory beyond the limit
    (httpx's own decoder inflates each network chunk whole: ~64 MB from 64 KiB of a gzip bomb).
    Other encodings go through httpx's decoders, still stopped at the limit.
    """
    try:
        # A response built whole in memory (a MockTransport's) was read and decoded already.
        body = bytearray(response.content)
    except httpx.ResponseNotRead:
        pass
    else:
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit]), True
            raise ResponseTooLarge(limit)
        return bytes(body), False
    encoding = response.headers.get("content-encoding", "").strip().lower()
    try:
        inflater = _inflater(encoding)
        chunks: AsyncIterator[bytes] = response.aiter_raw()
    except LookupError:
        inflater = None
        chunks = response.aiter_bytes()
    body = bytearray()
    inflated = False
    async for chunk in chunks:
        data = chunk
        while data:
            room = limit - len(body) + 1
            if inflater is None:
                out, data = data[:room], data[room:]
            else:
                try:
                    out = inflater.decompress(data, room)
                    inflated = True
                except zlib.error:
                    if encoding == "deflate" and not inflated:
                        # Some servers send raw deflate without the zlib header; httpx allows it.
                        inflated = True  # one fallback only
                        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                        continue
                    raise httpx.DecodingError(f"the {encoding} body is damaged") from None
                data = inflater.unconsumed_tail
            body += out
            if len(body) > limit:
                break
        if len(body) > limit:
            break
    else:
        if inflater is not None:
            try:
                body += inflater.flush()  # what zlib still holds: at most its 32 KiB window
            except zlib.error:
                raise httpx.DecodingError(f"the {encoding} body is damaged") from None
    if len(body) > limit:
        if truncate:
            return bytes(body[:limit]), True
        raise ResponseTooLarge(limit)
    return bytes(body), False


async def fetch(
    client: AsyncClient,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    truncate: bool = False,
    **options: Any,
) -> Answer:
    """Send one request on ``client`` and read its answer, all within ``deadline`` seconds.

    httpx's own timeouts are per connect, read or write, so a server sending one byte a second
    never trips them; ``deadline`` bounds the whole exchange (connect, send, the whole body)
    and raises :class:`DeadlineExceeded` (a :class:`TimeoutException`) when it passes. The
    body is read decompressed up to ``max_bytes``: beyond it, :class:`ResponseTooLarge` is
    raised, or with ``truncate`` the first ``max_bytes`` are kept and the rest is never read.
    ``options`` are those of :meth:`AsyncClient.stream` (``params``, ``headers``,
    ``content``, ``auth``, ``timeout``...). A damaged compressed body raises
    :class:`httpx.DecodingError`.
    """
    try:
        with anyio.fail_after(deadline):
            async with client.stream(method, url, **options) as response:
                content, truncated = await _read_limited(response, max_bytes, truncate=truncate)
    except TimeoutError:
        raise DeadlineExceeded(deadline) from None
    return Answer(response.status_code, response.headers, content, truncated)


def _aiohttp_transport(verify: Any) -> AsyncBaseTransport:
    """httpx-aiohttp's transport, with a failure to connect raised as httpx's ConnectError.

    It reports every failure to connect (refused, a bad certificate) as a ConnectTimeout, as
    aiohttp's connector error is an OSError like TimeoutError; only a real timeout stays one.
    Imported here, on first use: aiohttp takes a while to import, and most commands never post.
    """
    from httpx_aiohttp import AiohttpTransport

    class Transport(AiohttpTransport):
        async def handle_async_request(self, request: Request) -> Response:
            try:
                return await super().handle_async_request(request)
            except httpx.ConnectTimeout as exc:
                cause = exc.__cause__
                if (
                    cause is None
                    or isinstance(cause, TimeoutError)
                    or "Timeout" in type(cause).__name__
                ):
                    raise
                raise ConnectError(str(exc), request=request) from cause

    return Transport(verify=verify)


def api_transport() -> AsyncBaseTransport | None:
    """The transport for an API client's own connections: httpx on aiohttp, as the sinks use.

    None (httpx's own transport) when the environment names a proxy: only httpx's transport
    honours ``HTTPS_PROXY`` and its kin, and a daemon behind a proxy must keep reaching the API.
    """
    # The proxies httpx itself would read from the environment (it reads them with getproxies).
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return _aiohttp_transport(httpx.create_ssl_context())


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

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        deadline: float,
        max_bytes: int = SINK_ANSWER_BYTES,
    ) -> Answer:
        """POST ``content`` on a client no other request is using; return its answer.

        As :func:`fetch`: the whole exchange within ``deadline`` seconds, and at most
        ``max_bytes`` of the answer's body read (the rest is dropped, unread).
        """
        if self._closed:
            raise RuntimeError("this HTTP client pool is closed")
        # Last in, first out: the client used most recently has a live connection.
        client = self._free.pop() if self._free else self._new_client()
        try:
            return await fetch(
                client,
                "POST",
                url,
                content=content,
                headers=headers,
                deadline=deadline,
                max_bytes=max_bytes,
                truncate=True,
            )
        finally:
            self._free.append(client)

    def _new_client(self) -> AsyncClient:
        # One TLS context for all: loading the CA bundle costs ~15 ms a client otherwise.
        if "verify" not in self._options:
            self._options["verify"] = httpx.create_ssl_context()
        if self._options.get("transport") is None:
            # httpx on aiohttp's HTTP/1.1 stack: the same requests, answers and errors, at
            # about half the CPU per POST (bench/delivery.py); one transport for all clients.
            self._options["transport"] = _aiohttp_transport(self._options["verify"])
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


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <key>`` to each request as it is sent, and nothing else."""

    def __init__(self, key: SecretStr | None) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "BearerAuth(key=***)" if self._key is not None else "BearerAuth(key=None)"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        """Set the header on ``request`` and send it once."""
        if self._key is not None:
            request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def redact(self, text: str) -> str:
        """Replace the key wherever ``text`` holds it (a server could echo it back)."""
        if self._key is not None and self._key.get_secret_value():
            text = text.replace(self._key.get_secret_value(), "***")
        return text
