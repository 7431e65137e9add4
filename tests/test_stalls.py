"""Stalls: the pure rule against arbitrary timelines and restarts, then through the poller."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher import JobStalled, JobUnstalled, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.events import BaseEvent
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, sample_job, simulator_transport
from watcher.tracking import JobTrack, Rules, check_stall, note_metrics, note_status

START = 1_750_000_000.0
HOUR = 3600.0
RULES = Rules(stall_validating=HOUR, stall_queued=4 * HOUR, stall_no_progress=1800.0)

_STEP = st.tuples(
    st.floats(min_value=0, max_value=6 * HOUR, allow_nan=False),
    st.sampled_from(
        ["validating_files", "queued", "running", "paused", "pausing", "metrics", "succeeded"]
    ),
    st.sampled_from(["none", "restart", "restore_older"]),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["validating_files", "queued", "running"]), st.lists(_STEP, max_size=40))
def test_one_stalled_per_stall_each_followed_by_unstalled_or_still_stalled(
    first: str, timeline: list[tuple[float, str, str]]
) -> None:
    """Whatever the statuses and restarts: at most one stalled per stall, then its unstall.

    A restart reloads the track from its JSON. A restored older state (a backup) goes back to
    an earlier saved track: its repeats are absorbed by id (as the journal does), and a stall
    it no longer remembers cannot be followed up, so only the first property is checked then.
    """
    restored = False
    now = START
    track = JobTrack(status=first, status_since=now)
    saved = [json.dumps(track.to_json())]
    journaled: dict[str, BaseEvent] = {}
    order: list[BaseEvent] = []
    for dt, action, restart in timeline:
        now += dt
        if action == "metrics":
            if track.status == "running":
                note_metrics(track, (track.step or 0) + 1, now)
        else:
            note_status(track, action, now)
        job = sample_job(id="ftjob-p", status=track.status)
        for event in check_stall(track, job, now=now, rules=RULES, source="s"):
            if event.id not in journaled:
                journaled[event.id] = event
                order.append(event)
        saved.append(json.dumps(track.to_json()))
        if restart == "restart":
            track = JobTrack.from_json(json.loads(saved[-1]))
        elif restart == "restore_older":
            restored = True
            track = JobTrack.from_json(json.loads(saved[len(saved) // 2]))
        if track.status == "succeeded":
            break
    open_stalls: dict[tuple[str, float], int] = {}
    for event in order:
        if isinstance(event, JobStalled):
            key = (event.reason, event.since)
            assert key not in open_stalls, "a stall announced twice"
            open_stalls[key] = 1
        elif isinstance(event, JobUnstalled) and not restored:
            assert open_stalls.pop((event.reason, event.since)) == 1, "unstall without stall"
    if restored:
        return
    # Whatever is still open is the stall the job is in now (never a forgotten one).
    assert len(open_stalls) <= 1
    for reason, since in open_stalls:
        assert track.stall is None or (track.stall["reason"], track.stall["since"]) == (
            reason,
            since,
        )
        assert track.status != "succeeded"


def test_paused_never_stalls_and_off_means_off() -> None:
    """A paused job never stalls; a threshold set to None never fires."""
    track = JobTrack(status="paused", status_since=START)
    job = sample_job(status="paused")
    assert check_stall(track, job, now=START + 100 * HOUR, rules=RULES, source="s") == []
    track = JobTrack(status="queued", status_since=START)
    off = Rules(stall_queued=None)
    queued = sample_job(status="queued")
    assert check_stall(track, queued, now=START + 100 * HOUR, rules=off, source="s") == []


# --- through the poller -----------------------------------------------------------------------


Factory = Callable[..., Any]


@pytest.fixture
def clock() -> ManualClock:
    """The one clock of the simulator and the watcher."""
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    """A simulator on the shared clock."""
    return Simulator(clock, seed=2)


@pytest.fixture
def make_watcher(sim: Simulator, clock: ManualClock, tmp_path: Path) -> Factory:
    """A watcher polled by hand; each call is a (re)start on the same state file."""

    @asynccontextmanager
    async def make(**source: Any) -> AsyncIterator[Watcher]:
        keys: dict[str, Any] = {"jitter": 0, **source}
        watcher = Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1", **keys)],
            sinks=[CollectingSink()],
            state_path=tmp_path / "state.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            yield watcher

    return make


def _stalls(events: list[BaseEvent]) -> list[tuple[str, str]]:
    return [
        (e.type.removeprefix("fine_tuning.job."), e.details()["reason"])
        for e in events
        if isinstance(e, JobStalled | JobUnstalled)
    ]


async def test_a_job_queued_for_hours_at_first_start_is_stalled_once_across_restarts(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """Queued 5 h before ftwatch first starts: stalled after the silent baseline, once."""
    job = sim.create_job(created_at=START - 5 * HOUR, script=[(0, "queued"), (7 * HOUR, "running")])
    async with make_watcher() as watcher:
        first = await watcher.poll_once()
        clock.advance(60)
        first += await watcher.poll_once()
    assert _stalls(first) == [("stalled", "queued_too_long")]
    stalled = next(e for e in first if isinstance(e, JobStalled))
    assert stalled.since == START - 5 * HOUR and stalled.threshold == 4 * HOUR
    async with make_watcher() as watcher:
        clock.advance(60)
        again = await watcher.poll_once()
        assert _stalls(again) == []
        clock.advance(2 * HOUR)  # it starts running
        moved = await watcher.poll_once()
    assert _stalls(moved) == [("unstalled", "queued_too_long")]
    types = [e.type for e in moved if e.job_id == job]
    assert types.index("fine_tuning.job.status_changed") < types.index("fine_tuning.job.unstalled")


async def test_a_paused_job_never_stalls_and_a_resumed_one_is_clocked_afresh(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """Paused for a day: no stall. Resumed: status_changed, and the clock starts again."""
    job = sim.create_job(script=[(0, "running")], train_seconds=100 * HOUR)
    async with make_watcher(poll_interval=60) as watcher:
        await watcher.poll_once()
        clock.advance(60)
        sim.pause(job)
        events: list[BaseEvent] = []
        for _ in range(24):
            clock.advance(HOUR)
            events += await watcher.poll_once()
        sim.resume(job)
        clock.advance(60)
        events += await watcher.poll_once()
    assert _stalls(events) == []
    assert [e.status for e in events if e.type.endswith("status_changed")] == [
        "paused",
        "running",
    ]


async def test_metrics_that_stop_are_a_no_progress_stall(
    sim: Simulator, clock: ManualClock, make_watcher: Factory
) -> None:
    """Training whose metrics stop for longer than stall_no_progress is stalled, then ends."""
    sim.create_job(script=[(0, "running"), (3 * HOUR, "succeeded")], train_seconds=600)
    async with make_watcher(stall_no_progress="30m") as watcher:
        events: list[BaseEvent] = []
        for _ in range(3 * 60 + 1):
            clock.advance(60)
            events += await watcher.poll_once()
    assert _stalls(events) == [("stalled", "no_progress"), ("unstalled", "no_progress")]
    unstalled = next(e for e in events if isinstance(e, JobUnstalled))
    assert unstalled.stalled_for >= 2 * HOUR
