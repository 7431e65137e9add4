"""Prometheus metrics for one :class:`~watcher.Watcher`, in a registry of its own.

Every series is named ``ftwatch_...`` and listed in the README. Labels are bounded: sources,
sinks, statuses, event types, API operations and outcomes, never a job id.

The watcher feeds :class:`Metrics` through three thin seams, so the stages need not know it:

- :class:`ObservedTransport` wraps a source's HTTP transport: API requests and their latency;
- :class:`ObservedSink` wraps a sink: deliveries and their latency;
- :meth:`Metrics.cycle_done` is the poller's ``on_cycle`` hook: last good poll, events emitted.

What the store and the workers know (jobs by status, each sink's queue, dead letters, whether
it is disabled) is read at scrape time by :meth:`Metrics.refresh`, not on every change.
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from .errors import SinkDisabled, SinkRejected, SinkUnavailable
from .events import BaseEvent
from .http import AsyncBaseTransport, Request, Response
from .sinks import Sink
from .store import StateStore
from .version import __version__

if TYPE_CHECKING:
    from .dispatch import SinkWorker
    from .poller import CycleReport, SourcePoller

__all__ = ["CONTENT_TYPE", "Metrics", "ObservedSink", "ObservedTransport"]

#: The content type of :meth:`Metrics.exposition`: Prometheus's text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# API latencies: a local simulator answers in a millisecond, a loaded API in tens of seconds.
_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Sends to a sink: a file write is sub-millisecond, a webhook may take seconds.
_SINK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The path of each API operation, from its end: the base URL before it is the user's.
_OPERATIONS = (
    (re.compile(r"/fine_tuning/jobs$"), "list_jobs"),
    (re.compile(r"/fine_tuning/jobs/[^/]+/events$"), "list_job_events"),
    (re.compile(r"/fine_tuning/jobs/[^/]+/checkpoints$"), "list_checkpoints"),
    (re.compile(r"/fine_tuning/jobs/[^/]+/[a-z_]+$"), "job_action"),
    (re.compile(r"/fine_tuning/jobs/[^/]+$"), "retrieve_job"),
)


def operation_of(path: str) -> str:
    """The API operation a request path is for (``other`` for a path no operation has)."""
    for pattern, name in _OPERATIONS:
        if pattern.search(path):
            return name
    return "other"


def _status_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


class Metrics:
    """The instruments of one watcher, the hooks that feed them and the text a scrape reads."""

    def __init__(self, clock_now: Callable[[], float] = time.time) -> None:
        """Create every instrument in a new registry (never the process-wide default one).

        ``clock_now`` gives the Unix time of a successful poll (the watcher's clock).
        """
        self._now = clock_now
        self.registry = registry = CollectorRegistry(auto_describe=True)
        Info("ftwatch_build", "The ftwatch version and Python running it.", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.jobs = Gauge(
            "ftwatch_jobs",
            "Jobs the watcher knows, by source and status.",
            ["source", "status"],
            registry=registry,
        )
        self.events = Counter(
            "ftwatch_events_emitted",
            "Events journaled, by source and event type.",
            ["source", "type"],
            registry=registry,
        )
        self.api_requests = Counter(
            "ftwatch_api_requests",
            "HTTP requests to a source's API (retries included), by operation and outcome.",
            ["source", "endpoint", "outcome"],
            registry=registry,
        )
        self.api_latency = Histogram(
            "ftwatch_api_request_duration_seconds",
            "Time from sending an API request to its answer's headers.",
            ["source", "endpoint"],
            buckets=_API_BUCKETS,
            registry=registry,
        )
        self.last_poll = Gauge(
            "ftwatch_last_successful_poll_timestamp_seconds",
            "Unix time at which the source's last poll cycle succeeded.",
            ["source"],
            registry=registry,
        )
        self.deliveries = Counter(
            "ftwatch_deliveries",
            "Attempts to deliver an event to a sink, by outcome.",
            ["sink", "outcome"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "ftwatch_delivery_duration_seconds",
            "Time one send to a sink took, whatever its outcome.",
            ["sink"],
            buckets=_SINK_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "ftwatch_sink_queue_depth",
            "Events waiting for delivery to the sink (fresh and waiting for a retry).",
            ["sink"],
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "ftwatch_sink_oldest_pending_age_seconds",
            "Age of the oldest event waiting for the sink (0 when none waits).",
            ["sink"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "ftwatch_sink_dead_letters",
            "Dead letters the sink holds.",
            ["sink"],
            registry=registry,
        )
        self.disabled = Gauge(
            "ftwatch_sink_disabled",
            "1 when the sink disabled itself (it stops until the daemon restarts).",
            ["sink"],
            registry=registry,
        )
        self.subscriber_drops = Counter(
            "ftwatch_subscriber_drops",
            "Events dropped because an in-process subscriber's buffer was full.",
            registry=registry,
        )
        #: Unix time of each source's last successful poll (for readiness too).
        self.polled_at: dict[str, float] = {}
        self._job_series: set[tuple[str, str]] = set()

    # -- hooks the stages call ------------------------------------------------------------------

    def cycle_done(self, report: CycleReport) -> None:
        """A poll cycle of ``report.source`` succeeded: stamp it, count its events."""
        now = self._now()
        self.polled_at[report.source] = now
        self.last_poll.labels(report.source).set(now)
        for event in report.events:
            self.events.labels(report.source, event.type).inc()

    def api_request(self, source: str, endpoint: str, outcome: str, seconds: float) -> None:
        """Count one API request and its latency."""
        self.api_requests.labels(source, endpoint, outcome).inc()
        self.api_latency.labels(source, endpoint).observe(seconds)

    def delivery(self, sink: str, outcome: str, seconds: float) -> None:
        """Count one attempt to deliver to ``sink`` and its latency."""
        self.deliveries.labels(sink, outcome).inc()
        self.delivery_latency.labels(sink).observe(seconds)

    def dropped(self, count: int) -> None:
        """Count events a subscriber dropped."""
        if count:
            self.subscriber_drops.inc(count)

    # -- at scrape time -------------------------------------------------------------------------

    async def refresh(
        self,
        pollers: Mapping[str, SourcePoller],
        workers: Mapping[str, SinkWorker],
        store: StateStore,
        now: float,
    ) -> None:
        """Set the gauges from what the pollers, workers and store hold right now."""
        counts: dict[tuple[str, str], int] = {}
        for name, poller in pollers.items():
            for state in poller.states.values():
                key = (name, str(state.job.status))
                counts[key] = counts.get(key, 0) + 1
        # A status no job has any more reads 0 rather than vanishing: alerts see it drop.
        for key in self._job_series - counts.keys():
            counts[key] = 0
        self._job_series.update(counts)
        for (source, status), count in counts.items():
            self.jobs.labels(source, status).set(count)
        stats = await store.stats()
        pending: Mapping[str, int] = stats.get("pending", {})  # type: ignore[assignment]
        dead: Mapping[str, int] = stats.get("dead", {})  # type: ignore[assignment]
        for name, worker in workers.items():
            depth = int(pending.get(name, 0))
            self.queue_depth.labels(name).set(depth)
            self.dead_letters.labels(name).set(int(dead.get(name, 0)))
            self.disabled.labels(name).set(1 if worker.disabled is not None else 0)
            age = 0.0
            if depth:
                oldest = await store.pending(name, limit=1)
                if oldest:
                    age = max(0.0, now - oldest[0].observed_at)
            self.oldest_pending.labels(name).set(age)

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)


class ObservedTransport(AsyncBaseTransport):
    """An HTTP transport that counts and times every request of one source."""

    def __init__(self, inner: AsyncBaseTransport, source: str, metrics: Metrics) -> None:
        self._inner = inner
        self._source = source
        self._metrics = metrics

    async def handle_async_request(self, request: Request) -> Response:
        """Send through the wrapped transport; record the outcome and the time to headers."""
        endpoint = operation_of(request.url.path)
        started = time.perf_counter()
        outcome = "transport_error"
        try:
            response = await self._inner.handle_async_request(request)
            outcome = _status_outcome(response.status_code)
            return response
        except anyio.get_cancelled_exc_class():
            # The whole-request deadline ran out (or the daemon is stopping).
            outcome = "cancelled"
            raise
        finally:
            self._metrics.api_request(
                self._source, endpoint, outcome, time.perf_counter() - started
            )

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


class ObservedSink:
    """A sink that counts and times every send of the sink it wraps.

    Outcomes: ``delivered``, ``unavailable`` (retried later), ``rejected`` (a dead letter),
    ``disabled`` and ``error`` (the plugin raised something else; retried).
    """

    def __init__(self, inner: Sink, name: str, metrics: Metrics) -> None:
        self.inner = inner
        self.name = name
        self._metrics = metrics

    def __getattr__(self, attribute: str) -> Any:
        # Anything but send (a test's CollectingSink.events, a plugin's own attributes).
        return getattr(self.inner, attribute)

    async def send(self, event: BaseEvent) -> str | None:
        """Send through the wrapped sink; record the outcome and how long it took."""
        started = time.perf_counter()
        outcome = "error"
        try:
            receipt = await self.inner.send(event)
            outcome = "delivered"
            return receipt
        except SinkUnavailable:
            outcome = "unavailable"
            raise
        except SinkRejected:
            outcome = "rejected"
            raise
        except SinkDisabled:
            outcome = "disabled"
            raise
        except anyio.get_cancelled_exc_class():
            outcome = "cancelled"
            raise
        finally:
            self._metrics.delivery(self.name, outcome, time.perf_counter() - started)

    async def aclose(self) -> None:
        """Close the wrapped sink."""
        await self.inner.aclose()
