"""Events API v2 bodies for ftwatch's alerts: trigger, resolve and change events.

Each :class:`~watcher.alerts.Alert` becomes one PagerDuty event
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):

- FIRE: a ``trigger`` with ``dedup_key`` = the alert's key, so that firing again (a retry, a
  restart, a replayed event, a second replica) updates the open incident instead of opening
  another; ``payload`` carries the summary (at most 1024 characters), source, severity,
  timestamp, component (the base model), group (the ftwatch source), class (the condition) and
  ``custom_details`` (job, model, error, dashboard link); ``links`` the dashboard link.
- RESOLVE: a ``resolve`` with the same ``dedup_key`` and nothing else PagerDuty needs; one for
  an incident that was never opened is dropped by PagerDuty, harmlessly.
- NOTICE: a change event (``/v2/change/enqueue``), which opens no incident and shows on the
  service's change timeline.

A test event (``ftwatch sinks test``) is always a change event whose summary starts with
:data:`~watcher.facts.TEST_MARK`: it proves the routing key works and pages nobody.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from watcher.alerts import Action, Alert
from watcher.events import BaseEvent
from watcher.facts import dashboard_link, fit

from ._config import PagerDutyConfig

__all__ = [
    "CHANGE_PATH",
    "CLIENT",
    "DEDUP_KEY_MAX",
    "DETAIL_TEXT_MAX",
    "ENQUEUE_PATH",
    "SUMMARY_MAX",
    "change_body",
    "event_body",
]

#: PagerDuty's limits (Events API v2): ``dedup_key`` and ``payload.summary``, in characters.
DEDUP_KEY_MAX: Final = 255
SUMMARY_MAX: Final = 1024
#: Our cap on a long text in ``custom_details`` (an error message): PagerDuty takes 512 KB per
#: event, but nobody reads more than this in an incident.
DETAIL_TEXT_MAX: Final = 4000

ENQUEUE_PATH: Final = "/v2/enqueue"
CHANGE_PATH: Final = "/v2/change/enqueue"
#: What PagerDuty shows as the monitoring tool that sent the event.
CLIENT: Final = "ftwatch"


def _timestamp(seconds: float) -> str:
    """ISO 8601 with a zone, as PagerDuty parses it: ``2026-12-02T11:40:06.123Z``."""
    when = datetime.fromtimestamp(seconds, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _details(alert: Alert) -> dict[str, Any]:
    found = alert.details()
    for name in ("error", "message"):
        if isinstance(found.get(name), str):
            found[name] = fit(found[name], DETAIL_TEXT_MAX)
    found["started_at"] = _timestamp(alert.started_at)
    return found


def _links(event: BaseEvent) -> list[dict[str, str]]:
    url = dashboard_link(event)
    return [] if url is None else [{"href": url, "text": "Open the job in the dashboard"}]


def _source(event: BaseEvent, config: PagerDutyConfig) -> str:
    return config.source or event.source or CLIENT


def event_body(alert: Alert, config: PagerDutyConfig) -> dict[str, Any]:
    """The ``/v2/enqueue`` body of a FIRE (``trigger``) or RESOLVE (``resolve``) alert."""
    key = str(alert.key)
    routing_key = config.routing_key.get_secret_value()
    if alert.action is Action.RESOLVE:
        # All a resolve needs: PagerDuty finds the incident by its key.
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    if alert.action is not Action.FIRE:
        raise ValueError(f"a {alert.action.value} alert is a change event, not a trigger")
    event = alert.event
    payload: dict[str, Any] = {
        "summary": fit(alert.summary(), SUMMARY_MAX),
        "source": _source(event, config),
        "severity": alert.severity,
        "timestamp": _timestamp(event.observed_at),
        "group": event.source or CLIENT,
        "class": alert.condition.value,
        "custom_details": _details(alert),
    }
    if event.job.model:
        payload["component"] = event.job.model
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": payload,
        "client": CLIENT,
    }
    links = _links(event)
    if links:
        body["links"] = links
        body["client_url"] = links[0]["href"]
    return body


def change_body(alert: Alert, config: PagerDutyConfig) -> dict[str, Any]:
    """The ``/v2/change/enqueue`` body of a NOTICE alert: a change event, which pages nobody."""
    event = alert.event
    body: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "payload": {
            "summary": fit(alert.summary(), SUMMARY_MAX),
            "timestamp": _timestamp(event.observed_at),
            "source": _source(event, config),
            "custom_details": _details(alert),
        },
    }
    links = _links(event)
    if links:
        body["links"] = links
    return body
