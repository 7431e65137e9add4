"""Checkpoint the state file's write-ahead log on a thread of its own, off the commit path.

SQLite copies the WAL back into the database file (a checkpoint, with two fsyncs) inside
whichever commit pushed the WAL past 1,000 pages. That commit then takes several times longer
than the others, and the events it journals wait for it before any sink sees them: the p99 of
journal-to-delivery latency was mostly those commits. The store's connection therefore turns
automatic checkpoints off, and a :class:`WalCheckpointer` runs them on a second connection in a
thread of its own, every few hundred write transactions. Checkpoints in WAL mode neither block
nor are blocked by writers, and a checkpoint cut short (the process killed) leaves the WAL
valid: nothing journaled depends on it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final

import structlog

__all__ = ["CHECKPOINT_EVERY", "RESET_FRAMES", "WalCheckpointer"]

log = structlog.get_logger(__name__)

#: Write transactions between checkpoints. A delivery batch or a poll cycle writes a few pages,
#: so this keeps the WAL near SQLite's own 1,000-page default.
CHECKPOINT_EVERY: Final = 256

#: A WAL this long (frames of one page, 4 KiB by default) is reset even if writers must wait.
RESET_FRAMES: Final = 4096

_BUSY_TIMEOUT_S = 5.0


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after every ``every`` writes.

    :meth:`wrote` is called after each write transaction, from any thread; the checkpoint
    thread starts at the first checkpoint due, so a store that writes little never starts one.
    :meth:`close` stops it (blocking until a running checkpoint ends).
    """

    def __init__(self, path: Path, *, every: int = CHECKPOINT_EVERY) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.path = path
        self.every = every
        #: Checkpoints run so far (a failed one counts: it was tried).
        self.checkpoints = 0
        #: How often the WAL had to be truncated under a steady stream of writes.
        self.resets = 0
        self._writes = 0
        self._due = False
        self._stopping = False
        self._busy = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """Count one write transaction; wake the checkpoint thread when one is due."""
        with self._cond:
            self._writes += 1
            if self._writes < self.every or self._stopping:
                return
            self._writes = 0
            self._due = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"ftwatch-wal-{self.path.name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def settle(self) -> None:
        """Block until no checkpoint is due or running (for tests and orderly shutdowns)."""
        with self._cond:
            self._cond.wait_for(lambda: not (self._due or self._busy) or self._thread is None)

    def close(self) -> None:
        """Stop the checkpoint thread, waiting for a running checkpoint; idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            log.warning("wal_checkpointer_failed", path=str(self.path), error=str(exc))
            self._stop_waiters()
            return
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._due or self._stopping)
                    if self._stopping:
                        return
                    self._due = False
                    self._busy = True
                try:
                    self._checkpoint(conn)
                except sqlite3.Error as exc:
                    # The next write tries again; closing the store checkpoints in any case.
                    log.warning("wal_checkpoint_failed", path=str(self.path), error=str(exc))
                with self._cond:
                    self._busy = False
                    self.checkpoints += 1
                    self._cond.notify_all()
        finally:
            conn.close()
            self._stop_waiters()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        # A passive checkpoint never blocks writers, so under a steady stream of writes it never
        # finds the log fully copied, and only then can the next writer start it over: the file
        # would grow for as long as writes go on. Past a bound, wait for a gap between writes
        # (they wait for us in turn, once) and truncate it.
        if frames >= RESET_FRAMES:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self.resets += 1

    def _stop_waiters(self) -> None:
        with self._cond:
            self._due = False
            self._busy = False
            self._cond.notify_all()
