"""The operations endpoint: ``/metrics``, ``/healthz``, ``/readyz``, served by the daemon.

``[server] listen = "127.0.0.1:9464"`` turns it on; the :class:`~watcher.Watcher` serves
:class:`OperationsApp` on its own event loop (uvicorn, through :mod:`watcher.serving`). Each
route is an async function returning a :class:`Reply`, kept in one mapping, so a new route is
one line: ``watcher.routes["/jobs"] = jobs_route``. Only GET and HEAD are answered.

Nothing secret is served: series and bodies hold names, counts, times and reasons that the
logs already show with secrets masked.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from .asgi import Receive, Scope, Send, lifespan, send_response
from .clock import Clock
from .metrics import CONTENT_TYPE, Metrics
from .store import StateStore

if TYPE_CHECKING:
    from .dispatch import SinkWorker
    from .poller import SourcePoller

__all__ = [
    "READY_INTERVALS",
    "OperationsApp",
    "Reply",
    "Route",
    "json_reply",
    "readiness",
    "standard_routes",
]

log = structlog.get_logger(__name__)

#: A source is ready while its last good poll is at most this many poll intervals old.
READY_INTERVALS = 3


@dataclass(frozen=True)
class Reply:
    """One answer of a route."""

    status: int
    body: bytes
    content_type: str = "application/json"


#: A route: called for each GET (or HEAD) of its path.
Route = Callable[[], Awaitable[Reply]]


def json_reply(data: Any, status: int = 200) -> Reply:
    """``data`` as a JSON reply."""
    return Reply(status, json.dumps(data, separators=(",", ":")).encode() + b"\n")


def readiness(
    pollers: Mapping[str, SourcePoller],
    workers: Mapping[str, SinkWorker],
    polled_at: Mapping[str, float],
    now: float,
) -> list[str]:
    """Why the watcher is not ready (empty when it is).

    Ready means every source polled successfully within :data:`READY_INTERVALS` poll intervals
    (jitter and one request's timeout allowed for) and no sink is disabled.
    """
    reasons: list[str] = []
    for name, poller in pollers.items():
        config = poller.config
        if poller.failed is not None:
            reasons.append(f"source {name!r} stopped: {poller.failed}")
            continue
        last = polled_at.get(name)
        if last is None:
            reasons.append(f"source {name!r} has not polled successfully yet")
            continue
        allowed = READY_INTERVALS * config.poll_interval * (1 + config.jitter) + config.timeout
        if now - last > allowed:
            reasons.append(
                f"source {name!r} last polled successfully {now - last:.0f}s ago "
                f"(more than {READY_INTERVALS} poll intervals)"
            )
    for name, worker in workers.items():
        if worker.disabled is not None:
            reasons.append(f"sink {name!r} is disabled: {worker.disabled}")
    return reasons


def standard_routes(
    *,
    metrics: Metrics,
    pollers: Mapping[str, SourcePoller],
    workers: Mapping[str, SinkWorker],
    store: StateStore,
    clock: Clock,
) -> dict[str, Route]:
    """``/metrics``, ``/healthz`` and ``/readyz`` for one watcher's parts."""

    async def metrics_route() -> Reply:
        await metrics.refresh(pollers, workers, store, clock.now())
        return Reply(200, metrics.exposition(), CONTENT_TYPE)

    async def health_route() -> Reply:
        # Answering at all is the proof: this runs on the loop that polls and delivers.
        return json_reply({"status": "ok"})

    async def ready_route() -> Reply:
        reasons = readiness(pollers, workers, metrics.polled_at, clock.now())
        if reasons:
            return json_reply({"status": "not ready", "reasons": reasons}, 503)
        return json_reply({"status": "ready"})

    return {"/metrics": metrics_route, "/healthz": health_route, "/readyz": ready_route}


class OperationsApp:
    """An ASGI app serving GET and HEAD on the paths of ``routes`` (a live mapping)."""

    def __init__(self, routes: MutableMapping[str, Route]) -> None:
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        route = self.routes.get(scope["path"])
        method = scope["method"]
        if route is None:
            known = sorted(self.routes)
            reply = json_reply({"error": f"no such path; try one of {', '.join(known)}"}, 404)
        elif method not in ("GET", "HEAD"):
            reply = json_reply({"error": "only GET and HEAD are answered"}, 405)
        else:
            try:
                reply = await route()
            except Exception:
                log.exception("operations_route_failed", path=scope["path"])
                reply = json_reply({"error": "the route failed; the daemon's log says why"}, 500)
        headers = [(b"content-type", reply.content_type.encode())]
        if method == "HEAD":
            headers.append((b"content-length", str(len(reply.body)).encode()))
            await send_response(send, reply.status, b"", headers)
            return
        await send_response(send, reply.status, reply.body, headers)
