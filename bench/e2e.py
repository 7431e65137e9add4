"""The whole path, as a user runs it: a burst of status changes to webhook receipts.

Run: .venv/bin/python bench/e2e.py [--rounds N] [--jobs N] [--interval SECONDS]

Three processes besides this one: the simulator (``bench/e2e_sim.py``, ``JOBS`` running jobs),
the daemon as a user starts it (``python -m watcher run --config ...``: the simulator as its
source on loopback, ``poll_interval`` 0.5 s by default, ``progress = false``, one webhook sink,
unsigned) and the receiver (``bench/e2e_receiver.py``: ``bench/receiver.py``, a raw asyncio
server answering 200 in microseconds, recording each request's arrival).

Each round starts a fresh simulator, daemon and state file; once the daemon has its baseline
and has polled a few times, all ``JOBS`` jobs finish at once at a random moment of the poll
interval. Printed per round and as medians: the burst's throughput (events from the first
receipt to the last, and from the change to the last receipt) against bare httpx loops (one
task, and 8 tasks on one client) posting the same bodies (the journal's, read from the state
file) to the same receiver, and the latency from the change to each receipt (median, p99).
The goals (issue 11): a ratio to the bare sequential loop of at least 0.8; a median latency
under one poll interval plus the burst's delivery time at the bare sequential loop's rate.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import IO

import anyio
import httpx
from httpx_aiohttp import AiohttpTransport

HERE = Path(__file__).parent


class Child:
    """A child process answering one stdout line per command line written to its stdin."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.first = self.ask(None)

    def ask(self, command: str | None) -> str:
        """Send ``command`` (none: only read) and return the answer's line."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        if command is not None:
            stdin.write(command + "\n")
            stdin.flush()
        line = stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{self.process.args!r} ended without an answer")
        return line

    def close(self) -> None:
        """End the child: close its stdin (which stops it), then terminate if it lingers."""
        stdin: IO[str] | None = self.process.stdin
        if stdin is not None:
            stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait()


def _config(tmp: Path, source: str, sink: str, interval: float) -> Path:
    config = tmp / "ftwatch.toml"
    config.write_text(
        f"""
[state]
path = "{tmp}/state.db"
[logging]
level = "warning"
[[sources]]
name = "sim"
base_url = "{source}"
poll_interval = {interval}
progress = false
max_pages = 100
[[sinks]]
name = "hook"
type = "webhook"
url = "{sink}/hook"
"""
    )
    return config


def pct(values: Sequence[float], p: float) -> float:
    """The ``p`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bare(url: str, bodies: Sequence[bytes], tasks: int, aio: bool = False) -> float:
    """Events/s of a plain httpx loop posting ``bodies`` with ``tasks`` tasks on one client.

    ``aio``: on httpx-aiohttp's transport, the one the daemon's sinks use (for context).
    """
    queue = iter(bodies)
    headers = {"content-type": "application/json"}
    transport = AiohttpTransport() if aio else None
    async with httpx.AsyncClient(timeout=10, transport=transport) as client:

        async def poster() -> None:
            for body in queue:
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(poster)
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed


def _journal(db: Path) -> list[str]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT body FROM journal ORDER BY seq")]
    finally:
        connection.close()


def one_round(receiver: Child, url: str, jobs: int, interval: float, rng: random.Random) -> dict:
    """One burst through a fresh simulator and daemon; its figures by name."""
    sim = Child([sys.executable, str(HERE / "e2e_sim.py"), str(jobs)])
    try:
        with TemporaryDirectory() as name:
            tmp = Path(name)
            config = _config(tmp, sim.first, url, interval)
            daemon = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
            )
            try:
                # The baseline's pages, then a few steady cycles.
                pages = -(-jobs // 100)
                while int(sim.ask("lists")) < pages + 3 * pages:
                    time.sleep(0.05)  # a benchmark may poll; tests never do
                receiver.ask("dump")
                time.sleep(rng.uniform(0, interval))  # a random moment of the interval
                changed = float(sim.ask("flip"))
                # Every job's change journaled and every journaled event received.
                while True:
                    time.sleep(0.1)
                    bodies = _journal(tmp / "state.db")
                    if len(bodies) >= jobs and int(receiver.ask("count")) >= len(bodies):
                        break
                    if time.monotonic() - changed > 60:
                        raise RuntimeError("the burst was not delivered within 60 s")
                arrivals = json.loads(receiver.ask("dump"))
            finally:
                daemon.terminate()
                daemon.wait()
    finally:
        sim.close()
    latencies = [arrival - changed for arrival in arrivals]
    encoded = [body.encode() for body in bodies]
    first, last = min(arrivals), max(arrivals)
    figures = {
        "events": len(arrivals),
        "rate": len(arrivals) / (last - first),
        "whole": len(arrivals) / (last - changed),
        "first": first - changed,
        "p50": statistics.median(latencies),
        "p99": pct(latencies, 99),
        "bare1": anyio.run(bare, url + "/bare", encoded, 1),
        "bare8": anyio.run(bare, url + "/bare", encoded, 8),
        "aio8": anyio.run(bare, url + "/bare", encoded, 8, True),
    }
    receiver.ask("dump")
    return figures


def main() -> None:
    """Print each round's figures, then the medians and the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    rng = random.Random(3)
    receiver = Child([sys.executable, str(HERE / "e2e_receiver.py")])
    rounds = []
    try:
        print(f"{args.jobs} jobs finish at once; poll_interval {args.interval} s; one webhook sink")
        for number in range(args.rounds):
            f = one_round(receiver, receiver.first, args.jobs, args.interval, rng)
            rounds.append(f)
            print(
                f"  round {number + 1}: {f['events']} events; {f['rate']:6.0f} events/s first to"
                f" last receipt ({f['whole']:5.0f} from the change); bare httpx"
                f" {f['bare1']:5.0f}/s (1 task), {f['bare8']:5.0f}/s (8 tasks), {f['aio8']:5.0f}/s"
                f" (8 tasks, aiohttp transport); latency first"
                f" {f['first'] * 1000:4.0f} ms, median {f['p50'] * 1000:5.0f} ms,"
                f" p99 {f['p99'] * 1000:5.0f} ms",
                flush=True,
            )
    finally:
        receiver.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    ratio, whole = med("rate") / med("bare1"), med("whole") / med("bare1")
    budget = args.interval + med("events") / med("bare1")
    print(
        f"medians: {med('rate'):.0f} events/s (from the change: {med('whole'):.0f}) against a bare"
        f" sequential httpx loop's {med('bare1'):.0f} (8 tasks: {med('bare8'):.0f}; 8 tasks on"
        f" the aiohttp transport the sinks use: {med('aio8'):.0f})"
    )
    print(
        f"  ratio to the sequential loop {ratio:.2f} (goal >= 0.8; from the change {whole:.2f});"
        f" to 8 tasks {med('rate') / med('bare8'):.2f}; to 8 on aiohttp"
        f" {med('rate') / med('aio8'):.2f}"
    )
    print(
        f"  change -> receipt: median {med('p50') * 1000:.0f} ms, p99 {med('p99') * 1000:.0f} ms"
        f" (goal: median under {budget * 1000:.0f} ms, one interval plus the burst at the"
        " sequential loop's rate)"
    )


if __name__ == "__main__":
    main()
