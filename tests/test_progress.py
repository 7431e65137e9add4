"""Progress, checkpoints, messages, stalls and ETA changes, read by the poller from the simulator.

Each test drives one shared manual clock (the simulator's and the watcher's), so hours of a
job's life pass without waiting, and restarts reopen the same SQLite state file.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from watcher import SinkConfig, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.events import BaseEvent, JobCheckpointCreated, JobMessage, JobProgress
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0
HOUR = 3600.0
ALL = [
    "*",
    "fine_tuning.job.progress",
    "fine_tuning.job.checkpoint_created",
    "fine_tuning.job.eta_changed",
]

Factory = Callable[..., Any]


@pytest.fixture
def clock() -> ManualClock:
    """The one clock of the simulator and the watcher."""
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    """A simulator on the shared clock."""
    return Simulator(clock, seed=1)


@pytest.fixture
def make_watcher(sim: Simulator, clock: ManualClock, tmp_path: Path) -> Factory:
    """A watcher polled by hand on the simulator; each call is a (re)start on the same state."""

    @asynccontextmanager
    async def make(**source: Any) -> AsyncIterator[tuple[Watcher, CollectingSink]]:
        sink = CollectingSink(SinkConfig(name="collect", type="collect", events=ALL))
        keys: dict[str, Any] = {"jitter": 0, "progress_interval": 60, **source}
        config = SourceConfig(name="sim", base_url="http://sim/v1", **keys)
        watcher = Watcher(
            sources=[config],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            yield watcher, sink

    return make


async def _run(
    watcher: Watcher, clock: ManualClock, seconds: float, step: float = 60.0
) -> list[BaseEvent]:
    """Poll every ``step`` seconds for ``seconds``; return every event of those cycles."""
    out: list[BaseEvent] = []
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(step)
        elapsed += step
        out.extend(await watcher.poll_once())
    return out


def _types(events: Sequence[BaseEvent]) -> list[str]:
    return [e.type.removeprefix("fine_tuning.job.") for e in events]


async def test_a_running_job_reports_metrics_checkpoints_and_errors_in_order(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """A job created after the baseline: progress, checkpoints, its error, then the end."""
    async with make_watcher(progress_every="1%") as (watcher, _):
        await watcher.poll_once()  # the baseline: nothing yet
        job = sim.create_job(
            script=[(0, "running"), (1800, "failed")], train_seconds=1200, validation_file=None
        )
        events = await _run(watcher, clock, 2400)
    mine = [e for e in events if e.job_id == job]
    types = _types(mine)
    assert types[0] == "created"
    assert types.count("progress") == 10
    assert types.count("checkpoint_created") == sim.checkpoints(job).__len__()
    assert types[-3:] == ["message", "status_changed", "failed"]
    message = mine[-3]
    assert isinstance(message, JobMessage) and message.level == "error"
    progress = [e for e in mine if isinstance(e, JobProgress)]
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    assert progress[-1].percent == 100.0 and progress[-1].train_loss is not None
    assert progress[-1].total_steps is not None
    checkpoint = next(e for e in mine if isinstance(e, JobCheckpointCreated))
    assert checkpoint.fine_tuned_model_checkpoint and checkpoint.metrics


async def test_reads_are_bounded_to_running_jobs_at_their_interval(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """/events is read only for running jobs, once per progress_interval, never for finished."""
    sim.add_jobs(50, "succeeded", start=START - 400_000, interval=60)
    sim.add_jobs(2, "queued", start=START - 100, interval=10)
    for _ in range(3):
        sim.create_job(script=[(0, "running"), (100 * HOUR, "succeeded")], train_seconds=99 * HOUR)
    async with make_watcher(poll_interval=10, progress_interval=60) as (watcher, _):
        await watcher.poll_once()
        sim.stats.reset()
        await _run(watcher, clock, 600, step=10)
    counts = sim.stats.as_dict()
    assert counts["list"] == 60
    assert counts["events"] == 3 * 10  # 3 running jobs, one read a minute
    assert counts.get("checkpoints", 0) == 0


async def test_a_restart_announces_nothing_twice(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """After a restart on the same state the reads go on from where they stopped."""
    async with make_watcher(progress_every="1%") as (watcher, _):
        await watcher.poll_once()
        job = sim.create_job(script=[(0, "running"), (2 * HOUR, "succeeded")], train_seconds=HOUR)
        first = await _run(watcher, clock, 1200)
    async with make_watcher(progress_every="1%") as (watcher, _):
        second = await _run(watcher, clock, 2 * HOUR)
    ids = [e.id for e in first + second]
    assert len(ids) == len(set(ids))
    steps = [e.step for e in first + second if isinstance(e, JobProgress)]
    assert steps == sorted(set(steps)) and len(steps) == 10
    # The metrics stopped after an hour: one no_progress stall, over when the job ended.
    assert _types(second)[-3:] == ["status_changed", "succeeded", "unstalled"]
    assert _types(first + second).count("stalled") == 1
    assert job


async def test_the_throttle_keeps_the_last_progress_before_the_end(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """With progress_every = "50%", fewer progress events, and the final one still comes."""
    async with make_watcher(progress_every="50%") as (watcher, _):
        await watcher.poll_once()
        sim.create_job(script=[(0, "running"), (1500, "succeeded")], train_seconds=1200)
        events = await _run(watcher, clock, 1800)
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert 2 <= len(progress) <= 4
    assert progress[-1].percent == 100.0
    assert _types(events)[-2:] == ["status_changed", "succeeded"]


async def test_a_duration_throttle(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """progress_every = "10m" sends at most one per job every ten minutes, plus the last."""
    async with make_watcher(progress_every="10m") as (watcher, _):
        await watcher.poll_once()
        sim.create_job(script=[(0, "running"), (1500, "succeeded")], train_seconds=1200)
        events = await _run(watcher, clock, 1800)
    progress = [e for e in events if isinstance(e, JobProgress)]
    times = [e.observed_at for e in progress]
    assert all(b - a >= 600 for a, b in itertools.pairwise(times[:-1]))
    assert progress[-1].percent == 100.0


async def test_untyped_metrics_are_tolerated(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """Strings for numbers, missing keys and entries out of order: kept or skipped, no crash."""
    async with make_watcher(progress_every="1%") as (watcher, _):
        await watcher.poll_once()
        job = sim.create_job(script=[(0, "running")], train_seconds=100 * HOUR)
        await _run(watcher, clock, 60)
        for data in (
            {"step": "1200", "total_steps": "2400", "train_loss": "0.5", "extra": [1]},
            {"train_loss": 0.3},  # no step: skipped
            {"step": 5, "train_loss": 0.9},  # older than the last one: skipped
            {"step": "x"},
            {"step": 1300, "total_steps": 2400, "train_loss": "NaN", "valid_loss": None},
        ):
            sim.post_event(job, "metrics", level="info", kind="metrics", data=data)
            clock.advance(1)
        events = await _run(watcher, clock, 60)
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert [(p.step, p.percent, p.train_loss) for p in progress] == [(1300, 54.17, None)]


async def test_warnings_are_messages_and_info_only_when_asked(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """warn and error entries become message events; info ones only with progress_messages."""
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()
        job = sim.create_job(script=[(0, "running")], train_seconds=100 * HOUR)
        await _run(watcher, clock, 60)
        sim.post_event(job, "Your file has 3 duplicated examples", level="warn")
        sim.post_event(job, "just saying", level="info")
        events = await _run(watcher, clock, 60)
    messages = [e for e in events if isinstance(e, JobMessage)]
    assert [(m.level, m.message) for m in messages] == [
        ("warn", "Your file has 3 duplicated examples")
    ]
    assert messages[0].api_event_id.startswith("ftevent-")


async def test_a_slipping_eta_is_reported_past_both_thresholds(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """estimated_finish moving by 1 h is an eta_changed; a 1-minute wobble is not."""
    async with make_watcher() as (watcher, _):
        job = sim.create_job(script=[(0, "running")], train_seconds=100 * HOUR)
        await watcher.poll_once()
        base = int(START + 2 * HOUR)
        sim.set_status(job, "running", estimated_finish=base)
        await _run(watcher, clock, 60)
        sim.set_status(job, "running", estimated_finish=base + 60)
        assert not [e for e in await _run(watcher, clock, 60) if e.type.endswith("eta_changed")]
        sim.set_status(job, "running", estimated_finish=base + 3600)
        events = [e for e in await _run(watcher, clock, 60) if e.type.endswith("eta_changed")]
    assert len(events) == 1
    assert events[0].details()["shift"] == 3600
    assert events[0].details()["previous_estimated_finish"] == base


async def test_a_new_job_with_entries_already_has_created_first(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """A job first seen with metrics and a warning already logged: created, then the rest."""
    async with make_watcher(progress_every="1%") as (watcher, _):
        await watcher.poll_once()
        job = sim.create_job(script=[(0, "running")], train_seconds=600)
        clock.advance(300)
        sim.post_event(job, "careful", level="warn")
        events = await watcher.poll_once()
    types = _types([e for e in events if e.job_id == job])
    assert types[0] == "created"
    assert {"progress", "message"} <= set(types[1:])


async def test_the_silent_baseline_announces_no_history_but_later_entries(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """Jobs already running at the first start: their past metrics and warnings stay quiet."""
    job = sim.create_job(created_at=START - 1800, script=[(0, "running")], train_seconds=100 * HOUR)
    sim.post_event(job, "old warning", level="warn")
    async with make_watcher(progress_every="1%") as (watcher, _):
        baseline = await watcher.poll_once()
        assert baseline == []
        clock.advance(60)
        sim.post_event(job, "new warning", level="warn")
        later = await _run(watcher, clock, 60)
    assert [e.message for e in later if isinstance(e, JobMessage)] == ["new warning"]


async def test_library_subscribers_get_the_new_types(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """``watcher.events(JobProgress, JobMessage)`` yields them like the lifecycle types."""
    async with make_watcher(progress_every="1%") as (watcher, _):
        await watcher.poll_once()
        job = sim.create_job(script=[(0, "running")], train_seconds=600)
        subscription = watcher.events(JobProgress, JobMessage)
        clock.advance(120)
        sim.post_event(job, "careful", level="warn")
        await watcher.poll_once()
        got = [await subscription.__anext__() for _ in range(2)]
    assert {type(e) for e in got} == {JobProgress, JobMessage}
