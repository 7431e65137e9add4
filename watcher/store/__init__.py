"""Durable state: the last snapshot of every job, the event journal, each sink's deliveries.

:class:`StateStore` is what the poller, the dispatcher, the watcher and the CLI use;
:class:`SQLiteStore` (also importable as ``Store``) keeps it all in one SQLite file:

- **snapshots**: per ``(source, job_id)`` the last job JSON, its status, whether it is terminal,
  and the :class:`~watcher.diff.JobState` counts and times; plus, per source, whether its
  silent first baseline is done and where its catch-up reads resume;
- **the journal**: every event ever emitted, ``seq``-numbered, with the exact envelope JSON the
  sinks send; an event id is stored once, which is how the duplicates seen again after a
  restart are absorbed;
- **delivery state**: per sink a cursor in the journal, plus rows only for deliveries waiting
  for a retry and dead letters (see :mod:`watcher.store.protocol`).

The modules: :mod:`.protocol` (the interface and its records), :mod:`.schema` (migrations and
opening the file), :mod:`.journal` (cycles, snapshots, pruning), :mod:`.states` (the
jobs' lean states read back, one snapshot on demand), :mod:`.deliveries` (cursors, retries,
dead letters), :mod:`.overview` (what ``ftwatch status`` reads), :mod:`.sqlite` (the class)
and :mod:`.lock` (one daemon per file).
"""

from __future__ import annotations

from .protocol import (
    ActiveJobRow,
    DeadLetter,
    Delivery,
    Overview,
    RetiredSink,
    SinkOverview,
    SourceOverview,
    StateStore,
    job_key,
)
from .schema import SCHEMA_VERSION
from .sqlite import SQLiteStore

#: The SQLite store under its historical name.
Store = SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "ActiveJobRow",
    "DeadLetter",
    "Delivery",
    "Overview",
    "RetiredSink",
    "SQLiteStore",
    "SinkOverview",
    "SourceOverview",
    "StateStore",
    "Store",
    "job_key",
]
