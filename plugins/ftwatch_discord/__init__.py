"""ftwatch's Discord sink: each event as one embed, posted to a channel webhook.

Registered under the entry-point group ``ftwatch.sinks`` as ``discord``::

    [[sinks]]
    name = "ml-discord"
    type = "discord"
    url = "https://discord.com/api/webhooks/ID/TOKEN"
    events = ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]

It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._config import DiscordConfig
from ._embed import COLOURS, build_embed, build_message, embed_length
from ._sink import DiscordSink

__all__ = [
    "COLOURS",
    "DiscordConfig",
    "DiscordSink",
    "build_embed",
    "build_message",
    "embed_length",
]
