"""ftwatch's Microsoft Teams sink: each event as an Adaptive Card, through a Workflows webhook.

Registered under the entry-point group ``ftwatch.sinks`` as ``teams``::

    [[sinks]]
    name = "ml-team"
    type = "teams"
    url = "https://prod-00.westus.logic.azure.com/workflows/.../invoke?api-version=...&sig=..."
    events = ["fine_tuning.job.failed", "fine_tuning.job.stalled"]

The old Office 365 connectors ("incoming webhooks") are retired: the URL comes from a channel's
Workflows ("Post to a channel when a webhook request is received"). It imports only
``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._card import (
    CARD_CONTENT_TYPE,
    CARD_VERSION,
    MESSAGE_MAX_BYTES,
    build_message,
    encode_message,
    neutralise,
)
from ._config import TeamsConfig
from ._sink import TeamsSink

__all__ = [
    "CARD_CONTENT_TYPE",
    "CARD_VERSION",
    "MESSAGE_MAX_BYTES",
    "TeamsConfig",
    "TeamsSink",
    "build_message",
    "encode_message",
    "neutralise",
]
