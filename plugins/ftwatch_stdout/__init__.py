"""ftwatch's stdout sink: events on the terminal, or as JSON Lines for a pipe.

Registered under the entry-point group ``ftwatch.sinks`` as ``stdout``::

    [[sinks]]
    name = "console"
    type = "stdout"
    json = false        # unset: JSON Lines unless the stream is a terminal
    stream = "stderr"   # or "stdout" (the default)

It imports only ``watcher``'s public modules, as a third-party plugin would.
"""

from __future__ import annotations

from ._format import format_line
from ._sink import StdoutConfig, StdoutSink

__all__ = ["StdoutConfig", "StdoutSink", "format_line"]
