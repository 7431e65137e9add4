"""The ftwatch webhook sink: POST every event, signed the way OpenAI signs its own webhooks.

Registered under the entry-point group ``ftwatch.sinks`` as ``webhook``, through the same door
as any third-party plugin; it uses only ``watcher``'s public modules. A config section::

    [[sinks]]
    name = "hooks"
    type = "webhook"
    url = "https://hooks.example.com/ftwatch"
    secret = "whsec_..."                # optional: sign with Standard Webhooks
    headers = { Authorization = "Bearer ..." }
    timeout = "10s"

A receiver verifies deliveries with OpenAI's SDK
(``OpenAI(webhook_secret=...).webhooks.unwrap(body, headers)``) or with ``standardwebhooks``.
"""

from __future__ import annotations

from ._config import RESERVED_HEADERS, WebhookConfig, redact_url
from ._sink import USER_AGENT, WebhookSink

__all__ = [
    "RESERVED_HEADERS",
    "USER_AGENT",
    "WebhookConfig",
    "WebhookSink",
    "redact_url",
]
