"""A minimal webhook receiver for the delivery benchmark, run as its own process.

Run: .venv/bin/python bench/receiver.py [PORT]   (PORT 0, the default, picks a free one)

Prints its base URL as the first stdout line, then serves until SIGINT or SIGTERM. Every
request's body is read and answered 200 with an empty body, except:

- path ``/hang``: never answered (the client's timeout, or the receiver stopping, ends it);
- query ``delay_ms=N``: answered after N milliseconds.

A separate process, so that the receiver's work never shares the measured event loop.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import anyio

from watcher.logs import configure_logging
from watcher.serving import serve_asgi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", b"0")],
}
_OK_BODY: Message = {"type": "http.response.body", "body": b""}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the request body, then answer 200 empty (or late, or never)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = bool(message.get("more_body", False))
    if scope["path"] == "/hang":
        # Never answer, but end once the client goes away, so no request outlives its client.
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    delay_ms = query.get("delay_ms")
    if delay_ms:
        await anyio.sleep(float(delay_ms[0]) / 1000)
    await send(dict(_OK_START))
    await send(dict(_OK_BODY))


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port``, print the URL, and stop on SIGINT or SIGTERM."""
    configure_logging("warning", "console")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve_asgi(app, port=port) as url:
            print(url, flush=True)
            async for _ in signals:
                break


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 0)
