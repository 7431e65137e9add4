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
transient and logged with its traceback.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .durations import Duration
from .errors import PluginError
from .events import EVENT_TYPES, BaseEvent

__all__ = [
    "ENTRY_POINT_GROUP",
    "RetryPolicy",
    "Sink",
    "SinkBase",
    "SinkConfig",
    "SinkPlugin",
    "SinkType",
    "available_sinks",
    "register_sink",
    "sink_plugin",
    "unregister_sink",
]

#: The entry-point group sink plugins register under.
ENTRY_POINT_GROUP = "ftwatch.sinks"


class RetryPolicy(BaseModel):
    """How a sink retries a failed delivery: exponential backoff with full jitter.

    After ``max_attempts`` attempts, or once the event is older than ``max_age``, the event goes
    to the dead letters with its last error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=12, ge=1)
    max_age: Duration = 86400.0
    initial_backoff: Duration = 1.0
    max_backoff: Duration = 300.0


class SinkConfig(BaseModel):
    """The keys every ``[[sinks]]`` table has; a plugin subclasses it to add its own.

    ``events`` takes type names or globs (``fine_tuning.job.*``). The job filters (``sources``,
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
    concurrency: int = Field(default=8, ge=1, le=256)

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
        if not any(fnmatch.fnmatchcase(event.type, p) for p in self.events):
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


def _any_glob(value: str | None, patterns: Iterable[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


@runtime_checkable
class Sink(Protocol):
    """Where events go. An async resource: ``send`` each event, ``aclose`` once at the end."""

    async def send(self, event: BaseEvent) -> None:
        """Deliver one event, or raise a :class:`~watcher.errors.SinkError` saying why not."""
        ...

    async def aclose(self) -> None:
        """Release what the sink holds (connections, files)."""
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


class SinkBase:
    """A convenient base for sinks: keeps the config and makes the sink an async context manager."""

    config_model: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, config: SinkConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        """The sink's configured name."""
        return self.config.name

    async def send(self, event: BaseEvent) -> None:
        """Deliver one event; subclasses implement it."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources; the default holds none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        # Only the name and type: a sink's config holds URLs and secrets.
        return f"<{type(self).__name__} {self.config.name!r} type={self.config.type!r}>"


@dataclass(frozen=True)
class SinkPlugin:
    """A sink type found by the registry, and where it came from."""

    name: str
    factory: SinkType
    #: ``"ftwatch 0.1.0"`` for an installed distribution, ``"registered in code"`` otherwise.
    origin: str
    #: ``module:attr`` of the class.
    target: str

    @property
    def config_model(self) -> type[SinkConfig]:
        """The pydantic model of this sink's config section."""
        return self.factory.config_model


_registered: dict[str, SinkPlugin] = {}


def register_sink(name: str, factory: SinkType) -> None:
    """Register a sink type from code, without an entry point (tests, embedding applications)."""
    _check_factory(name, factory)
    target = f"{factory.__module__}:{getattr(factory, '__qualname__', repr(factory))}"
    _registered[name] = SinkPlugin(name, factory, "registered in code", target)


def unregister_sink(name: str) -> None:
    """Forget a sink type registered with :func:`register_sink`."""
    _registered.pop(name, None)


def _check_factory(name: str, factory: object) -> None:
    model = getattr(factory, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, SinkConfig)):
        raise PluginError(
            f"sink plugin {name!r} has no config_model that subclasses watcher.SinkConfig; "
            "give the sink class a `config_model` attribute"
        )


def _from_entry_point(ep: EntryPoint) -> SinkPlugin:
    try:
        factory = ep.load()
    except Exception as exc:
        raise PluginError(
            f"sink plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
            "reinstall the package that provides it"
        ) from exc
    _check_factory(ep.name, factory)
    dist = ep.dist
    origin = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return SinkPlugin(ep.name, factory, origin, ep.value)


def available_sinks() -> Mapping[str, SinkPlugin]:
    """Every sink type: those installed under ``ftwatch.sinks`` and those registered in code.

    A type registered in code wins over an installed one of the same name.
    """
    found: dict[str, SinkPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = _from_entry_point(ep)
    found.update(_registered)
    return dict(sorted(found.items()))


def sink_plugin(type_name: str) -> SinkPlugin:
    """Find one sink type by name; the error lists the known ones."""
    if type_name in _registered:
        return _registered[type_name]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_name):
        return _from_entry_point(ep)
    known = ", ".join(
        sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(_registered))
    )
    raise PluginError(f"unknown sink type {type_name!r}; known types: {known}")
