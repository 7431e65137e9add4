"""Growth: what a daemon costs as the history grows to 1,000, 10,000 and 100,000 jobs.

Run: .venv/bin/python bench/growth.py [--quick]

The simulator runs in this process on a real socket, with a mostly finished history (all but
20 jobs finished; the 20 running ones are the newest). ``bench/daemon.py run`` runs as a child
process against it, once as it is now ("new") and once with the poller as it was ("old":
``active_jobs`` and the paging estimate scanning every known job each cycle, a pydantic model
per job, the whole first baseline held until its last page, every stored snapshot parsed on
a restart; pinned in ``bench/before.py``).

For each size and each: requests per steady-state cycle, the daemon's CPU per steady-state
cycle (from /proc, over many cycles, so the simulator's work is not counted), the first
baseline's time and the RSS after it. Then, at 100,000 jobs with a 1 s poll interval (the same
state file, restarted), the delay from a status change on the simulator to its journal entry
in the state file (the goal: the poll interval + 100 ms), and the RSS after that restart.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import anyio
from anyio.abc import Process

from watcher.clock import ManualClock
from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator

START = 1_750_000_000.0
ACTIVE = 20
HERE = Path(__file__).parent
TICK = os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    # utime and stime, after the command name (which may hold spaces) in /proc/<pid>/stat.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _config(tmp: Path, url: str, interval: float) -> Path:
    config = tmp / f"ftwatch-{interval}.toml"
    config.write_text(
        f"""
[state]
path = "{tmp}/state.db"
[logging]
level = "warning"
[[sources]]
name = "sim"
base_url = "{url}"
poll_interval = {interval}
jitter = 0
max_pages = 200
[[sinks]]
name = "audit"
type = "logfile"
path = "{tmp}/events.jsonl"
"""
    )
    return config


async def _start(config: Path, old: bool) -> Process:
    command = [sys.executable, str(HERE / "daemon.py"), *(["--old"] if old else [])]
    return await anyio.open_process(
        [*command, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _until(sim: Simulator, lists: int) -> None:
    while True:
        if sim.stats["list"] >= lists:
            return
        await anyio.sleep(0.01)  # a benchmark may poll; tests never do


async def measure(jobs: int, old: bool, cycles: int, tmp: Path, sim: Simulator, url: str) -> str:
    """One daemon on ``jobs`` jobs: its figures as one printed line."""
    sim.stats.reset()
    baseline_pages = -(-jobs // 100)
    process = await _start(_config(tmp, url, 0.1), old)
    try:
        # From the first list request (the interpreter's start left out) to the first one after
        # the baseline's pages, which starts the first steady cycle.
        await _until(sim, 1)
        started = time.perf_counter()
        await _until(sim, baseline_pages + 1)
        baseline = time.perf_counter() - started
        await _until(sim, baseline_pages + 4)
        lists, total, cpu = sim.stats["list"], sim.stats.total, _cpu_seconds(process.pid)
        await _until(sim, lists + cycles)
        d_lists = sim.stats["list"] - lists
        per_cycle = (sim.stats.total - total) / d_lists
        cpu_ms = (_cpu_seconds(process.pid) - cpu) / d_lists * 1000
        rss = _rss_mib(process.pid)
    finally:
        process.terminate()
        await process.wait()
    return (
        f"  {'old' if old else 'new'}  {jobs:7,} jobs  {per_cycle:5.2f} req/cycle"
        f"  {cpu_ms:6.1f} ms CPU/cycle  baseline {baseline:5.1f} s  RSS {rss:6.1f} MiB"
    )


async def delay(old: bool, changes: int, tmp: Path, sim: Simulator, url: str) -> str:
    """Restart on the state file with a 1 s interval; time status changes to their journal rows."""
    running = [j for j in sim.job_ids() if sim.job(j)["status"] == "running"]
    sim.stats.reset()
    process = await _start(_config(tmp, url, 1.0), old)
    delays: list[float] = []
    rng = random.Random(7)
    try:
        await _until(sim, 3)  # the first cycle after loading, and two steady ones
        db = sqlite3.connect(f"file:{tmp}/state.db?mode=ro", uri=True)
        try:
            for number, job_id in enumerate(running[:changes]):
                if number % 2:
                    await anyio.sleep(rng.uniform(0.0, 1.0))
                else:
                    # Right after a cycle read its page: the worst case, a whole interval.
                    await _until(sim, sim.stats["list"] + 1)
                sim.set_status(job_id, "succeeded")
                changed = time.perf_counter()
                query = "SELECT 1 FROM journal WHERE job_id = ? LIMIT 1"
                while True:
                    if db.execute(query, (job_id,)).fetchone():
                        break
                    await anyio.sleep(0.002)
                delays.append(time.perf_counter() - changed)
        finally:
            db.close()
        rss = _rss_mib(process.pid)
    finally:
        process.terminate()
        await process.wait()
    worst, anytime = delays[0::2], delays[1::2]
    return (
        f"  {'old' if old else 'new'}  change -> journal (1 s interval): at a random moment"
        f" median {statistics.median(anytime) * 1000:4.0f} ms; just after a cycle's list"
        f" request median {statistics.median(worst) * 1000:4.0f} ms, max"
        f" {max(worst) * 1000:4.0f} ms (goal: under 1100 ms); RSS after the restart"
        f" {rss:.1f} MiB"
    )


async def main() -> None:
    """Print the figures, old beside new, for every size."""
    quick = "--quick" in sys.argv
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    print("a daemon on a mostly finished history (20 running jobs, the rest finished):")
    for jobs in sizes:
        for old in (True, False):
            sim = Simulator(ManualClock(START), seed=2)
            sim.add_jobs(jobs - ACTIVE, "succeeded", start=START - 10_000_000, interval=60)
            sim.add_jobs(ACTIVE, "running", start=START - 1_000, interval=1)
            async with serve_simulator(sim, port=0) as url:
                with TemporaryDirectory() as name:
                    tmp = Path(name)
                    print(await measure(jobs, old, 40, tmp, sim, url), flush=True)
                    if jobs == sizes[-1]:
                        print(await delay(old, 16, tmp, sim, url), flush=True)


if __name__ == "__main__":
    configure_logging("warning", "console")
    anyio.run(main)
