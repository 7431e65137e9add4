"""A minimal webhook receiver for the delivery benchmark, run as its own process.

Run: .venv/bin/python bench/receiver.py [PORT]   (PORT 0, the default, picks a free one)

Prints its base URL as the first stdout line, then serves until SIGINT or SIGTERM. Every
request's body is read and answered 200 with an empty body, except:

- path ``/hang``: never answered (the client's timeout, or the receiver stopping, ends it);
- query ``delay_ms=N``: answered after N milliseconds.

A separate process, so that the receiver's work never shares the measured event loop, and a
raw asyncio protocol (HTTP/1.1 keep-alive, bodies by ``content-length``) rather than an ASGI
server, so that the receiver is not the ceiling: it answers in a few microseconds of CPU.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Receiver(asyncio.Protocol):
    """One connection: parse each request's head and body, answer 200 (late or never)."""

    #: When a list (``bench/e2e_receiver.py`` sets one), each request's arrival is appended to
    #: it as ``time.monotonic()``, which is system-wide on Linux, so other processes compare.
    arrivals: list[float] | None = None

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            if self.arrivals is not None:
                self.arrivals.append(time.monotonic())
            target = urlsplit(head.split(b" ", 2)[1].decode())
            if target.path == "/hang":
                continue  # never answered; the client's timeout or disconnect ends it
            delay = parse_qs(target.query).get("delay_ms")
            if delay:
                asyncio.get_running_loop().call_later(float(delay[0]) / 1000, self._ok)
            else:
                self._ok()

    def _ok(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_OK)


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port``, print the URL, and stop on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{bound}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
