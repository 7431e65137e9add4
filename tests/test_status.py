"""`ftwatch status` and watcher.status: what the state file says, read beside a running daemon.

Issue 10, item 2. The daemon's own run against the simulator, with `status` asked while it
holds the lock, is in tests/test_notify.py (one daemon serves both).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from rich.console import Console

from watcher.cli import main
from watcher.cli.status import render
from watcher.diff import JobState
from watcher.errors import StoreError
from watcher.models import FineTuningJob
from watcher.status import Status, read_status
from watcher.store import SQLiteStore

NOW = 1_800_000_000.0


def _state(job_id: str, status: str, since: float, **fields: object) -> JobState:
    job = FineTuningJob.model_validate(
        {"id": job_id, "status": status, "model": "gpt-4o-mini", **fields}
    )
    return JobState(job=job, since={status: since})


async def _populate(path: Path) -> None:
    """Two sources' jobs, one sink with a queue and a dead letter, one disabled sink."""
    from watcher.events import JobCreated

    async with await SQLiteStore.open(path) as store:
        await store.set_sinks(["hook", "pager"], now=NOW - 100)
        await store.commit(
            "prod",
            states={
                "ftjob-run": _state("ftjob-run", "running", NOW - 600, estimated_finish=2_000),
                "ftjob-queue": _state("ftjob-queue", "queued", NOW - 30),
                "ftjob-done": _state("ftjob-done", "succeeded", NOW - 900),
            },
            events=[],
            now=NOW - 20,
            baselined=True,
        )
        job = FineTuningJob.model_validate({"id": "ftjob-new", "status": "validating_files"})
        events = [
            JobCreated(id=f"evt_{i}", source="dev", observed_at=NOW - 50 + i, job=job)
            for i in range(2)
        ]
        seqs = await store.commit(
            "dev",
            states={"ftjob-new": _state("ftjob-new", "validating_files", NOW - 50)},
            events=events,
            now=NOW - 50,
        )
        await store.dead_letter("hook", seqs[0], attempts=3, error="HTTP 500", now=NOW - 40)
        await store.disable_sink("pager", "HTTP 410 Gone", now=NOW - 10)


async def test_the_status_of_a_state_file_names_jobs_polls_queues_and_disabled_sinks(
    tmp_path: Path,
) -> None:
    """Per source the jobs by status, the active ones with their time in status, the last
    poll; per sink the queue, its oldest entry, the dead letters and whether it is disabled."""
    path = tmp_path / "state.db"
    await _populate(path)
    status = await read_status(path, now=NOW)
    data = status.model_dump(mode="json")
    prod, dev = (next(s for s in data["sources"] if s["name"] == n) for n in ("prod", "dev"))
    assert prod["jobs"] == {"queued": 1, "running": 1, "succeeded": 1}
    assert prod["baselined"] is True and dev["baselined"] is False
    assert prod["last_poll"] == NOW - 20 and prod["seconds_since_poll"] == 20
    assert [(j["id"], j["status"], j["seconds_in_status"]) for j in prod["active"]] == [
        ("ftjob-queue", "queued", 30),
        ("ftjob-run", "running", 600),
    ]
    assert prod["active"][1]["estimated_finish"] == 2_000
    assert dev["jobs"] == {"validating_files": 1}
    hook, pager = data["sinks"]
    assert (hook["name"], hook["queue_depth"], hook["dead_letters"]) == ("hook", 1, 1)
    assert hook["oldest_pending"] == NOW - 49 and hook["disabled"] is False
    assert (pager["name"], pager["queue_depth"], pager["dead_letters"]) == ("pager", 2, 0)
    assert pager["oldest_pending_age_seconds"] == 50
    assert pager["disabled"] is True and pager["disabled_reason"] == "HTTP 410 Gone"
    assert Status.model_validate(data) == status


async def test_a_restart_enables_a_disabled_sink_again(tmp_path: Path) -> None:
    """The daemon's next start (set_sinks) clears what the last one disabled."""
    path = tmp_path / "state.db"
    await _populate(path)
    async with await SQLiteStore.open(path) as store:
        await store.set_sinks(["hook", "pager"], now=NOW)
    status = await read_status(path, now=NOW)
    assert [s.disabled for s in status.sinks] == [False, False]


async def test_reading_writes_nothing_and_needs_no_lock(tmp_path: Path) -> None:
    """A read-only store refuses writes, and reads while a writer holds the file."""
    path = tmp_path / "state.db"
    await _populate(path)
    async with await SQLiteStore.open(path) as writer:
        before = path.stat().st_mtime_ns
        async with await SQLiteStore.open_readonly(path) as reader:
            assert len((await reader.overview()).active) == 3
            with pytest.raises(StoreError):
                await reader.mark_polled("prod", now=NOW)
        await writer.mark_polled("prod", now=NOW)
    assert path.stat().st_mtime_ns >= before


async def test_a_missing_state_file_is_not_created(tmp_path: Path) -> None:
    """Asking for the status of a path with no state file says so and creates nothing."""
    with pytest.raises(StoreError, match="there is no state file at"):
        await read_status(tmp_path / "nope.db", now=NOW)
    assert not (tmp_path / "nope.db").exists()


def _config(tmp: Path, state: Path) -> Path:
    path = tmp / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{state}"

            [[sources]]
            name = "prod"
            base_url = "http://127.0.0.1:9/v1"
            """
        )
    )
    return path


def test_status_without_a_state_file_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    """No state file at the configured path: one sentence naming it, exit 2."""
    config = _config(tmp_path, tmp_path / "missing.db")
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ftwatch: error: there is no state file at {tmp_path}")
    assert "Traceback" not in result.output


def test_status_prints_json_when_not_a_terminal(tmp_path: Path) -> None:
    """Without a TTY (and with --json) the output is the JSON of watcher.status."""
    state = tmp_path / "state.db"
    anyio.run(_populate, state)
    config = _config(tmp_path, state)
    for args in ([], ["--json"]):
        result = CliRunner().invoke(main, ["status", "--config", str(config), *args])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert [s["name"] for s in data["sources"]] == ["dev", "prod"]
        assert data["state_path"] == str(state)


def test_the_tables_show_sources_active_jobs_and_sinks() -> None:
    """On a terminal: the jobs by status, the active jobs with their time in status, the sinks."""
    status = Status.model_validate(
        {
            "state_path": "/var/lib/ftwatch/state.db",
            "read_at": NOW,
            "sources": [
                {
                    "name": "prod",
                    "baselined": True,
                    "last_poll": NOW - 20,
                    "seconds_since_poll": 20,
                    "jobs": {"running": 1, "succeeded": 4},
                    "active": [{"id": "ftjob-run", "status": "running", "seconds_in_status": 3725}],
                }
            ],
            "sinks": [
                {
                    "name": "pager",
                    "queue_depth": 7,
                    "oldest_pending": NOW - 90,
                    "oldest_pending_age_seconds": 90,
                    "dead_letters": 2,
                    "disabled": True,
                    "disabled_reason": "HTTP 410 Gone",
                    "configured": True,
                }
            ],
        }
    )
    out = io.StringIO()
    render(status, Console(file=out, width=200, force_terminal=False))
    text = out.getvalue()
    assert "running 1, succeeded 4" in text and "20s ago" in text
    assert "ftjob-run" in text and "1h 02m" in text
    assert "pager" in text and "1m 30s old" in text and "disabled: HTTP 410 Gone" in text


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")
def test_status_on_a_terminal_prints_tables(tmp_path: Path) -> None:
    """With stdout on a pseudo-terminal, the real binary prints the tables, not JSON."""
    state = tmp_path / "state.db"
    anyio.run(_populate, state)
    config = _config(tmp_path, state)
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "status", "--config", str(config)],
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    text = b"".join(chunks).decode(errors="replace")
    assert "Sources" in text and "Active jobs" in text and "Sinks" in text
    assert "ftjob-run" in text and "disabled: HTTP 410 Gone" in text
    assert not text.lstrip().startswith("{")


def test_status_reads_a_state_file_named_without_a_config(tmp_path: Path) -> None:
    """--state PATH needs no config, so none of its secrets need to be set."""
    state = tmp_path / "state.db"
    anyio.run(_populate, state)
    result = CliRunner().invoke(main, ["status", "--state", str(state), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"][1]["jobs"]["running"] == 1


async def test_a_state_file_of_an_older_schema_asks_for_one_run(tmp_path: Path) -> None:
    """A file not yet migrated is not migrated by a reader: it says to run the daemon once."""
    import sqlite3

    state = tmp_path / "state.db"
    await _populate(state)
    conn = sqlite3.connect(state)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    with pytest.raises(StoreError, match=r"schema version 4 .* run `ftwatch run` once"):
        await read_status(state, now=NOW)
