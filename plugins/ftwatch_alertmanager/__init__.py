"""ftwatch's Alertmanager sink: failed and stalled jobs as alerts that fire, stay up and resolve.

Registered under the entry-point group ``ftwatch.sinks`` as ``alertmanager``::

    [[sinks]]
    name = "alertmanager"
    type = "alertmanager"
    urls = ["http://alertmanager-0:9093", "http://alertmanager-1:9093"]
    labels = { team = "ml" }

It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._config import AlertmanagerConfig
from ._payload import Held
from ._sink import AlertmanagerSink

__all__ = ["AlertmanagerConfig", "AlertmanagerSink", "Held"]
