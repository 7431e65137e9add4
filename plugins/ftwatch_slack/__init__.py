"""ftwatch's Slack sink: each event as a Block Kit message, by incoming webhook or bot token.

Registered under the entry-point group ``ftwatch.sinks`` as ``slack``::

    [[sinks]]
    name = "ml-alerts"
    type = "slack"
    webhook_url = "https://hooks.slack.com/services/T000/B000/XXXX"
    events = ["fine_tuning.job.succeeded", "fine_tuning.job.failed"]

or, with a bot token, ``token = "xoxb-..."`` and ``channel = "#ml-alerts"`` instead of
``webhook_url``. It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._config import SlackConfig
from ._message import build_message, fallback_text, human_duration
from ._sink import SlackSink

__all__ = ["SlackConfig", "SlackSink", "build_message", "fallback_text", "human_duration"]
