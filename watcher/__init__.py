"""ftwatch: watch fine-tuning jobs, diff them into typed events, deliver them durably.

The public API, restated here and asserted by ``tests/test_exports.py``::

    import anyio

    from watcher import JobFailed, JobSucceeded, Watcher


    async def main() -> None:
        async with Watcher.from_config("ftwatch.toml") as watcher:
            async for event in watcher.events(JobFailed, JobSucceeded):
                print(event.type, event.job.id)


    anyio.run(main)

The library sets up no logging of its own: its log events are records of the standard
``logging`` module (loggers ``watcher.*``), for the host program to show or not.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .alerts import Alert, AlertingConfig, AlertKey
    from .app import Watcher
    from .client import APIClient, Page
    from .clock import Clock, ManualClock, ScaledClock, SystemClock
    from .config import (
        Config,
        LoggingConfig,
        ServerConfig,
        SourceConfig,
        StateConfig,
        load_config,
        parse_config,
    )
    from .diff import JobState, diff
    from .durations import Duration, parse_duration
    from .errors import (
        APIError,
        AuthenticationError,
        ConfigError,
        InvalidJobId,
        MalformedResponse,
        NotFoundError,
        PluginError,
        RateLimited,
        ServerError,
        SinkDisabled,
        SinkError,
        SinkRejected,
        SinkUnavailable,
        StoreError,
        WatcherError,
    )
    from .events import (
        EVENT_TYPES,
        BaseEvent,
        Event,
        JobCancelled,
        JobCheckpointCreated,
        JobCreated,
        JobEtaChanged,
        JobFailed,
        JobMessage,
        JobProgress,
        JobStalled,
        JobStatusChanged,
        JobSucceeded,
        JobUnstalled,
        event_from_envelope,
        event_id,
    )
    from .models import TERMINAL_STATUSES, FineTuningJob, Hyperparameters, JobError, JobMethod
    from .retry import parse_retry_after, retry_delay
    from .sinks import (
        ENTRY_POINT_GROUP,
        BackgroundSink,
        RetryPolicy,
        Sink,
        SinkBase,
        SinkConfig,
        SinkContext,
        SinkPlugin,
        available_sinks,
        register_sink,
        sink_plugin,
        unregister_sink,
    )
    from .subscribers import SubscriberOverflow, Subscription
    from .version import __version__

#: Where each exported name lives. Names are imported on first use, so that ``import watcher``
#: (and ``ftwatch --version``, which imports it) does not pay for httpx, pydantic and SQLite.
_WHERE: dict[str, str] = {
    "__version__": "version",
    "Watcher": "app",
    "Alert": "alerts",
    "AlertKey": "alerts",
    "AlertingConfig": "alerts",
    "APIClient": "client",
    "Page": "client",
    "Clock": "clock",
    "ManualClock": "clock",
    "ScaledClock": "clock",
    "SystemClock": "clock",
    "Config": "config",
    "LoggingConfig": "config",
    "ServerConfig": "config",
    "SourceConfig": "config",
    "StateConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "JobState": "diff",
    "diff": "diff",
    "Duration": "durations",
    "parse_duration": "durations",
    "APIError": "errors",
    "AuthenticationError": "errors",
    "ConfigError": "errors",
    "InvalidJobId": "errors",
    "MalformedResponse": "errors",
    "NotFoundError": "errors",
    "PluginError": "errors",
    "RateLimited": "errors",
    "ServerError": "errors",
    "SinkDisabled": "errors",
    "SinkError": "errors",
    "SinkRejected": "errors",
    "SinkUnavailable": "errors",
    "StoreError": "errors",
    "WatcherError": "errors",
    "EVENT_TYPES": "events",
    "BaseEvent": "events",
    "Event": "events",
    "JobCancelled": "events",
    "JobCheckpointCreated": "events",
    "JobEtaChanged": "events",
    "JobMessage": "events",
    "JobProgress": "events",
    "JobStalled": "events",
    "JobUnstalled": "events",
    "JobCreated": "events",
    "JobFailed": "events",
    "JobStatusChanged": "events",
    "JobSucceeded": "events",
    "event_from_envelope": "events",
    "event_id": "events",
    "TERMINAL_STATUSES": "models",
    "FineTuningJob": "models",
    "Hyperparameters": "models",
    "JobError": "models",
    "JobMethod": "models",
    "parse_retry_after": "retry",
    "retry_delay": "retry",
    "ENTRY_POINT_GROUP": "sinks",
    "BackgroundSink": "sinks",
    "SinkContext": "sinks",
    "RetryPolicy": "sinks",
    "Sink": "sinks",
    "SinkBase": "sinks",
    "SinkConfig": "sinks",
    "SinkPlugin": "sinks",
    "available_sinks": "sinks",
    "register_sink": "sinks",
    "sink_plugin": "sinks",
    "unregister_sink": "sinks",
    "SubscriberOverflow": "subscribers",
    "Subscription": "subscribers",
}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module the first time it is asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'watcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package module; importing ``watcher.diff`` must not hide the function ``diff``.

    Importing a submodule sets it as an attribute of its package; an exported name that is also
    a submodule's name (``diff``) would then read as the module. The export wins, as it did when
    the names were imported eagerly.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _WHERE.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "APIClient",
    "APIError",
    "Alert",
    "AlertKey",
    "AlertingConfig",
    "AuthenticationError",
    "BackgroundSink",
    "BaseEvent",
    "Clock",
    "Config",
    "ConfigError",
    "Duration",
    "ENTRY_POINT_GROUP",
    "EVENT_TYPES",
    "Event",
    "FineTuningJob",
    "Hyperparameters",
    "InvalidJobId",
    "JobCancelled",
    "JobCheckpointCreated",
    "JobCreated",
    "JobError",
    "JobEtaChanged",
    "JobFailed",
    "JobMessage",
    "JobMethod",
    "JobProgress",
    "JobStalled",
    "JobState",
    "JobStatusChanged",
    "JobSucceeded",
    "JobUnstalled",
    "LoggingConfig",
    "MalformedResponse",
    "ManualClock",
    "NotFoundError",
    "Page",
    "PluginError",
    "RateLimited",
    "RetryPolicy",
    "ScaledClock",
    "ServerConfig",
    "ServerError",
    "Sink",
    "SinkBase",
    "SinkConfig",
    "SinkContext",
    "SinkDisabled",
    "SinkError",
    "SinkPlugin",
    "SinkRejected",
    "SinkUnavailable",
    "SourceConfig",
    "StateConfig",
    "StoreError",
    "SubscriberOverflow",
    "Subscription",
    "SystemClock",
    "TERMINAL_STATUSES",
    "Watcher",
    "WatcherError",
    "__version__",
    "available_sinks",
    "diff",
    "event_from_envelope",
    "event_id",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_retry_after",
    "register_sink",
    "retry_delay",
    "sink_plugin",
    "unregister_sink",
]
