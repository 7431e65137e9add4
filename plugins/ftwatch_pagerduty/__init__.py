"""ftwatch's PagerDuty sink: jobs that fail or stall as incidents, through the Events API v2.

Registered under the entry-point group ``ftwatch.sinks`` as ``pagerduty``::

    [[sinks]]
    name = "on-call"
    type = "pagerduty"
    routing_key = "${PAGERDUTY_ROUTING_KEY}"

A failed job triggers an incident keyed ``ftwatch/<source>/<job>/failed``; a stall triggers
one keyed ``.../stalled`` that the job moving again (or ending) resolves. The key is the
``dedup_key``, so a restart or a replayed event never opens a second incident. With
``notify_succeeded = true`` a succeeded job is a change event. It imports only ``watcher``'s
public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._config import DEFAULT_API_URL, PagerDutyConfig
from ._events import (
    CHANGE_PATH,
    DEDUP_KEY_MAX,
    ENQUEUE_PATH,
    SUMMARY_MAX,
    change_body,
    event_body,
)
from ._sink import USER_AGENT, PagerDutySink

__all__ = [
    "CHANGE_PATH",
    "DEDUP_KEY_MAX",
    "DEFAULT_API_URL",
    "ENQUEUE_PATH",
    "SUMMARY_MAX",
    "USER_AGENT",
    "PagerDutyConfig",
    "PagerDutySink",
    "change_body",
    "event_body",
]
