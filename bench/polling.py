"""Polling cost: API requests per steady-state cycle, and one diff cycle over 10,000 jobs.

Run: .venv/bin/python bench/polling.py

1. With 250 finished jobs and 3 recent active ones on the simulator (over a real socket), the
   requests one steady-state cycle of ours costs, side by side with two naive loops written
   with the official ``openai`` SDK: (a) list every page, then retrieve every non-terminal job;
   (b) retrieve every job it knows.
2. The cost of one diff cycle over 10,000 jobs (the pure function, as the poller runs it), with
   no change and with every job changing status, in milliseconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import anyio
from openai import AsyncOpenAI

from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.diff import JobState, diff
from watcher.logs import configure_logging
from watcher.models import FineTuningJob
from watcher.simulator import Simulator, serve_simulator

START = 1_750_000_000.0
TERMINAL = {"succeeded", "failed", "cancelled"}


async def requests_per_cycle() -> None:
    """Print requests per steady-state cycle: ours and the naive SDK loops."""
    sim = Simulator(ManualClock(START), seed=1)
    sim.add_jobs(250, "succeeded", start=START - 400_000, interval=60)
    for _ in range(3):
        sim.create_job(script=[(0, "running"), (10**6, "succeeded")])
    async with serve_simulator(sim, port=0) as url:
        with tempfile.TemporaryDirectory() as tmp:
            watcher = Watcher(
                sources=[SourceConfig(name="sim", base_url=url)],
                state_path=Path(tmp) / "state.db",
                autostart=False,
            )
            async with watcher:
                await watcher.poll_once()  # the baseline
                cycles = 5
                sim.stats.reset()
                for _ in range(cycles):
                    await watcher.poll_once()
                ours = sim.stats.total / cycles

        client = AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        # Naive (a): page through the whole list, then retrieve every job not yet finished.
        sim.stats.reset()
        listed = [j async for j in client.fine_tuning.jobs.list(limit=100)]
        for job in listed:
            if job.status not in TERMINAL:
                await client.fine_tuning.jobs.retrieve(job.id)
        naive_list = sim.stats.total
        # Naive (b): retrieve every job it knows of, every cycle.
        sim.stats.reset()
        for job in listed:
            await client.fine_tuning.jobs.retrieve(job.id)
        naive_retrieve = sim.stats.total
        await client.close()
    print("requests per steady-state cycle, 250 finished + 3 active jobs:")
    print(f"  ftwatch poller                                {ours:6.1f}")
    print(f"  naive SDK, list every page + retrieve active  {naive_list:6d}")
    print(f"  naive SDK, retrieve every job                 {naive_retrieve:6d}")
    print(f"  naive/ours                                    {naive_list / ours:6.1f}x")


def _jobs(n: int, status: str) -> list[FineTuningJob]:
    return [
        FineTuningJob.model_validate(
            {"id": f"ftjob-{i:06d}", "status": status, "created_at": 1_700_000_000 + i}
        )
        for i in range(n)
    ]


def diff_cycle_cost(n: int = 10_000, repeat: int = 7) -> None:
    """Print the milliseconds one diff cycle over ``n`` jobs takes (median of ``repeat``)."""
    before = _jobs(n, "running")
    after = _jobs(n, "succeeded")
    states: dict[str, JobState] = {}
    for job in before:
        states[job.id], _ = diff(None, job, source="bench", now=1.0, announce_new=False)

    def cycle(current: list[FineTuningJob]) -> float:
        t0 = time.perf_counter()
        for job in current:
            previous = states[job.id]
            state, _events = diff(previous, job, source="bench", now=2.0)
            # What the poller does next: decide whether the snapshot changed.
            _changed = previous.job != job or previous.seen != state.seen
        return (time.perf_counter() - t0) * 1000

    same = statistics.median(cycle(before) for _ in range(repeat))
    changed = statistics.median(cycle(after) for _ in range(repeat))
    print(f"one diff cycle over {n:,} jobs (median of {repeat}):")
    print(f"  no change                {same:8.1f} ms")
    print(f"  every job changed status {changed:8.1f} ms  ({n * 2:,} events built)")


if __name__ == "__main__":
    configure_logging("warning", "console")
    anyio.run(requests_per_cycle)
    diff_cycle_cost()
