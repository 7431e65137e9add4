"""A tiny HTTP/1.1 server on loopback that misbehaves on purpose, byte by byte.

Real servers (uvicorn, the recording receiver) always answer well-formed and promptly; hostile
ones send headers then one byte a second, a gzip bomb, or a 10 MB answer to a webhook. Each
connection here is read as one request, handed to a ``handler`` that writes whatever raw bytes
it likes, and closed. The server records the paths it was asked for.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.abc
from anyio.abc import SocketStream

__all__ = ["RawRequest", "RawServer", "answer", "drip", "gzip_bomb", "json_answer", "routes"]


@dataclass
class RawRequest:
    """One request as it arrived: method, target (path and query), headers and body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""


Handler = Callable[[RawRequest, SocketStream], Awaitable[None]]


async def _read_request(stream: SocketStream) -> RawRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += await stream.receive()
    return RawRequest(method, target, headers, body)


@dataclass
class RawServer:
    """Serve ``handler`` on 127.0.0.1 (a free port) inside ``async with``."""

    handler: Handler
    #: Every request target received, in order (``/v1/fine_tuning/jobs?limit=100``...).
    targets: list[str] = field(default_factory=list)
    port: int = 0
    _tg: anyio.abc.TaskGroup | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(listener.serve, self._serve)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        # The body's own exception (a failed assertion) propagates as is, not in a group.
        await self._tg.__aexit__(None, None, None)

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            request = await _read_request(stream)
            if request is None:
                return
            self.targets.append(request.target)
            # The client may hang up first: that is what several tests are about.
            with contextlib.suppress(
                anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError
            ):
                await self.handler(request, stream)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int, body: bytes, **headers: str) -> Handler:
    """A handler answering every request with ``status`` and ``body`` at once."""

    async def handle(request: RawRequest, stream: SocketStream) -> None:
        head = {
            "content-length": str(len(body)),
            **{k.replace("_", "-"): v for k, v in headers.items()},
        }
        await stream.send(_head(status, head) + body)

    return handle


def json_answer(body: bytes, status: int = 200) -> Handler:
    """A handler answering ``body`` as ``application/json``."""
    return answer(status, body, content_type="application/json")


def gzip_bomb(decompressed: int) -> Handler:
    """A handler answering 200 with a gzip body of ``decompressed`` zero bytes (~1000:1)."""
    compressed = gzip.compress(b"\0" * decompressed, compresslevel=9)
    return answer(200, compressed, content_type="application/json", content_encoding="gzip")


def drip(every: float, status: int = 200) -> Handler:
    """A handler sending its headers at once, then one body byte every ``every`` seconds.

    Each wait is shorter than a per-read timeout, so only a deadline on the whole request
    ends it; the body announced is far longer than any test waits for.
    """

    async def handle(request: RawRequest, stream: SocketStream) -> None:
        head = {"content-length": "100000", "content-type": "application/json"}
        await stream.send(_head(status, head))
        while True:
            await stream.send(b" ")
            await anyio.sleep(every)

    return handle


def routes(table: dict[str, Handler]) -> Handler:
    """A handler answering by path (query left out) from ``table``, and 404 elsewhere."""
    missing = answer(404, b'{"error": {"message": "no such path"}}')

    async def handle(request: RawRequest, stream: SocketStream) -> None:
        path = request.target.split("?", 1)[0]
        await table.get(path, missing)(request, stream)

    return handle
