"""ftwatch's logfile sink: every event as one JSON line, appended to a file that may rotate.

Registered under the entry-point group ``ftwatch.sinks`` as ``logfile``::

    [[sinks]]
    name = "audit"
    type = "logfile"
    path = "/var/log/ftwatch/events.jsonl"
    max_bytes = 10_000_000   # 0 (the default): never rotate
    backups = 5
    fsync = false
    mode = "0600"            # permission bits of a file the sink creates (octal)

Each line is exactly an event's envelope (the body a webhook sends), so
``watcher.events.event_from_envelope(line)`` reads it back. Split the file on ``\\n`` only: the
JSON keeps characters such as U+2028 unescaped, which ``str.splitlines`` would also split on.
It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._sink import LogfileConfig, LogfileSink
from ._writer import JsonLinesFile

__all__ = ["JsonLinesFile", "LogfileConfig", "LogfileSink"]
