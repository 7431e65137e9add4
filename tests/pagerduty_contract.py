"""PagerDuty's Events API v2 contract, as a checker, and a PagerDuty-like receiver that uses it.

Written from PagerDuty's published documentation (it cannot be downloaded here):

- https://developer.pagerduty.com/docs/events-api-v2/overview/
- https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
- https://developer.pagerduty.com/docs/events-api-v2/resolve-events/
- https://developer.pagerduty.com/docs/events-api-v2/send-change-events/

Alert events (``POST /v2/enqueue``): ``routing_key`` (32 characters) and ``event_action``
(``trigger``, ``acknowledge`` or ``resolve``) are required; ``dedup_key`` is at most 255
characters and required to acknowledge or resolve; a trigger needs ``payload`` with ``summary``
(at most 1024 characters), ``source`` and ``severity`` (``critical``, ``error``, ``warning``
or ``info``), and may add ``timestamp`` (ISO 8601), ``component``, ``group``, ``class`` and
``custom_details`` (an object); ``images`` and ``links`` are lists of objects with ``src`` /
``href``; ``client`` and ``client_url`` are strings. Change events (``POST
/v2/change/enqueue``): ``routing_key`` and ``payload.summary`` (at most 1024) are required;
``payload.source``, ``payload.timestamp``, ``payload.custom_details`` and ``links`` optional.

PagerDuty answers ``202 {"status": "success", "message": "Event processed", "dedup_key": ...}``
and, for a body it refuses, ``400 {"status": "invalid event", "message": "Event object is
invalid", "errors": [...]}``. The checker is stricter than PagerDuty in one way: a key the
documentation does not list is an error, so that a misspelt field is caught.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
ROUTING_KEY_LENGTH = 32
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")

_ALERT_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
_TRIGGER_PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}
_CHANGE_KEYS = {"routing_key", "payload", "links"}
_CHANGE_PAYLOAD_KEYS = {"summary", "source", "timestamp", "custom_details"}


def _is_iso8601(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _check_string(
    errors: list[str], where: str, value: object, *, limit: int | None = None
) -> None:
    if not isinstance(value, str) or not value:
        errors.append(f"'{where}' must be a non-empty string")
    elif limit is not None and len(value) > limit:
        errors.append(f"'{where}' must be at most {limit} characters")


def _check_links(errors: list[str], body: dict[str, Any]) -> None:
    links = body.get("links", [])
    if not isinstance(links, list):
        errors.append("'links' must be an array")
        return
    for i, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append(f"'links[{i}].href' is missing or not a string")
        elif set(link) - {"href", "text"}:
            errors.append(f"'links[{i}]' has unknown keys {sorted(set(link) - {'href', 'text'})}")


def _check_common(errors: list[str], body: dict[str, Any], known: set[str]) -> None:
    if set(body) - known:
        errors.append(f"unknown keys {sorted(set(body) - known)}")
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"'routing_key' must be a string of {ROUTING_KEY_LENGTH} characters")
    _check_links(errors, body)


def _check_payload_extras(errors: list[str], payload: dict[str, Any]) -> None:
    if "timestamp" in payload and not _is_iso8601(payload["timestamp"]):
        errors.append("'payload.timestamp' must be an ISO 8601 date and time with a zone")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")


def alert_event_errors(body: Any) -> list[str]:
    """What PagerDuty would say is wrong with a ``/v2/enqueue`` body; empty when it is valid."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    _check_common(errors, body, _ALERT_KEYS)
    action = body.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}")
    if "dedup_key" in body:
        _check_string(errors, "dedup_key", body["dedup_key"], limit=DEDUP_KEY_MAX)
    elif action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required to {action}")
    for name in ("client", "client_url"):
        if name in body:
            _check_string(errors, name, body[name])
    payload = body.get("payload")
    if action != "trigger":
        return errors
    if not isinstance(payload, dict):
        return [*errors, "'payload' is missing or not an object"]
    if set(payload) - _TRIGGER_PAYLOAD_KEYS:
        errors.append(f"unknown payload keys {sorted(set(payload) - _TRIGGER_PAYLOAD_KEYS)}")
    _check_string(errors, "payload.summary", payload.get("summary"), limit=SUMMARY_MAX)
    _check_string(errors, "payload.source", payload.get("source"))
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    for name in ("component", "group", "class"):
        if name in payload:
            _check_string(errors, f"payload.{name}", payload[name])
    _check_payload_extras(errors, payload)
    return errors


def change_event_errors(body: Any) -> list[str]:
    """What PagerDuty would say is wrong with a ``/v2/change/enqueue`` body; empty when valid."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    _check_common(errors, body, _CHANGE_KEYS)
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return [*errors, "'payload' is missing or not an object"]
    if set(payload) - _CHANGE_PAYLOAD_KEYS:
        errors.append(f"unknown payload keys {sorted(set(payload) - _CHANGE_PAYLOAD_KEYS)}")
    _check_string(errors, "payload.summary", payload.get("summary"), limit=SUMMARY_MAX)
    if "source" in payload:
        _check_string(errors, "payload.source", payload["source"])
    _check_payload_extras(errors, payload)
    return errors


# ---------------------------------------------------------------------------------------------
# A PagerDuty-like receiver

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class PagerDutyLike:
    """An ASGI app that checks every event against the contract and keeps PagerDuty's state.

    ``incidents`` maps a ``dedup_key`` to whether its incident is open; ``opened`` counts the
    incidents ever opened (a trigger for an open key updates it instead); ``changes`` keeps the
    change events. A test queues its own answers in ``script``: ``(status, headers, body)``.
    """

    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    incidents: dict[str, bool] = field(default_factory=dict)
    opened: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        """Forget everything: a fresh PagerDuty for the next test."""
        self.received.clear()
        self.script.clear()
        self.incidents.clear()
        self.opened = 0
        self.changes.clear()

    def accepted(self, path: str = "/v2/enqueue") -> list[dict[str, Any]]:
        """The bodies PagerDuty took at ``path``, in order."""
        return [r.body for r in self.received if r.path == path and r.status == 202]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the event, update the incidents, answer like PagerDuty."""
        assert scope["type"] == "http"
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body: Any = json.loads(b"".join(chunks))
        except ValueError:
            body = None
        if self.script:
            status, extra, answer = self.script.pop(0)
        else:
            status, extra, answer = self._answer(scope["method"], scope["path"], headers, body)
        self.received.append(Received(scope["path"], headers, body, status))
        extra = {"Content-Type": "application/json", **extra}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in extra.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or path not in ("/v2/enqueue", "/v2/change/enqueue"):
            return 404, {}, b'{"status": "not found"}'
        if not headers.get("content-type", "").startswith("application/json"):
            return _invalid(["Content-Type must be application/json"])
        if path == "/v2/change/enqueue":
            errors = change_event_errors(body)
            if errors:
                return _invalid(errors)
            self.changes.append(body)
            return 202, {}, b'{"status": "success", "message": "Change event processed"}'
        errors = alert_event_errors(body)
        if errors:
            return _invalid(errors)
        # Without a dedup_key PagerDuty makes one up: the event opens an incident of its own.
        key = body.get("dedup_key") or f"generated-{len(self.received)}"
        if body["event_action"] == "trigger":
            if not self.incidents.get(key):
                self.opened += 1
            self.incidents[key] = True
        elif body["event_action"] == "resolve" and key in self.incidents:
            self.incidents[key] = False
        answer = {"status": "success", "message": "Event processed", "dedup_key": key}
        return 202, {}, json.dumps(answer).encode()


def _invalid(errors: list[str]) -> tuple[int, dict[str, str], bytes]:
    answer = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    return 400, {}, json.dumps(answer).encode()
