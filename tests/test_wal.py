"""The WAL checkpointer: checkpoints beside the writes, a bounded log, a quiet failure."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs
from tests.helpers import events_for

from watcher import wal
from watcher.store import Store
from watcher.wal import CHECKPOINT_EVERY, WalCheckpointer


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL database with automatic checkpoints off, as the store configures its own."""
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)")
    yield conn
    conn.close()


def write_rows(
    conn: sqlite3.Connection, n: int, checkpointer: WalCheckpointer | None, start: int = 0
) -> None:
    """``n`` write transactions of one page-sized row each, telling the checkpointer of each."""
    for i in range(start, start + n):
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (i % 50, b"x" * 3000))
        if checkpointer is not None:
            checkpointer.wrote()


def wal_size(conn: sqlite3.Connection) -> int:
    """The WAL file's size in bytes."""
    path = Path(conn.execute("PRAGMA database_list").fetchone()[2] + "-wal")
    return path.stat().st_size


def test_without_checkpoints_the_log_grows_with_every_write(writer: sqlite3.Connection) -> None:
    """The control: with automatic checkpoints off and nobody checkpointing, the WAL only grows."""
    write_rows(writer, 600, None)
    assert wal_size(writer) > 600 * 4096


def test_checkpoints_bound_the_log_under_a_steady_stream_of_writes(
    writer: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints run every ``every`` writes, and a log past RESET_FRAMES is truncated."""
    monkeypatch.setattr(wal, "RESET_FRAMES", 64)
    path = Path(writer.execute("PRAGMA database_list").fetchone()[2])
    checkpointer = WalCheckpointer(path, every=10)
    try:
        for round_ in range(60):
            write_rows(writer, 10, checkpointer, start=round_ * 10)
            checkpointer.settle()
    finally:
        checkpointer.close()
    assert checkpointer.checkpoints == 60
    assert wal_size(writer) < 200 * 4096
    # Every row made it, whatever the checkpoints did meanwhile.
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (50,)


def test_no_thread_starts_before_a_checkpoint_is_due(tmp_path: Path) -> None:
    """A store that writes little never starts the checkpoint thread; close is then immediate."""
    checkpointer = WalCheckpointer(tmp_path / "quiet.db", every=5)
    for _ in range(4):
        checkpointer.wrote()
    checkpointer.settle()
    checkpointer.close()
    checkpointer.close()
    assert checkpointer.checkpoints == 0


def test_a_checkpointer_that_cannot_open_the_file_logs_and_stops(tmp_path: Path) -> None:
    """A failure is a warning in the log, never an exception in the writer's thread."""
    with capture_logs() as logs:
        checkpointer = WalCheckpointer(tmp_path, every=1)  # a directory: cannot be opened
        checkpointer.wrote()
        checkpointer.settle()
        checkpointer.close()
    assert [entry["event"] for entry in logs] == ["wal_checkpointer_failed"]
    assert str(tmp_path) == logs[0]["path"]


def test_every_must_be_positive(tmp_path: Path) -> None:
    """A checkpoint interval below one write is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        WalCheckpointer(tmp_path / "x.db", every=0)


async def test_the_store_copies_its_log_into_the_file_as_it_writes(tmp_path: Path) -> None:
    """After CHECKPOINT_EVERY writes the database file itself holds them, not only the WAL."""
    path = tmp_path / "state.db"
    async with await Store.open(path) as store:
        before = path.stat().st_size
        events = events_for("ftjob-1", ["queued", "running", "succeeded"])
        seqs = await store.commit("test", states={}, events=events, now=1.0)
        for i in range(CHECKPOINT_EVERY):
            await store.ack("hook", [seqs[i % len(seqs)]], cursor=0, now=float(i))
        await anyio.to_thread.run_sync(store._checkpointer.settle)
        assert path.stat().st_size > before
        row = await store._run("read", lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone())
    assert row == (0,)
