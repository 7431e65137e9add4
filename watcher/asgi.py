"""The ASGI plumbing the simulator and the recording receiver share, so neither needs a framework.

Both are hand-written ASGI apps: they read a request's body, answer the lifespan protocol, send
one response, and sometimes wait for the client to leave. Serve either with
:func:`watcher.serving.serve_asgi`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import anyio

__all__ = [
    "Message",
    "Receive",
    "Scope",
    "Send",
    "lifespan",
    "read_body",
    "send_response",
    "wait_for_disconnect",
]

#: ASGI's connection scope, message and channel types.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive) -> bytes | None:
    """Read a request's whole body; None when the client disconnected before it ended."""
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.extend(message.get("body", b""))
        if not message.get("more_body", False):
            return bytes(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown, for servers that run the lifespan protocol."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_response(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send one whole response; ``content-length`` is added unless ``headers`` has one.

    A 1xx, 204 or 304 answer carries no body and no length, whatever ``body`` holds.
    """
    sent = list(headers)
    bodyless = status in (204, 304) or status < 200
    if not bodyless and not any(name.lower() == b"content-length" for name, _ in sent):
        sent.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": b"" if bodyless else body})


async def wait_for_disconnect(receive: Receive, release: anyio.Event | None = None) -> bool:
    """Hold a request until ``release`` is set (True) or the client leaves first (False).

    Without ``release`` it waits for the client alone; a server that lets such a request go
    cancels a scope around the wait instead.
    """
    released = True
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            if release is not None:

                async def _until_released() -> None:
                    await release.wait()
                    scope.cancel()

                tg.start_soon(_until_released)
            while (await receive())["type"] != "http.disconnect":
                pass
            released = False
            scope.cancel()
    return released
