"""`ftwatch watch --all`: every active job of a source, as a table or lines, until all end.

The simulator is served on a real socket; `follow_all` runs on the simulator's manual clock,
so hours of simulated time pass at once, without a sleep.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import structlog
from click.testing import CliRunner
from rich.console import Console

from watcher.cli import main
from watcher.clock import ManualClock, ScaledClock
from watcher.config import SourceConfig
from watcher.follow import FollowGaveUp
from watcher.follow_all import follow_all
from watcher.simulator import Simulator, serve_simulator

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
_STEP = re.compile(r"step (\d+)/(\d+) (\d+)%")
HOUR = 3600.0


@dataclass
class Jobs:
    """A simulator with four jobs, served on a real socket."""

    sim: Simulator
    clock: ManualClock
    url: str
    ids: dict[str, str]


@pytest.fixture
async def jobs() -> AsyncIterator[Jobs]:
    """One job trains and succeeds, one fails, one is stuck queued, one starts 10 min later.

    A fifth job ended before anything follows it: it is never shown.
    """
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    t0 = clock.now()
    ids = {
        "done": sim.create_job(
            suffix="done-before", created_at=t0 - HOUR, script=[(0, "succeeded")]
        ),
        "trains": sim.create_job(
            suffix="trains",
            script=[(0, "running"), (1800, "succeeded")],
            validation_file="file-valid",
        ),
        "fails": sim.create_job(suffix="fails", script=[(0, "running"), (900, "failed")]),
        "stuck": sim.create_job(
            suffix="stuck",
            script=[
                (0, "validating_files"),
                (60, "queued"),
                (HOUR, "running"),
                (HOUR + 600, "succeeded"),
            ],
        ),
        "later": sim.create_job(
            suffix="later",
            created_at=t0 + 600,
            script=[(0, "validating_files"), (60, "queued"), (120, "running"), (1200, "cancelled")],
        ),
    }
    async with serve_simulator(sim, port=0) as url:
        yield Jobs(sim, clock, url, ids)


async def _follow(
    jobs: Jobs, *, tty: bool = False, width: int = 160, interval: float = 60.0
) -> tuple[dict[str, str], str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=tty, width=width, color_system=None)
    statuses = await follow_all(
        SourceConfig(name="sim", base_url=jobs.url, stall_queued=1800),
        interval=interval,
        progress_interval=120.0,
        clock=jobs.clock,
        console=console,
    )
    text = out.getvalue()
    if tty:
        text = "\n".join(line for line in _CONTROL.sub("\n", text).splitlines() if line.strip())
    return statuses, text


def _of(lines: list[str], job_id: str) -> list[str]:
    """A job's lines of a pipe, without their time and job id."""
    return [line.split("  ", 2)[2] for line in lines if line.split("  ")[1] == job_id]


async def test_a_pipe_gets_one_line_per_change_of_every_job_until_all_end(jobs: Jobs) -> None:
    """Every active job is followed, the late one too; each status, step and stall is a line.

    An hour and a quarter of polling once a minute costs one list a cycle, no retrieve (every
    followed job is on the list's first page) and events only while a job runs.
    """
    start = jobs.clock.now()
    statuses, out = await _follow(jobs)
    cycles = (jobs.clock.now() - start) / 60.0
    stats = jobs.sim.stats
    assert stats["list"] <= cycles + 2 and stats["retrieve"] == 0
    # Running minutes: trains 30, fails 15, later 18, stuck 10; read every 2 minutes, plus
    # once more as each stops running.
    assert stats["events"] <= (30 + 15 + 18 + 10) / 2 + 4 + 4
    ids = jobs.ids
    assert statuses == {
        ids["trains"]: "succeeded",
        ids["fails"]: "failed",
        ids["stuck"]: "succeeded",
        ids["later"]: "cancelled",
    }
    lines = out.splitlines()
    assert ids["done"] not in out
    trains = _of(lines, ids["trains"])
    steps = [int(m.group(1)) for line in trains if (m := _STEP.search(line))]
    # A line per new step (or a loss that came with a checkpoint): steps only grow.
    assert len(set(steps)) >= 5 and steps == sorted(steps)
    assert trains[0].startswith("running") and trains[-1].startswith("succeeded")
    assert _of(lines, ids["fails"])[-1].startswith("failed")
    # The job that appeared meanwhile is followed from its first status to its end.
    later = [line.split()[0] for line in _of(lines, ids["later"]) if not _STEP.search(line)]
    later = [word for word in later if word != "checkpoint"]
    assert later == ["validating_files", "queued", "running", "cancelled"]
    first_later = next(i for i, line in enumerate(lines) if ids["later"] in line)
    assert first_later > next(i for i, line in enumerate(lines) if ids["trains"] in line)
    # A stall is one line, and its end another; nothing is repeated when nothing changed.
    stuck = _of(lines, ids["stuck"])
    words = [s.split()[0] for s in stuck if not s.startswith("checkpoint")]
    assert words[:5] == ["validating_files", "queued", "stalled:", "moving", "running"]
    assert set(words[5:-1]) <= {"running"} and words[-1] == "succeeded"
    assert stuck[2] == "stalled: still queued for 30m (threshold 30m)"
    assert len(lines) == len(set(lines))


async def test_on_a_terminal_one_table_is_redrawn_with_a_row_per_job(jobs: Jobs) -> None:
    """The table shows every job's status, progress, loss, ETA and time; STALLED when stuck."""
    statuses, out = await _follow(jobs, tty=True, width=160, interval=120.0)
    assert len(statuses) == 4
    lines = out.splitlines()
    assert all(len(line) <= 160 for line in lines), lines
    for name in ("trains", "fails", "stuck", "later"):
        assert any(f"{jobs.ids[name]} ({name})" in line for line in lines), name
    assert jobs.ids["done"] not in out
    assert any("stuck" in line and "queued STALLED" in line for line in lines)
    progress = [line for line in lines if "(trains)" in line and _STEP_CELL.search(line)]
    assert progress, lines
    assert any("█" in line and re.search(r"ETA|\(in \d+m\)", line) for line in progress)
    assert any(re.search(r"\d\.\d{4} / \d\.\d{4}", line) for line in progress)
    # Stalls are printed above the table once; the last table says every job has ended.
    assert sum("stalled: still queued for 30m" in line for line in lines) == 1
    assert "source sim: 0 of 4 jobs active" in lines[-7]
    assert any("(later)" in line and "cancelled" in line for line in lines[-6:])


_STEP_CELL = re.compile(r"\d+/\d+ \d+%")


async def test_it_outlasts_an_api_blip_and_gives_up_after_the_time_it_was_given(
    jobs: Jobs,
) -> None:
    """Failed requests are retried with backoff, one warning each way; a dead API ends it."""
    jobs.sim.faults.fail_next(6, 503)
    with structlog.testing.capture_logs() as logs:
        statuses, _ = await _follow(jobs, interval=300.0)
    assert len(statuses) == 4
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "api_unreachable",
        "api_reachable_again",
    ]
    jobs.sim.create_job(suffix="again", script=[(0, "running"), (HOUR, "succeeded")])
    jobs.sim.faults.fail_next(10_000, 502)
    start = jobs.clock.now()
    with pytest.raises(FollowGaveUp, match="could not be reached for 900 s"):
        await follow_all(
            SourceConfig(name="sim", base_url=jobs.url),
            give_up_after=900,
            clock=jobs.clock,
            console=Console(file=io.StringIO()),
        )
    assert jobs.clock.now() - start == 900


def _watch(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["watch", *args], env={"FTWATCH_CONFIG": None, "OPENAI_API_KEY": None}
    )
    return result.exit_code, result.stdout, result.stderr


async def test_watch_all_exits_with_the_worst_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 when a job failed, 2 when one was cancelled and none failed, 0 with none active."""
    monkeypatch.chdir(tmp_path)
    # 90 simulated seconds are 1.5 s: a job is still active when the command starts.
    sim = Simulator(ScaledClock(60.0), seed=3)
    args = ("--all", "--interval", "0.05", "--progress-interval", "0.05")
    async with serve_simulator(sim, port=0) as url:
        for suffix, end in (("ok", "succeeded"), ("bad", "failed"), ("stop", "cancelled")):
            sim.create_job(suffix=suffix, script=[(0, "running"), (90, end)])
        code, out, _ = await anyio.to_thread.run_sync(lambda: _watch(*args, "--base-url", url))
        assert code == 1
        assert {line.split()[2] for line in out.splitlines()} >= {
            "succeeded",
            "failed",
            "cancelled",
        }
        code, out, _ = await anyio.to_thread.run_sync(lambda: _watch(*args, "--base-url", url))
        assert (code, out) == (0, "No active jobs on source 'openai'.\n")
        sim.create_job(suffix="ok2", script=[(0, "running"), (90, "succeeded")])
        sim.create_job(suffix="stop2", script=[(0, "queued"), (60, "cancelled")])
        code, _, _ = await anyio.to_thread.run_sync(lambda: _watch(*args, "--base-url", url))
        assert code == 2


@pytest.mark.parametrize("args", [["ftjob-abc", "--all"], []])
def test_watch_wants_a_job_or_all_but_not_both(args: list[str]) -> None:
    """Both or neither is one sentence and exit 2, before anything is read."""
    code, out, err = _watch(*args)
    assert (code, out) == (2, "")
    assert err == (
        "ftwatch: error: give either a JOB_ID or --all (not both): watch follows one job, or "
        "every active job of the source\n"
    )
