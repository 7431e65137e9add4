"""``ftwatch demo``: the simulator, the daemon's machinery and the stdout sink, end to end.

No account and no network: a simulated API is served on a loopback port, a handful of jobs run
through ``validating_files -> queued -> running -> succeeded`` (one fails, one is cancelled) at
accelerated speed, and the events print as they happen: each status change, the progress of
every running job (the stdout sink is routed ``fine_tuning.job.progress``), and one stall (a
job queued far longer than the demo's threshold) and its end. It ends by itself once every job
has finished and every event has been printed.
"""

from __future__ import annotations

from pathlib import Path

from .app import Watcher
from .clock import ScaledClock
from .config import Config, ServerConfig, SourceConfig
from .events import JobCancelled, JobFailed, JobSucceeded
from .sinks import sink_plugin

__all__ = ["run_demo"]


async def run_demo(
    *, speed: float = 60.0, as_json: bool = False, state_path: Path, listen: str | None = None
) -> str:
    """Run the demo scenario to its end; return a one-line summary.

    ``listen`` (``host:port``) serves the operations endpoint (``/metrics``...) meanwhile.
    """
    from .simulator import DEMO_PROGRESS, Simulator, demo_scenario, serve_simulator

    sim = Simulator(ScaledClock(speed), seed=7)
    job_ids: set[str] = set()
    stdout = sink_plugin("stdout").config_model.model_validate(
        {
            "name": "console",
            "type": "stdout",
            "json": True if as_json else None,
            # Progress is opt-in per sink; the demo shows it.
            "events": ["*", "fine_tuning.job.progress"],
        }
    )
    outcomes: dict[str, str] = {}
    async with serve_simulator(sim) as url:
        source = SourceConfig(
            name="simulator",
            base_url=url,
            # Poll often enough in real time to see every simulated step.
            poll_interval=max(0.05, 10.0 / speed),
            jitter=0.0,
            emit_existing=True,
            # The watcher runs on the wall clock: the demo's thresholds are simulated seconds.
            progress_interval=DEMO_PROGRESS.progress_interval / speed,
            progress_every=DEMO_PROGRESS.progress_every,
            stall_queued=DEMO_PROGRESS.stall_queued / speed,
        )
        config = Config(sources=[source], sinks=[stdout], server=ServerConfig(listen=listen))
        async with Watcher(config, state_path=state_path) as watcher:
            async with watcher.events(JobSucceeded, JobFailed, JobCancelled) as finished:
                # The jobs start once the watcher runs: a slow start (a loaded machine) would
                # otherwise eat into their timeline, and the first poll would find a job
                # already queued for longer than the demo's stall threshold.
                job_ids.update(demo_scenario(sim))
                async for event in finished:
                    if event.job_id in job_ids:
                        outcomes[event.job_id] = event.job.status
                    if job_ids <= outcomes.keys():
                        break
            await watcher.drained()
    counts = {s: list(outcomes.values()).count(s) for s in ("succeeded", "failed", "cancelled")}
    return (
        f"ftwatch demo: all {len(job_ids)} jobs finished: {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled."
    )
