"""Progress cost: API requests per poll cycle with progress on, ours vs a naive loop.

Run: .venv/bin/python bench/progress.py

250 finished jobs and 3 running ones on the simulator (over a real socket), ``poll_interval``
10 s and ``progress_interval`` 60 s, one simulated hour of steady state after the baseline.
Ours: the watcher as the daemon runs it (its own jittered waits, and without jitter, the worst
case), counting every request: the job list, retrieves, ``/events`` and ``/checkpoints``. The
naive loop, written with the official ``openai`` SDK, reads the first page of the job list and
then every active job's events, every cycle. Prints both, and their ratio.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import anyio
from openai import AsyncOpenAI

from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator

START = 1_750_000_000.0
TERMINAL = {"succeeded", "failed", "cancelled"}
POLL = 10.0
PROGRESS = 60.0
HOUR = 3600.0


def _simulator(clock: ManualClock) -> Simulator:
    sim = Simulator(clock, seed=1)
    sim.add_jobs(250, "succeeded", start=START - 400_000, interval=60)
    for _ in range(3):
        # Long runs, as real ones are: a metrics entry every few hours, a checkpoint per epoch.
        sim.create_job(script=[(0, "running"), (10**6, "succeeded")], train_seconds=50 * HOUR)
    return sim


async def ours(jitter: float) -> tuple[float, dict[str, int]]:
    """Requests per cycle of the watcher over one simulated hour, and the split by route."""
    clock = ManualClock(START)
    sim = _simulator(clock)
    rng = random.Random(7)
    async with serve_simulator(sim, port=0) as url:
        with tempfile.TemporaryDirectory() as tmp:
            source = SourceConfig(
                name="sim",
                base_url=url,
                poll_interval=POLL,
                progress_interval=PROGRESS,
                jitter=jitter,
            )
            watcher = Watcher(
                sources=[source], state_path=Path(tmp) / "s.db", clock=clock, autostart=False
            )
            async with watcher:
                await watcher.poll_once()  # the baseline (and each running job's first read)
                sim.stats.reset()
                cycles = 0
                while clock.now() < START + HOUR:
                    # The wait the poller's loop takes: poll_interval, jittered as configured.
                    clock.advance(POLL * (1.0 + rng.uniform(-jitter, jitter)))
                    await watcher.poll_once()
                    cycles += 1
    return sim.stats.total / cycles, sim.stats.as_dict()


async def naive(cycles: int = 60) -> float:
    """Requests per cycle of a loop that reads every active job's events each cycle."""
    clock = ManualClock(START)
    sim = _simulator(clock)
    async with serve_simulator(sim, port=0) as url:
        client = AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        sim.stats.reset()
        for _ in range(cycles):
            page = await client.fine_tuning.jobs.list(limit=100)
            for job in page.data:
                if job.status not in TERMINAL:
                    await client.fine_tuning.jobs.list_events(job.id, limit=20)
            clock.advance(POLL)
        await client.close()
    return sim.stats.total / cycles


async def main() -> None:
    """Print ours (with and without jitter) beside the naive loop, and the ratio."""
    configure_logging("warning", "json")
    jittered, split = await ours(jitter=0.1)
    exact, _ = await ours(jitter=0.0)
    loop = await naive()
    print("250 finished + 3 running jobs, poll_interval 10 s, progress_interval 60 s, 1 h:")
    print(f"  ours, jitter 0.1 (the default):  {jittered:.3f} requests/cycle  {split}")
    print(f"  ours, no jitter (worst case):    {exact:.3f} requests/cycle")
    print(f"  naive (every active job's events every cycle): {loop:.3f} requests/cycle")
    print(f"  naive / ours: {loop / jittered:.2f}x (no jitter: {loop / exact:.2f}x)")
    assert exact <= 1.5, exact


if __name__ == "__main__":
    anyio.run(main)
