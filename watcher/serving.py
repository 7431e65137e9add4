"""Serve an ASGI app on a real socket inside the caller's event loop.

The simulator (``ftwatch simulate``, ``ftwatch demo``), the tests' HTTP receivers and the
benchmarks use it. The socket is bound and listening before the context is entered, so callers
never wait or poll for the server to come up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

__all__ = ["serve_asgi"]


@asynccontextmanager
async def serve_asgi(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one) and yield its base URL.

    With ``ssl_certfile`` (a PEM certificate chain, and the key too unless ``ssl_keyfile``
    names it) the server speaks TLS and the URL is ``https://``. Uses uvicorn's startup and
    shutdown directly rather than ``serve()``, which would take over the process's signal
    handlers.
    """
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: with protocol 0 asyncio does not set TCP_NODELAY on accepted
    # connections, and every kept-alive request waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        # Our logging config owns the handlers, so uvicorn's lines are masked and formatted too.
        log_config=None,
        timeout_graceful_shutdown=1,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    try:
        scheme = "https" if ssl_certfile else "http"
        yield f"{scheme}://{shown}:{bound_port}"
    finally:
        await server.shutdown(sockets=[sock])
        sock.close()
