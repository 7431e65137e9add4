"""``Watcher``: wires sources, the store, the dispatcher and subscribers; the public async API.

::

    async with Watcher.from_config("ftwatch.toml") as watcher:
        async for event in watcher.events(JobFailed, JobSucceeded):
            print(event.type, event.job.id)

The flow goes one way: each source's poller diffs snapshots into events and journals them; the
journal feeds one delivery worker per sink; after the journal commit, subscribers get the same
events from memory.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import structlog

from .client import APIClient
from .clock import Clock, SystemClock
from .config import Config, SourceConfig, StateConfig, load_config
from .dispatch import SinkWorker
from .events import BaseEvent
from .http import AsyncBaseTransport, AsyncHTTPTransport
from .logs import register_secret
from .metrics import Metrics, ObservedSink, ObservedTransport
from .operations import OperationsApp, Reply, Route, json_reply, standard_routes
from .poller import SourcePoller
from .serving import serve_asgi
from .sinks import (
    BackgroundSink,
    Sink,
    SinkConfig,
    SinkContext,
    register_sink_secrets,
    sink_plugin,
    sink_state_dir,
)
from .status import gather_status
from .store import StateStore, Store
from .store.lock import exclusive
from .subscribers import Overflow, Subscription, type_patterns

__all__ = ["Watcher", "client_for"]


def client_for(
    source: SourceConfig,
    *,
    transport: AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> APIClient:
    """The API client a configured source talks through."""
    return APIClient(
        base_url=source.base_url,
        api_key=source.api_key,
        organization=source.organization,
        project=source.project,
        source=source.name,
        timeout=source.timeout,
        max_attempts=source.max_attempts,
        max_response_bytes=source.max_response_bytes,
        transport=transport,
        sleep=sleep,
    )


log = structlog.get_logger(__name__)

E = TypeVar("E", bound=BaseEvent)
Handler = Callable[[Any], Awaitable[None]]

_PRUNE_EVERY = 3600.0


class Watcher:
    """Watches fine-tuning jobs on every configured source and delivers their events.

    Build it from a file with :meth:`from_config`, or from objects::

        Watcher(sources=[SourceConfig(name="openai", api_key=...)],
                sinks=[LogfileConfig(name="audit", type="logfile", path="events.jsonl")],
                state_path="ftwatch.db")

    ``sinks`` takes sink configs (built through the plugin registry) or ready sink objects that
    have a ``name`` (a :class:`~watcher.sinks.SinkBase` keeps its own routing config).

    Entering the context opens the store and starts polling and delivery in the background
    (``autostart=False`` starts nothing, for tests that drive cycles with :meth:`poll_once` and
    :meth:`flush`).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        sources: Sequence[SourceConfig] = (),
        sinks: Sequence[SinkConfig | Sink] = (),
        state_path: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        transport: AsyncBaseTransport | Mapping[str, AsyncBaseTransport] | None = None,
        autostart: bool = True,
        seed: int | None = None,
    ) -> None:
        extra_sinks = [s for s in sinks if not isinstance(s, SinkConfig)]
        sink_configs = [s for s in sinks if isinstance(s, SinkConfig)]
        if config is None:
            state = StateConfig() if state_path is None else StateConfig(path=Path(state_path))
            config = Config(state=state, sources=list(sources), sinks=sink_configs)
        else:
            if sources or sink_configs:
                config = config.model_copy(
                    update={
                        "sources": [*config.sources, *sources],
                        "sinks": [*config.sinks, *sink_configs],
                    }
                )
            if state_path is not None:
                config = config.model_copy(
                    update={"state": config.state.model_copy(update={"path": Path(state_path)})}
                )
        self.config = config
        self.clock = clock or SystemClock()
        self._transport = transport
        self._extra_sinks = extra_sinks
        self._background_sinks: dict[str, BackgroundSink] = {}
        self._autostart = autostart
        self._rng = random.Random(seed)
        self._subscribers: list[Subscription] = []
        self._handlers: list[tuple[Handler, Subscription]] = []
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._stopped = anyio.Event()
        self.store: StateStore | None = None
        self.pollers: dict[str, SourcePoller] = {}
        self.workers: dict[str, SinkWorker] = {}
        #: With ``[server] listen`` set: the metrics, the endpoint's routes (path -> route;
        #: add one before or after entering) and the endpoint's URL once it is served.
        self.metrics: Metrics | None = None
        self.routes: dict[str, Route] = {}
        self.ops_url: str | None = None

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **kwargs: Any) -> Watcher:
        """Build a watcher from a TOML file (see ``config.example.toml``)."""
        return cls(load_config(path), **kwargs)

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._start(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop polling and delivery and release everything. What was not delivered stays queued."""
        self._stopped.set()
        for sub in list(self._subscribers):
            sub.close()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _start(self, stack: AsyncExitStack) -> None:
        for source in self.config.sources:
            register_secret(source.api_key)
        for sink_config in self.config.sinks:
            register_sink_secrets(sink_config)
        # Sinks are built before the state file is touched: a plugin whose constructor raises
        # (a PluginError naming the sink, from build()) leaves no empty state file behind.
        built: list[tuple[Sink, SinkConfig]] = []
        for sink_config in self.config.sinks:
            sink = sink_plugin(sink_config.type).build(sink_config)
            stack.push_async_callback(sink.aclose)
            built.append((sink, sink_config))
        stack.enter_context(exclusive(Path(self.config.state.path)))
        self.store = store = await Store.open(self.config.state.path)
        stack.push_async_callback(store.aclose)
        address = self.config.server.address
        if address is not None:
            self.metrics = Metrics(self.clock.now)

        for sink, sink_config in built:
            self._add_worker(sink, sink_config)
            if isinstance(sink, BackgroundSink):
                self._background_sinks[sink_config.name] = sink
        for sink in self._extra_sinks:
            own = getattr(sink, "config", None)
            if isinstance(own, SinkConfig):
                sink_config = own
            else:
                name = getattr(sink, "name", None)
                if not isinstance(name, str):
                    raise TypeError(f"sink {sink!r} needs a `name` attribute or a SinkConfig")
                sink_config = SinkConfig(name=name, type=type(sink).__name__)
            stack.push_async_callback(sink.aclose)
            self._add_worker(sink, sink_config)
            if isinstance(sink, BackgroundSink):
                self._background_sinks[sink_config.name] = sink
        # New sinks start at the end of the journal; sinks no longer configured are retired.
        for retired in await store.set_sinks(list(self.workers), now=self.clock.now()):
            log.warning("sink_retired", sink=retired.name, queued=retired.queued, dead=retired.dead)

        for source in self.config.sources:
            # Retry waits run on the watcher's clock, so tests drive them like the rest.
            client = client_for(
                source, transport=self._observed(source.name), sleep=self.clock.sleep
            )
            stack.push_async_callback(client.aclose)
            poller = SourcePoller(
                source,
                client,
                store,
                publish=self._publish,
                clock=self.clock,
                rng=random.Random(self._rng.random()),
                max_baseline_pages=source.max_baseline_pages,
                on_cycle=None if self.metrics is None else self.metrics.cycle_done,
            )
            await poller.load()
            self.pollers[source.name] = poller

        tg = anyio.create_task_group()
        await stack.enter_async_context(tg)
        self._tg = tg
        # Cancel the background tasks before anything else on the stack closes.
        stack.callback(tg.cancel_scope.cancel)
        for handler, sub in self._handlers:
            tg.start_soon(self._run_handler, handler, sub)
        if address is not None:
            await self._serve(stack, address)
        if self._autostart:
            self.start_background()

    async def _serve(self, stack: AsyncExitStack, address: tuple[str, int]) -> None:
        """Serve the operations endpoint on this loop; it closes before the store does."""
        assert self.metrics is not None
        routes = standard_routes(
            metrics=self.metrics,
            pollers=self.pollers,
            workers=self.workers,
            store=self._require_store(),
            clock=self.clock,
        )
        routes["/jobs"] = self._jobs_route
        self.routes = {**routes, **self.routes}
        host, port = address
        self.ops_url = await stack.enter_async_context(
            serve_asgi(OperationsApp(self.routes), host, port)
        )
        log.info("operations_endpoint_listening", url=self.ops_url)

    async def _jobs_route(self) -> Reply:
        """``/jobs``: what ``ftwatch status --json`` prints, read from this daemon's store."""
        status = await gather_status(
            self._require_store(), path=str(self.config.state.path), now=self.clock.now()
        )
        return json_reply(status.model_dump(mode="json"))

    def start_background(self) -> None:
        """Start polling and delivery loops (done on entry unless ``autostart=False``)."""
        assert self._tg is not None, "enter the Watcher first"
        for poller in self.pollers.values():
            self._tg.start_soon(self._run_poller, poller)
        for worker in self.workers.values():
            self._tg.start_soon(worker.run)
        for name, sink in self._background_sinks.items():
            self._tg.start_soon(self._run_sink_background, name, sink)
        self._tg.start_soon(self._prune_loop)

    def _observed(self, source: str) -> AsyncBaseTransport | None:
        """The source's transport, counted and timed when there are metrics."""
        transport = self._transport_for(source)
        if self.metrics is None:
            return transport
        return ObservedTransport(transport or AsyncHTTPTransport(), source, self.metrics)

    def _transport_for(self, source: str) -> AsyncBaseTransport | None:
        if self._transport is None or isinstance(self._transport, AsyncBaseTransport):
            return self._transport
        return self._transport.get(source)

    def _add_worker(self, sink: Sink, config: SinkConfig) -> None:
        if config.name in self.workers:
            raise ValueError(f"two sinks are named {config.name!r}; give each a unique name")
        if self.metrics is not None:
            sink = ObservedSink(sink, config.name, self.metrics)
        self.workers[config.name] = SinkWorker(
            sink,
            config,
            self._require_store(),
            clock=self.clock,
            rng=random.Random(self._rng.random()),
        )

    def _require_store(self) -> StateStore:
        assert self.store is not None, "enter the Watcher first"
        return self.store

    async def _run_poller(self, poller: SourcePoller) -> None:
        await poller.run()
        if self.pollers and all(p.failed for p in self.pollers.values()):
            log.error("all_sources_failed", sources=list(self.pollers))
            self._stopped.set()

    async def _run_sink_background(self, name: str, sink: BackgroundSink) -> None:
        """Run a sink's own background work; its failure is logged, deliveries go on."""
        context = SinkContext(
            state_dir=sink_state_dir(Path(self.config.state.path), name),
            now=self.clock.now,
            sleep=self.clock.sleep,
        )
        try:
            await sink.run(context)
        except Exception:
            log.exception("sink_background_failed", sink=name)

    async def _prune_loop(self) -> None:
        store = self._require_store()
        while True:
            try:
                removed = await store.prune(
                    older_than=self.clock.now() - self.config.state.retention
                )
                if removed:
                    log.info("journal_pruned", entries=removed)
            except Exception:
                log.exception("prune_failed")
            await self.clock.sleep(_PRUNE_EVERY)

    # -- the flow out -------------------------------------------------------------------------

    async def _publish(self, events: Sequence[BaseEvent]) -> None:
        for worker in self.workers.values():
            worker.wake()
        for sub in list(self._subscribers):
            dropped = sub.dropped
            for event in events:
                sub.offer(event)
            if self.metrics is not None:
                self.metrics.dropped(sub.dropped - dropped)

    def events(
        self,
        *types: type[BaseEvent] | str,
        buffer: int = 1000,
        overflow: Overflow = "drop",
    ) -> Subscription:
        """Subscribe to events of the given types (classes, wire names or globs; none: all).

        Iterate the result with ``async for``. Its buffer holds ``buffer`` events; when full,
        ``overflow="drop"`` drops new events for this subscriber (counted in ``.dropped``) and
        ``overflow="error"`` ends the iteration with :class:`~watcher.SubscriberOverflow`.
        """
        sub = Subscription(type_patterns(types), buffer=buffer, overflow=overflow)
        sub._registry = self._subscribers
        self._subscribers.append(sub)
        return sub

    def on(
        self, *types: type[E] | str, buffer: int = 1000, overflow: Overflow = "drop"
    ) -> Callable[[Callable[[E], Awaitable[None]]], Callable[[E], Awaitable[None]]]:
        """Decorate an async function to be called with every event of the given types.

        Handlers run in their own task with their own buffer; an exception in a handler is
        logged and the handler keeps receiving later events.
        """

        def register(fn: Callable[[E], Awaitable[None]]) -> Callable[[E], Awaitable[None]]:
            sub = self.events(*types, buffer=buffer, overflow=overflow)
            self._handlers.append((fn, sub))
            if self._tg is not None:
                self._tg.start_soon(self._run_handler, fn, sub)
            return fn

        return register

    async def _run_handler(self, handler: Handler, sub: Subscription) -> None:
        async for event in sub:
            try:
                await handler(event)
            except Exception:
                log.exception("handler_failed", handler=getattr(handler, "__name__", "?"))

    # -- driving it by hand (tests, scripts) ---------------------------------------------------

    async def poll_once(self, source: str | None = None) -> list[BaseEvent]:
        """Run one poll cycle now on one source (or all) and return the events it journaled."""
        pollers = [self.pollers[source]] if source else list(self.pollers.values())
        events: list[BaseEvent] = []
        for poller in pollers:
            events.extend((await poller.poll_once()).events)
        return events

    async def flush(self) -> None:
        """Deliver everything that is due now to every sink (for ``autostart=False``)."""
        for worker in self.workers.values():
            await worker.flush()

    async def drained(self) -> None:
        """Wait until every sink has no delivery due now (retries scheduled later do not count)."""
        for worker in self.workers.values():
            await worker.drained()

    def stop(self) -> None:
        """Ask :meth:`wait` to return (the daemon's clean shutdown path)."""
        self._stopped.set()

    async def wait(self) -> None:
        """Run until :meth:`stop` is called or every source has failed for good."""
        await self._stopped.wait()

    @property
    def all_sources_failed(self) -> bool:
        """True when every source stopped because its credentials were refused."""
        return bool(self.pollers) and all(p.failed for p in self.pollers.values())
