"""ftwatch's Apprise sink: each event as a notification to any of Apprise's 100+ services.

Registered under the entry-point group ``ftwatch.sinks`` as ``apprise``, and usable once the
optional library is installed (``pip install 'ftwatch[apprise]'``)::

    [[sinks]]
    name = "phone"
    type = "apprise"
    urls = ["ntfy://ntfy.sh/my-topic", "tgram://${TELEGRAM_BOT_TOKEN}/12345678"]
    events = ["fine_tuning.job.failed"]

Every URL is a secret (they carry tokens): it never appears in ``repr``, errors, ``ftwatch
check`` or logs. It imports only ``watcher``'s public modules, as a third-party plugin would,
and imports Apprise only when a sink is built, so that ftwatch runs without it.
"""

from __future__ import annotations

from ._config import AppriseConfig
from ._message import Notification, build_notification
from ._sink import AppriseSink

__all__ = ["AppriseConfig", "AppriseSink", "Notification", "build_notification"]
