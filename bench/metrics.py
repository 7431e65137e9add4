"""What the operations endpoint costs the daemon: poll cycle time without and with scrapes.

Run: .venv/bin/python bench/metrics.py [seconds per run, default 20]

The simulator (on a loopback socket) holds 5,000 jobs, 50 of them running, and a logfile sink
takes every event. The watcher runs back-to-back steady-state poll cycles for the same wall
time three ways, in interleaved rounds: no endpoint at all, the endpoint on but never scraped,
and scraped once a second by a separate process (as Prometheus would). Printed side by side:
median and p95 cycle time, cycles run, and the ratio to the run without an endpoint; then what
one scrape took as the scraper saw it and the size of the exposition.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import anyio.lowlevel

from watcher import Config, ServerConfig, SinkConfig, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator
from watcher.sinks import sink_plugin

START = 1_750_000_000.0
#: Each mode runs this many times, interleaved with the others.
ROUNDS = 5

# The scraper: a separate process, so its own work does not land on the daemon's loop.
SCRAPER = """
import sys, time, httpx
url, seconds = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
until = time.time() + seconds
took, size = [], 0
with httpx.Client() as client:
    while time.time() < until:
        started = time.perf_counter()
        body = client.get(url).content
        took.append(time.perf_counter() - started)
        size = len(body)
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))
took.sort()
if took:
    print(len(took), took[len(took) // 2] * 1000, took[-1] * 1000, size)
"""


def logfile(path: Path) -> SinkConfig:
    """A logfile sink writing to ``path``."""
    model = sink_plugin("logfile").config_model
    return model.model_validate({"name": "audit", "type": "logfile", "path": str(path)})


async def run(url: str, tmp: Path, mode: str, seconds: float) -> tuple[list[float], str]:
    """Poll cycles back to back for ``seconds``; return their durations and the scraper's line."""
    listen = None if mode == "off" else "127.0.0.1:0"
    source = SourceConfig(name="sim", base_url=url, jitter=0.0, max_pages=100)
    config = Config(
        sources=[source],
        sinks=[logfile(tmp / f"{mode}.jsonl")],
        server=ServerConfig(listen=listen),
    )
    durations: list[float] = []
    scraped = ""
    async with Watcher(config, state_path=tmp / f"{mode}.db", autostart=False) as watcher:
        await watcher.poll_once()  # the baseline, not measured
        scraper = None
        output = b""
        if mode == "scraped":
            command = [sys.executable, "-c", SCRAPER, f"{watcher.ops_url}/metrics", str(seconds)]
            scraper = await anyio.open_process(command)
            assert scraper.stdout is not None
            # Its start (an interpreter, httpx) is not the endpoint's cost: wait it out.
            while b"\n" not in output:
                output += await scraper.stdout.receive()
        until = time.time() + seconds
        while time.time() < until:
            started = time.perf_counter()
            await watcher.poll_once()
            await watcher.flush()
            durations.append(time.perf_counter() - started)
            await anyio.lowlevel.checkpoint()  # the endpoint may answer between cycles
        if scraper is not None:
            async with scraper:
                assert scraper.stdout is not None
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        output += await scraper.stdout.receive()
                await scraper.wait()
            # After "ready", one line of figures (none from a run too short for a scrape).
            scraped = output.decode().partition("\n")[2].strip()
    return durations, scraped


async def main(seconds: float) -> None:
    """Print the three runs side by side."""
    configure_logging(level="error")
    sim = Simulator(ManualClock(START), seed=5)
    sim.add_jobs(4_950, "succeeded", start=START - 10_000_000, interval=60)
    sim.add_jobs(50, "running", start=START - 1_000, interval=1)
    results: dict[str, list[float]] = {"off": [], "idle": [], "scraped": []}
    scrapes: list[str] = []
    async with serve_simulator(sim, port=0) as url:
        with tempfile.TemporaryDirectory() as tmp:
            # Interleaved rounds, so that load from elsewhere on the machine hits every mode.
            for _ in range(ROUNDS):
                for mode, durations in results.items():
                    more, line = await run(url, Path(tmp), mode, seconds / ROUNDS)
                    durations.extend(more)
                    if line:
                        scrapes.append(line)
    base = statistics.median(results["off"])
    print(f"steady-state poll cycle over 5,000 jobs (50 running), {seconds:g} s per run")
    print(f"{'endpoint':<24}{'cycles':>8}{'median ms':>12}{'p95 ms':>10}{'ratio':>8}")
    labels = {"off": "off", "idle": "on, not scraped", "scraped": "scraped every second"}
    for mode, durations in results.items():
        durations.sort()
        median = statistics.median(durations)
        p95 = durations[int(len(durations) * 0.95)]
        print(
            f"{labels[mode]:<24}{len(durations):>8}{median * 1000:>12.2f}{p95 * 1000:>10.2f}"
            f"{median / base:>8.2f}"
        )
    if scrapes:
        rows = [line.split() for line in scrapes]
        count = sum(int(row[0]) for row in rows)
        median_ms = statistics.median(float(row[1]) for row in rows)
        worst_ms = max(float(row[2]) for row in rows)
        print(
            f"scrapes: {count}, each {median_ms:.1f} ms median (of rounds), {worst_ms:.1f} ms "
            f"at worst, {int(rows[-1][3]):,} bytes"
        )


if __name__ == "__main__":
    anyio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
