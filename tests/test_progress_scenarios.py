"""The simulator's progress scenario, watched for seven simulated hours: every type shows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from watcher import JobMessage, SinkConfig, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.events import BaseEvent
from watcher.simulator import PROGRESS_JOBS, Simulator, progress_scenario
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0


async def test_the_progress_scenario_shows_each_kind_of_trouble(tmp_path: Path) -> None:
    """Stuck in queue, metrics that stop, paused, warnings, a slipping ETA: each as expected."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=4)
    sink = CollectingSink(SinkConfig(name="c", type="collect"))
    watcher = Watcher(
        sources=[SourceConfig(name="sim", base_url="http://sim/v1", jitter=0)],
        sinks=[sink],
        state_path=tmp_path / "state.db",
        clock=clock,
        transport=simulator_transport(sim),
        autostart=False,
    )
    async with watcher:
        await watcher.poll_once()  # the baseline, before the jobs exist
        ids = progress_scenario(sim)
        events: list[BaseEvent] = []
        for _ in range(7 * 60):
            clock.advance(60)
            events += await watcher.poll_once()
    assert list(ids) == list(PROGRESS_JOBS)
    by_job: dict[str, list[str]] = defaultdict(list)
    for event in events:
        kind = event.type.removeprefix("fine_tuning.job.")
        if kind in ("stalled", "unstalled"):
            kind += ":" + event.details()["reason"]
        by_job[event.job_id].append(kind)
    stuck = by_job[ids["stuck_queued"]]
    assert stuck.count("stalled:queued_too_long") == 1
    assert stuck.index("stalled:queued_too_long") < stuck.index("unstalled:queued_too_long")
    stopped = by_job[ids["metrics_stop"]]
    assert stopped.count("stalled:no_progress") == 1 and "unstalled:no_progress" in stopped
    assert stopped[-1] == "unstalled:no_progress" and "succeeded" in stopped
    paused = by_job[ids["paused"]]
    assert not [k for k in paused if k.startswith("stalled")]
    assert paused.count("status_changed") == 3 and paused[-1] == "succeeded"
    chatty = [e for e in events if isinstance(e, JobMessage) and e.job_id == ids["chatty"]]
    assert [m.level for m in chatty] == ["warn", "error", "error"]
    assert by_job[ids["chatty"]][-2:] == ["status_changed", "failed"]
    slipping = by_job[ids["slipping_eta"]]
    assert slipping.count("eta_changed") == 1
    # The default routing (``*``) never sends the opt-in types.
    assert not {e.type for e in sink.events} & {
        "fine_tuning.job.progress",
        "fine_tuning.job.checkpoint_created",
        "fine_tuning.job.eta_changed",
    }
