"""The state file's schema, its migrations, and opening it (connection settings, checks).

Each migration is a list of statements run in order, in one transaction with the bump of
``PRAGMA user_version`` to its number (its index + 1). Append new ones; never edit a shipped one.
Everything here runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import structlog

from ..errors import StoreError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "connect_readonly",
    "create_private",
    "transaction",
]

log = structlog.get_logger("watcher.store")

#: How long a call waits for another process's write lock before giving up (milliseconds).
_BUSY_TIMEOUT_MS: Final = 10_000

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE sources (
            source     TEXT PRIMARY KEY,
            baselined  INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE snapshots (
            source     TEXT NOT NULL,
            job_id     TEXT NOT NULL,
            status     TEXT NOT NULL,
            terminal   INTEGER NOT NULL,
            job        TEXT NOT NULL,
            seen       TEXT NOT NULL,
            since      TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (source, job_id)
        ) WITHOUT ROWID
        """,
        # AUTOINCREMENT: a seq is never reused, even after prune() emptied the tail, so a reader
        # that remembers "everything up to seq N" is never handed a different event as N + 1.
        """
        CREATE TABLE journal (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    TEXT NOT NULL UNIQUE,
            type        TEXT NOT NULL,
            source      TEXT NOT NULL,
            job_id      TEXT NOT NULL,
            observed_at REAL NOT NULL,
            body        TEXT NOT NULL
        )
        """,
        "CREATE INDEX journal_observed_at ON journal (observed_at)",
        """
        CREATE TABLE deliveries (
            sink             TEXT NOT NULL,
            seq              INTEGER NOT NULL REFERENCES journal (seq) ON DELETE CASCADE,
            job_key          TEXT NOT NULL,
            state            TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  REAL NOT NULL,
            first_attempt_at REAL,
            last_error       TEXT,
            updated_at       REAL NOT NULL,
            PRIMARY KEY (sink, seq)
        ) WITHOUT ROWID
        """,
        # Partial indexes stay as small as the backlog, however many done rows pile up: a
        # sink's queue in seq order, its earliest due time (dropped in version 3), and its
        # dead letters.
        "CREATE INDEX deliveries_pending ON deliveries (sink, seq) WHERE state = 'pending'",
        """
        CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at)
        WHERE state = 'pending'
        """,
        "CREATE INDEX deliveries_dead ON deliveries (sink, seq) WHERE state = 'dead'",
        # The foreign key's child lookup: without it, deleting a journal row scans deliveries.
        "CREATE INDEX deliveries_seq ON deliveries (seq)",
    ),
    (
        # Where each source's catch-up reads resume: the cursor below which the job list has
        # not been read since more new jobs appeared than one cycle may read (JSON list).
        "ALTER TABLE sources ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]'",
    ),
    (
        # Sink workers keep their retry times in memory and never ask for the earliest one;
        # the index only cost every commit, ack and retry one more b-tree write.
        "DROP INDEX deliveries_due",
    ),
    (
        # Per-sink cursors: a sink's cursor is the highest seq below which every entry is
        # delivered to it or has a row in deliveries (waiting for a retry, or dead). So the
        # poller journals events without knowing the sinks, and done rows no longer exist.
        """
        CREATE TABLE sinks (
            name     TEXT PRIMARY KEY,
            cursor   INTEGER NOT NULL,
            added_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        # Every entry meant for a sink had a row for it (the old commit wrote one per sink
        # and event), so an entry without one was never its to deliver: every cursor starts at
        # the end of the journal, and the pending and dead rows stay rows.
        """
        INSERT INTO sinks (name, cursor, added_at)
        SELECT DISTINCT sink,
            coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0),
            CAST(strftime('%s', 'now') AS REAL)
        FROM deliveries
        """,
        "DELETE FROM deliveries WHERE state = 'done'",
    ),
    (
        # For `ftwatch status`, read from the file while a daemon runs: when each source last
        # polled successfully (a cycle that changed nothing writes no snapshot), and why a
        # sink stopped (it stays stopped until the daemon restarts).
        "ALTER TABLE sources ADD COLUMN polled_at REAL",
        "ALTER TABLE sinks ADD COLUMN disabled TEXT",
    ),
    (
        # Issue 8: per running job, where its /events and /checkpoints reads stopped, the
        # stall announced and the last ETA (watcher.tracking.JobTrack as JSON).
        """
        CREATE TABLE progress (
            source     TEXT NOT NULL,
            job_id     TEXT NOT NULL,
            track      TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (source, job_id)
        ) WITHOUT ROWID
        """,
    ),
)

#: The schema version this ftwatch writes (``PRAGMA user_version``).
SCHEMA_VERSION: Final = len(MIGRATIONS)

# SQLite's primary result codes that mean "this file is not a usable database".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; IMMEDIATE takes the write lock up front, so no upgrade deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back on its own (a full disk, say).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def create_private(path: Path) -> None:
    """Create the state file (and its directory, 0700) readable by its owner only, if missing.

    SQLite gives the -wal and -shm files the mode of the database file, so they are 0600 too.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    os.close(fd)


def connect(path: Path) -> tuple[Path, sqlite3.Connection]:
    """Open, check, configure and migrate the state file (runs in a worker thread)."""
    path = path.expanduser()
    try:
        create_private(path)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the state file {path}: {exc.strerror or exc}; check state.path."
        ) from exc
    try:
        conn = sqlite3.connect(
            path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            # Transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never implicit.
            isolation_level=None,
            # Every call runs in some worker thread, one at a time (the CapacityLimiter(1)).
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the state file {path}: {exc}.") from exc
    try:
        _configure(conn, path)
        _quick_check(conn, path)
        _migrate(conn, path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_error(path, exc) from exc
        raise
    return path, conn


def connect_readonly(path: Path) -> tuple[Path, sqlite3.Connection]:
    """Open the state file for reading only, beside a running daemon (runs in a worker thread).

    Nothing is created, migrated or locked: a read in WAL mode never waits for the daemon's
    writes, nor makes them wait. A missing file, or one of another schema version, is refused.
    """
    path = path.expanduser()
    if not path.is_file():
        raise StoreError(
            f"there is no state file at {path} (the daemon creates it on its first run); check"
            " state.path in the config or $FTWATCH_STATE_PATH"
        )
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the state file {path}: {exc}.") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        version = _user_version(conn)
        _check_version(conn, path, version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"The state file {path} has schema version {version} and this ftwatch reads"
                f" {SCHEMA_VERSION}; run `ftwatch run` once to upgrade it."
            )
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _open_error(path, exc) from exc
        raise
    return path, conn


def _damaged(path: Path) -> StoreError:
    return StoreError(
        f"The state file {path} is corrupt; restore it from a backup or point state.path"
        " at another file."
    )


def _open_error(path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF  # the primary result code under any extended one
    if code == _SQLITE_NOTADB:
        return StoreError(
            f"The state file {path} is not an SQLite database; point state.path at another file."
        )
    if code == _SQLITE_CORRUPT:
        return _damaged(path)
    return StoreError(f"Cannot open the state file {path}: {exc}.")


def _quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged file at start, rather than failing every cycle later.

    ``quick_check`` reads every page once (not the indexes against their tables, which
    ``integrity_check`` would add), which is seconds at most for a state file.
    """
    rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    if rows != [("ok",)]:
        log.error("store_damaged", path=str(path), problem=str(rows[0][0]) if rows else "?")
        raise _damaged(path)


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    # Check what the file is before changing anything in it (WAL mode is written to the file):
    # a file that is not SQLite fails this first read with SQLITE_NOTADB.
    _check_version(conn, path, _user_version(conn))
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        # Some network filesystems cannot do WAL; the rollback journal is slower but as safe.
        log.warning("store_not_wal", path=str(path), journal_mode=mode)
    # WAL + synchronous=NORMAL: a commit survives the process crashing or being killed -9 (the
    # WAL is in the OS page cache before COMMIT returns), which is what we promise. Only a power
    # loss or kernel crash may lose the last commits; the file stays consistent even then.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints run on the store's own thread (watcher.wal), not inside a commit.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA foreign_keys = ON")


def _user_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _check_version(conn: sqlite3.Connection, path: Path, version: int) -> None:
    if version == 0:
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if tables:
            raise StoreError(
                f"The state file {path} is an SQLite database of another program; point"
                " state.path at another file."
            )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The state file {path} was written by a newer ftwatch (schema version {version},"
            f" this one knows up to {SCHEMA_VERSION}); upgrade ftwatch or point state.path at"
            " another file."
        )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if _user_version(conn) == SCHEMA_VERSION:
        return
    with transaction(conn):
        # Read again under the write lock: another process may have migrated meanwhile.
        version = _user_version(conn)
        _check_version(conn, path, version)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    log.info("store_migrated", path=str(path), from_version=version, to_version=SCHEMA_VERSION)
