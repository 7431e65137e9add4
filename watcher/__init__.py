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

from importlib.metadata import PackageNotFoundError, version

from .app import Watcher
from .client import APIClient, Page
from .clock import Clock, ManualClock, ScaledClock, SystemClock
from .config import Config, LoggingConfig, SourceConfig, StateConfig, load_config, parse_config
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
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
    event_from_envelope,
    event_id,
)
from .models import TERMINAL_STATUSES, FineTuningJob, Hyperparameters, JobError, JobMethod
from .retry import parse_retry_after, retry_delay
from .sinks import (
    ENTRY_POINT_GROUP,
    RetryPolicy,
    Sink,
    SinkBase,
    SinkConfig,
    SinkPlugin,
    available_sinks,
    register_sink,
    sink_plugin,
    unregister_sink,
)
from .subscribers import SubscriberOverflow, Subscription

try:
    __version__ = version("ftwatch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "APIClient",
    "APIError",
    "AuthenticationError",
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
    "JobCreated",
    "JobError",
    "JobFailed",
    "JobMethod",
    "JobState",
    "JobStatusChanged",
    "JobSucceeded",
    "LoggingConfig",
    "MalformedResponse",
    "ManualClock",
    "NotFoundError",
    "Page",
    "PluginError",
    "RateLimited",
    "RetryPolicy",
    "ScaledClock",
    "ServerError",
    "Sink",
    "SinkBase",
    "SinkConfig",
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
