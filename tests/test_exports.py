"""The public surface of ``watcher`` is reviewed: it changes only on purpose."""

from __future__ import annotations

import watcher

EXPECTED = [
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


def test_all_is_the_reviewed_list() -> None:
    """``watcher.__all__`` is exactly the reviewed list, sorted."""
    assert watcher.__all__ == EXPECTED
    assert watcher.__all__ == sorted(watcher.__all__)


def test_every_exported_name_exists_and_is_documented() -> None:
    """Every exported name resolves, and every exported class or function has a docstring."""
    for name in watcher.__all__:
        obj = getattr(watcher, name)
        if callable(obj) and getattr(obj, "__module__", "").startswith("watcher"):
            assert obj.__doc__, f"watcher.{name} has no docstring"
