"""`ftwatch watch JOB` shows progress, checkpoints, messages and stalls (issue 8).

Each job runs on the simulator on a manual clock: hours of simulated time pass at once. The
non-TTY tests read the lines a pipe gets; the TTY ones a rich console forced to be a terminal.
"""

from __future__ import annotations

import io
import re

from rich.console import Console

from watcher.clock import ManualClock
from watcher.config import SourceConfig
from watcher.follow import follow_job
from watcher.simulator import Simulator
from watcher.simulator.progress_scenarios import progress_scenario
from watcher.testing import simulator_transport

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
_STEP = re.compile(r"step (\d+)/(\d+) (\d+)%")
RUN = [(0, "validating_files"), (60, "queued"), (120, "running"), (1800, "succeeded")]


async def _follow(
    name: str | None,
    *,
    tty: bool = False,
    width: int = 100,
    interval: float = 30.0,
    script: list[tuple[float, str]] = RUN,
) -> tuple[str, str]:
    """Follow one job (a scenario's, or a 25-minute run with a validation file when None)."""
    clock = ManualClock(autojump=True)
    sim = Simulator(clock, seed=3)
    if name is None:
        job = sim.create_job(
            suffix="bar", script=script, train_seconds=1500, validation_file="file-valid"
        )
    else:
        job = progress_scenario(sim)[name]
    out = io.StringIO()
    console = Console(file=out, force_terminal=tty, width=width, color_system=None)
    status = await follow_job(
        SourceConfig(name="sim", base_url="http://sim.test/v1"),
        job,
        interval=interval,
        clock=clock,
        transport=simulator_transport(sim),
        console=console,
    )
    text = out.getvalue()
    if tty:
        text = "\n".join(line for line in _CONTROL.sub("\n", text).splitlines() if line.strip())
    return status, text


def _after_id(lines: list[str]) -> list[str]:
    """The lines of a pipe without their time and job id."""
    return [line.split("  ", 2)[2] for line in lines]


async def test_a_pipe_gets_one_line_per_progress_update_with_losses_and_checkpoints() -> None:
    """Steps only grow, one line each; checkpoints come between them; the loss is current."""
    status, out = await _follow(None)
    assert status == "succeeded"
    lines = _after_id(out.splitlines())
    progress = [line for line in lines if _STEP.search(line)]
    steps = [int(m.group(1)) for line in progress if (m := _STEP.search(line))]
    assert len(steps) >= 5 and steps == sorted(set(steps))
    assert all("train_loss " in line and "ETA " in line for line in progress)
    last = _STEP.search(progress[-1])
    assert last is not None and last.group(1) == last.group(2) and last.group(3) == "100"
    checkpoints = [line for line in lines if line.startswith("checkpoint at step")]
    checkpoint_steps = [int(line.split()[3]) for line in checkpoints]
    assert len(checkpoints) >= 2 and checkpoint_steps == sorted(set(checkpoint_steps))
    assert checkpoint_steps[-1] == steps[-1]
    assert all("valid_loss " in line for line in checkpoints)
    # The valid loss a checkpoint reports is shown with the progress after it.
    first = lines.index(checkpoints[0])
    assert "valid_loss" not in progress[0]
    assert all("valid_loss" in line for line in lines[first:] if _STEP.search(line))
    assert [line.split()[0] for line in lines if not line.startswith("checkpoint")][:3] == [
        "validating_files",
        "queued",
        "running",
    ]
    assert lines[-1].startswith("succeeded")


async def test_warnings_and_errors_of_the_event_stream_are_printed_as_they_come() -> None:
    """The chatty job's warn, then error, are lines of their own, in order, before it fails."""
    status, out = await _follow("chatty")
    assert status == "failed"
    lines = _after_id(out.splitlines())
    warn = lines.index("warn: Training file has 12 duplicated examples")
    error = lines.index("error: Loss diverged; the job will stop")
    assert warn < error < len(lines) - 1
    assert lines[-1].startswith("failed")


async def test_a_job_whose_metrics_stop_is_shown_stalled_once_then_moving() -> None:
    """30 minutes without metrics is one stall line; the end says how long it lasted."""
    status, out = await _follow("metrics_stop", interval=60.0)
    assert status == "succeeded"
    lines = _after_id(out.splitlines())
    stalls = [line for line in lines if line.startswith("stalled")]
    assert stalls == ["stalled: running with no new metrics for 30m (threshold 30m)"]
    assert lines[-2] == "moving again after 2h50m"
    assert lines.index(stalls[0]) > max(i for i, line in enumerate(lines) if _STEP.search(line))


async def test_a_job_queued_for_hours_is_stalled_by_the_sources_threshold() -> None:
    """Queued past 4 h is a stall; running moves it again."""
    # The scenario's stuck job as it would end: queued five hours, then a short run.
    hours = [(0, "validating_files"), (60, "queued"), (5 * 3600, "running")]
    status, out = await _follow(None, interval=300.0, script=[*hours, (6 * 3600, "succeeded")])
    assert status == "succeeded"
    lines = _after_id(out.splitlines())
    stall = lines.index("stalled: still queued for 4h00m (threshold 4h00m)")
    assert lines[stall + 1] == "moving again after 4h55m"
    assert lines[stall + 2].startswith("running")


async def test_on_a_terminal_a_progress_bar_shows_step_loss_eta_and_time_in_status() -> None:
    """The live line has a bar, the step, the loss, the ETA and the time; it fits the width."""
    status, out = await _follow(None, tty=True, width=100)
    assert status == "succeeded"
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    bars = [line for line in lines if "━" in line]
    assert bars, lines
    assert all(_STEP.search(line) and "train_loss " in line for line in bars)
    assert any(re.match(r"running \d+m +━+", line) for line in bars)
    assert any(re.search(r"ETA \d\d:\d\d \(in \d+m\)", line) for line in bars)
    assert any("valid_loss " in line for line in bars)
    # Checkpoints are printed above the bar once each, and the final status stays.
    printed = [line for line in lines if "checkpoint at step" in line]
    assert len(printed) >= 2 and len(set(printed)) == len(printed)
    assert sum("succeeded" in line for line in lines) == 1


async def test_on_a_terminal_a_stall_is_marked_on_the_bar() -> None:
    """A stalled job's live line says STALLED, and the stall is printed above it."""
    status, out = await _follow("metrics_stop", tty=True, width=120, interval=120.0)
    assert status == "succeeded"
    lines = out.splitlines()
    assert any("STALLED" in line and "━" in line for line in lines)
    assert sum("stalled: running with no new metrics for 30m" in line for line in lines) == 1
