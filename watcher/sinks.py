"""Sinks: the ``Sink`` protocol, the config every sink shares, and the registry that finds sinks.

A sink is a class with a ``config_model`` (a :class:`SinkConfig` subclass holding its own keys)
whose constructor takes that config, and which implements :class:`Sink`: ``send(event)`` and
``aclose()``. It is registered under the entry-point group ``ftwatch.sinks``::

    [project.entry-points."ftwatch.sinks"]
    pagerduty = "ftwatch_pagerduty:PagerDutySink"

The built-in sinks (``plugins/ftwatch_*``) enter through exactly this door. Routing
(``events``, ``sources``, ``models``, ``suffixes``, ``metadata``) and the retry policy are
common keys that the dispatcher applies, so every plugin gets them for free.

``send`` reports the outcome by returning (delivered) or raising
:class:`~watcher.errors.SinkRejected` (permanent for this event),
:class:`~watcher.errors.SinkUnavailable` (retry later) or :class:`~watcher.errors.SinkDisabled`
(stop calling). Any other exception is treated as
transient and logged with its traceback. On success it may return a short receipt saying
what the receiver answered (``"HTTP 200"``), which ``ftwatch sinks test`` shows; the
dispatcher ignores it, and None is always fine.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import structlog
from anyio.abc import AsyncResource
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .durations import Duration
from .errors import ConfigError, PluginError, SinkUnavailable
from .events import EVENT_TYPES, OPT_IN_EVENT_TYPES, BaseEvent
from .http import (
    SINK_ANSWER_BYTES,
    Answer,
    AsyncClient,
    ClientPerRequest,
    HTTPError,
    TimeoutException,
    describe_transport_error,
    fetch,
)
from .logs import redact, register_secret

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackgroundSink",
    "RetryPolicy",
    "Sink",
    "SinkBase",
    "SinkConfig",
    "SinkContext",
    "SinkPlugin",
    "SinkType",
    "available_sinks",
    "register_sink",
    "post_delivery",
    "register_sink_secrets",
    "sink_plugin",
    "sink_state_dir",
    "unregister_sink",
]

log = structlog.get_logger(__name__)

#: The entry-point group sink plugins register under.
ENTRY_POINT_GROUP = "ftwatch.sinks"


class RetryPolicy(BaseModel):
    """How a sink retries a failed delivery: exponential backoff with full jitter.

    After ``max_attempts`` attempts, or once the event is older than ``max_age``, the event goes
    to the dead letters with its last error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=12, ge=1, strict=True)
    max_age: Duration = 86400.0
    initial_backoff: Duration = 1.0
    max_backoff: Duration = 300.0


class SinkConfig(BaseModel):
    """The keys every ``[[sinks]]`` table has; a plugin subclasses it to add its own.

    ``events`` takes type names or globs (``fine_tuning.job.*``); the opt-in types (progress,
    checkpoints, ETA changes: :data:`~watcher.events.OPT_IN_EVENT_TYPES`) only when named in
    full, so a glob never floods a sink with them. The job filters (``sources``,
    ``models``, ``suffixes``, ``metadata``) all have to match when given; an event they filter
    out counts as delivered.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: str
    events: list[str] = Field(default_factory=lambda: ["*"])
    sources: list[str] | None = None
    models: list[str] | None = None
    suffixes: list[str] | None = None
    metadata: dict[str, str] | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    #: How many jobs' events this sink delivers at once (one job's events stay in order).
    concurrency: int = Field(default=8, ge=1, le=256, strict=True)

    @field_validator("events")
    @classmethod
    def _known_event_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(t, pattern) for t in EVENT_TYPES):
                raise ValueError(
                    f"{pattern!r} matches no event type; known types: {', '.join(EVENT_TYPES)}"
                )
        return patterns

    def wants(self, event: BaseEvent) -> bool:
        """Tell whether this sink's routing keys let ``event`` through."""
        if not _routes(event.type, self.events):
            return False
        job = event.job
        if self.sources is not None and not _any_glob(event.source, self.sources):
            return False
        if self.models is not None and not _any_glob(job.model, self.models):
            return False
        if self.suffixes is not None and not _any_glob(job.user_provided_suffix, self.suffixes):
            return False
        if self.metadata:
            have = job.metadata or {}
            if any(have.get(k) != v for k, v in self.metadata.items()):
                return False
        return True


def _routes(event_type: str, patterns: Iterable[str]) -> bool:
    """Whether ``patterns`` let ``event_type`` through: opt-in types only by their full name."""
    if event_type in OPT_IN_EVENT_TYPES:
        return event_type in patterns
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def _any_glob(value: str | None, patterns: Iterable[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def register_sink_secrets(config: SinkConfig) -> None:
    """Hand every secret a sink's config holds to the log masking (promise 6).

    Secret fields (webhook secrets, Slack URLs and tokens) and lists of them (Apprise URLs),
    extra header values, and URLs (``*url`` keys, and each URL of a ``*urls`` list), which may
    carry a token in their path or query.
    """
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            register_secret(value)
        elif isinstance(value, list | tuple):
            # Lists of secrets (Apprise's URLs) and of receivers' URLs (an Alertmanager HA pair):
            # each item as secret as one alone.
            for item in value:
                if isinstance(item, SecretStr):
                    register_secret(item)
                elif name.endswith("urls"):
                    register_secret(str(item))
        elif name == "headers" and isinstance(value, dict):
            for header in value.values():
                register_secret(str(header))
        elif name.endswith("url") and isinstance(value, str):
            register_secret(value)


async def post_delivery(
    client: AsyncClient | ClientPerRequest,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    deadline: float,
    sink: str,
    peer: str = "the receiver",
) -> Answer:
    """POST one delivery for an HTTP sink and return the receiver's answer, whatever its status.

    The whole exchange (connect, send, the answer) must end within ``deadline`` seconds, and at
    most a few KiB of the answer are read. No answer at all (refused, reset, DNS, TLS, timed
    out) raises :class:`~watcher.errors.SinkUnavailable` in a few words naming ``peer`` (``"the
    receiver"``, ``"Slack"``): never the URL, which may hold a token, and without chaining
    httpx's exception, which holds the request and so the URL.
    """
    try:
        if isinstance(client, ClientPerRequest):
            return await client.post(url, content=content, headers=headers, deadline=deadline)
        return await fetch(
            client,
            "POST",
            url,
            content=content,
            headers=headers,
            deadline=deadline,
            max_bytes=SINK_ANSWER_BYTES,
            truncate=True,
        )
    except HTTPError as exc:
        failure = describe_transport_error(exc, peer)
        if isinstance(exc, TimeoutException):
            failure += f" after {deadline:g}s"
    log.debug("sink_no_answer", sink=sink, failure=failure)
    raise SinkUnavailable(failure, sink=sink)


@runtime_checkable
class Sink(Protocol):
    """Where events go. An async resource: ``send`` each event, ``aclose`` once at the end."""

    async def send(self, event: BaseEvent) -> str | None:
        """Deliver one event, or raise a :class:`~watcher.errors.SinkError` saying why not.

        May return a short receipt of what the receiver answered (``"HTTP 200"``), shown by
        ``ftwatch sinks test`` and ignored by the dispatcher; None when there is nothing to say.
        """
        ...

    async def aclose(self) -> None:
        """Release what the sink holds (connections, files)."""
        ...


@dataclass(frozen=True)
class SinkContext:
    """What the daemon lends a sink that has work of its own besides ``send``.

    Given to :meth:`BackgroundSink.run` once the daemon's state is open.
    """

    #: A directory for this sink alone, private to the user, kept across restarts: the place
    #: for what the sink must remember (the alerts it holds open, say).
    state_dir: Path
    #: Unix seconds now, on the daemon's clock (tests drive it).
    now: Callable[[], float]
    #: Wait on the daemon's clock; use it rather than anyio.sleep so that tests drive the waits.
    sleep: Callable[[float], Awaitable[None]]


def sink_state_dir(state_path: Path, sink_name: str) -> Path:
    """The directory kept for one sink beside the state file, created private if missing.

    ``ftwatch.db`` and sink ``pager`` give ``ftwatch.db.sinks/pager``; a name with characters a
    file name should not hold is spelt safely, with a digest so that two names never share one.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sink_name)
    if safe != sink_name or safe in {".", ".."}:
        safe = f"{safe}-{hashlib.sha256(sink_name.encode()).hexdigest()[:12]}"
    where = state_path.with_name(state_path.name + ".sinks") / safe
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    return where


@runtime_checkable
class BackgroundSink(Protocol):
    """A sink that also works between events (Alertmanager's keep-alive re-posts).

    The daemon runs ``run(context)`` in the background while it runs, and cancels it before
    calling ``aclose``. ``ftwatch sinks test`` does not run it: a sample needs only ``send``.
    """

    async def run(self, context: SinkContext) -> None:
        """Work until cancelled; an exception is logged and the sink's deliveries go on."""
        ...


class SinkType(Protocol):
    """What an entry point names: a class that builds a :class:`Sink` from its config."""

    # A read-only property, so that a sink class (whose attribute is a ClassVar) satisfies it.
    @property
    def config_model(self) -> type[SinkConfig]:
        """The pydantic model of the sink's config section."""
        ...

    def __call__(self, config: Any, /) -> Sink:
        """Build the sink from its validated config."""
        ...


class SinkBase(AsyncResource):
    """A convenient base for sinks: keeps the config and makes the sink an async context manager.

    It is an :class:`anyio.abc.AsyncResource`: leaving ``async with sink:`` calls :meth:`aclose`.
    """

    config_model: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.config.name

    async def send(self, event: BaseEvent) -> str | None:
        """Deliver one event; subclasses implement it, and may return a short receipt."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources; the default holds none."""

    def __repr__(self) -> str:
        # Only the name and type: a sink's config holds URLs and secrets.
        return f"<{type(self).__name__} {self.config.name!r} type={self.config.type!r}>"


@dataclass(frozen=True)
class SinkPlugin:
    """A sink type found by the registry, and where it came from.

    A type whose entry point cannot be loaded (its package is broken or half installed) is
    still listed by :func:`available_sinks`, with ``error`` saying why; using its ``factory``
    or ``config_model`` raises :class:`~watcher.errors.PluginError` with that reason.
    """

    name: str
    factory: SinkType
    #: ``"ftwatch 0.1.0"`` for an installed distribution, ``"registered in code"`` otherwise.
    origin: str
    #: ``module:attr`` of the class.
    target: str
    #: Why the type cannot be used (``"ModuleNotFoundError: No module named 'x'"``), else None.
    error: str | None = None

    @property
    def config_model(self) -> type[SinkConfig]:
        """The pydantic model of this sink's config section."""
        return self.factory.config_model

    def build(self, config: SinkConfig) -> Sink:
        """Build a sink of this type from its validated config.

        Raises :class:`~watcher.errors.PluginError` in one sentence naming the sink, its type
        and what the constructor raised, so that a plugin's bad constructor never ends a
        command with a traceback; the traceback is logged at debug level.
        """
        try:
            return self.factory(config)
        except (ConfigError, PluginError):
            raise
        except Exception as exc:
            log.debug("sink_build_failed", sink=config.name, type=self.name, exc_info=True)
            # A plugin's message may quote its config; masked like a log line would be.
            reason = redact(_one_line(f"{type(exc).__name__}: {exc}"))
            raise PluginError(
                f"sink {config.name!r} (type {self.name!r}) could not be built: {reason}"
            ) from exc


class _Unloadable:
    """Stands in for a sink class that could not be loaded: any use raises why."""

    def __init__(self, message: str) -> None:
        #: The whole sentence: which entry point, from which distribution, why, what to do.
        self.message = message

    @property
    def config_model(self) -> type[SinkConfig]:
        """Never a model: raises PluginError saying why the type cannot be loaded."""
        raise PluginError(self.message)

    def __call__(self, config: Any, /) -> Sink:
        """Never a sink: raises PluginError saying why the type cannot be loaded."""
        raise PluginError(self.message)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_registered: dict[str, SinkPlugin] = {}


def register_sink(name: str, factory: SinkType) -> None:
    """Register a sink type from code, without an entry point (tests, embedding applications)."""
    _check_factory(name, factory)
    target = f"{factory.__module__}:{getattr(factory, '__qualname__', repr(factory))}"
    _registered[name] = SinkPlugin(name, factory, "registered in code", target)


def unregister_sink(name: str) -> None:
    """Forget a sink type registered with :func:`register_sink`."""
    _registered.pop(name, None)


def _factory_problem(factory: object) -> str | None:
    model = getattr(factory, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, SinkConfig)):
        return "it has no `config_model` attribute that subclasses watcher.SinkConfig"
    return None


def _check_factory(name: str, factory: object) -> None:
    problem = _factory_problem(factory)
    if problem is not None:
        raise PluginError(f"sink plugin {name!r} cannot be used: {problem}; give the class one")


def _from_entry_point(ep: EntryPoint) -> SinkPlugin:
    """Load one entry point; a failure is kept in the plugin's ``error`` rather than raised."""
    dist = ep.dist
    origin = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    try:
        factory = ep.load()
    except Exception as exc:
        # Exceptions of any kind: an import runs the plugin's module code.
        error = _one_line(f"{type(exc).__name__}: {exc}")
        hint = "reinstall the package that provides it"
    else:
        problem = _factory_problem(factory)
        if problem is None:
            return SinkPlugin(ep.name, factory, origin, ep.value)
        error, hint = problem, "report this to the plugin's authors"
    message = (
        f"sink plugin {ep.name!r} ({ep.value}, from {origin}) cannot be loaded: {error}; {hint}"
    )
    return SinkPlugin(ep.name, _Unloadable(message), origin, ep.value, error=error)


def available_sinks() -> Mapping[str, SinkPlugin]:
    """Every sink type: those installed under ``ftwatch.sinks`` and those registered in code.

    A type registered in code wins over an installed one of the same name. A type whose entry
    point cannot be loaded is listed too, with its ``error``: one broken package does not hide
    the others.
    """
    found: dict[str, SinkPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = _from_entry_point(ep)
    found.update(_registered)
    return dict(sorted(found.items()))


def sink_plugin(type_name: str) -> SinkPlugin:
    """Find one usable sink type by name.

    Raises :class:`~watcher.errors.PluginError` when no type has that name (listing the known
    ones) or when its entry point cannot be loaded (saying why).
    """
    if type_name in _registered:
        return _registered[type_name]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_name):
        plugin = _from_entry_point(ep)
        if isinstance(plugin.factory, _Unloadable):
            raise PluginError(plugin.factory.message)
        return plugin
    known = ", ".join(
        sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(_registered))
    )
    raise PluginError(f"unknown sink type {type_name!r}; known types: {known}")
