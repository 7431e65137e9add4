"""The daemon's resident memory watching 10,000 and 100,000 jobs, beside the same daemon idle.

Run: .venv/bin/python bench/rss.py

The simulator runs in this process on a real socket; ``python -m watcher run`` runs as a child
process against it, with a logfile sink, until its baseline is recorded and five steady-state
cycles have run; then its VmRSS is read from /proc.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from watcher.clock import ManualClock
from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator

START = 1_750_000_000.0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def measure(finished: int, active: int) -> tuple[float, float]:
    """Return (RSS in MiB, seconds to the end of the baseline) for a daemon on this many jobs."""
    sim = Simulator(ManualClock(START), seed=2)
    sim.add_jobs(finished, "succeeded", start=START - 10_000_000, interval=60)
    sim.add_jobs(active, "running", start=START - 1_000, interval=1)
    async with serve_simulator(sim, port=0) as url:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "ftwatch.toml"
            config.write_text(
                f"""
[state]
path = "{tmp}/state.db"
[logging]
level = "warning"
[[sources]]
name = "sim"
base_url = "{url}"
poll_interval = 0.1
jitter = 0
max_pages = 200
[[sinks]]
name = "audit"
type = "logfile"
path = "{tmp}/events.jsonl"
"""
            )
            baseline_pages = max(1, -(-(finished + active) // 100))
            started = time.perf_counter()
            process = await anyio.open_process(
                [sys.executable, "-m", "watcher", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                baseline_done = None
                while True:
                    # The first list request past the baseline's pages: the baseline is stored.
                    if baseline_done is None and sim.stats["list"] >= baseline_pages + 1:
                        baseline_done = time.perf_counter() - started
                    if sim.stats["list"] >= baseline_pages + 5:
                        break
                    await anyio.sleep(0.01)  # a benchmark may poll; tests never do
                return _rss_mib(process.pid), baseline_done or 0.0
            finally:
                process.terminate()
                await process.wait()


async def main() -> None:
    """Print the measurements side by side."""
    idle, _ = await measure(0, 0)
    print("daemon RSS (python -m watcher run, logfile sink):")
    print(f"  watching       0 jobs   {idle:7.1f} MiB")
    for finished, active in ((9_950, 50), (99_500, 500)):
        rss, seconds = await measure(finished, active)
        jobs = finished + active
        print(
            f"  watching {jobs:7,} jobs   {rss:7.1f} MiB  (+{rss - idle:.1f} MiB;"
            f" first baseline read and stored in {seconds:.1f} s)"
        )


if __name__ == "__main__":
    configure_logging("warning", "console")
    anyio.run(main)
