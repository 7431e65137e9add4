"""Delivery cost: webhook throughput, journal-to-2xx latency, and isolation from a broken sink.

Run: .venv/bin/python bench/delivery.py

Everything goes to one receiver process (bench/receiver.py, a raw asyncio server answering 200)
on a loopback port, so the receiver never shares our event loop and is not the ceiling.

1. Throughput: 3000 events over 300 jobs, journaled in an on-disk SQLite store, delivered by
   one SinkWorker with a WebhookSink (concurrency 8, the default), versus a bare httpx loop
   posting the same bodies with 8 tasks over one client, and sequentially; then both again
   with httpx running on aiohttp (``httpx-aiohttp``'s transport, as the openai SDK offers).
2. Latency from an event's commit to its receiver's 2xx, with the worker running and one event
   committed every 3 ms.
3. Isolation: that trickle's p99 for a healthy sink alone, beside a second sink whose receiver
   never answers, and beside one whose receiver refuses connections (its circuit opens after
   five refusals, then it probes once per interval: watcher.breaker).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import anyio
import httpx
from httpx_aiohttp import AiohttpTransport

from ftwatch_webhook import WebhookConfig, WebhookSink
from watcher.diff import JobState, diff
from watcher.dispatch import SinkWorker
from watcher.events import BaseEvent
from watcher.logs import configure_logging
from watcher.models import FineTuningJob
from watcher.store import Store

JOBS = 300
PER_JOB = 10  # events per job: a baseline, then queued <-> running ten times
CONCURRENCY = 8
TRICKLE_EVENTS = 2000
TRICKLE_JOBS = 100
TRICKLE_GAP = 0.003
REPEATS = 3
ISOLATION_REPEATS = 7  # a p99 is noisy: more alternating runs, and the median of them
ROOT = Path(__file__).resolve().parent


# -- events -----------------------------------------------------------------------------------


def _job(job_id: str, status: str) -> FineTuningJob:
    return FineTuningJob.model_validate(
        {
            "id": job_id,
            "object": "fine_tuning.job",
            "status": status,
            "model": "gpt-4o-mini-2024-07-18",
            "created_at": 1_700_000_000,
        }
    )


def events_for(job_id: str, count: int, *, source: str = "bench") -> list[BaseEvent]:
    """``count`` status_changed events of one job, as the poller's diff makes them.

    Observed just now, so that a failing sink retries them rather than finding them older
    than ``retry.max_age`` and dead-lettering them at once.
    """
    start = time.time()
    statuses = ["validating_files"] + [("queued", "running")[i % 2] for i in range(count)]
    state: JobState | None = None
    out: list[BaseEvent] = []
    for i, status in enumerate(statuses):
        state, events = diff(
            state, _job(job_id, status), source=source, now=start + i / 1000, announce_new=False
        )
        out.extend(events)
    return out


def interleaved(jobs: int, per_job: int) -> list[BaseEvent]:
    """Every job's events, round-robin across jobs (as polling cycles would journal them)."""
    per = [events_for(f"ftjob-{j:05d}", per_job) for j in range(jobs)]
    return [per[j][i] for i in range(per_job) for j in range(jobs)]


# -- the receiver process ---------------------------------------------------------------------


@contextmanager
def receiver() -> Iterator[str]:
    """Start bench/receiver.py on a free port; yield its base URL; terminate it at the end."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "receiver.py"), "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the receiver did not start (printed {url!r})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hook(name: str, url: str, *, timeout: float = 10.0) -> WebhookConfig:
    """A webhook sink config with the default concurrency."""
    return WebhookConfig(name=name, type="webhook", url=url, timeout=timeout)


# -- 1. throughput ----------------------------------------------------------------------------


async def ours(
    url: str, events: Sequence[BaseEvent], tmp: Path, run: int, *, aio: bool = False
) -> float:
    """Events/s: journal ``events`` (untimed), then time one SinkWorker delivering them all.

    ``aio``: the sink as it is, its httpx clients on aiohttp's transport (``httpx-aiohttp``,
    the default in watcher.http); otherwise on httpx's own transport, as it was.
    """
    config = hook("hook", url)
    transport = None if aio else httpx.AsyncHTTPTransport()
    async with await Store.open(tmp / f"throughput-{run}-{aio}.db") as store:
        await store.set_sinks(["hook"], now=time.time())
        for start in range(0, len(events), JOBS):
            await store.commit(
                "bench",
                states={},
                events=events[start : start + JOBS],
                now=time.time(),
            )
        async with WebhookSink(config, transport=transport) as sink:
            worker = SinkWorker(sink, config, store)
            started = time.perf_counter()
            while await store.pending("hook", limit=1):
                await worker.drain_once()
            elapsed = time.perf_counter() - started
    assert worker.delivered == len(events), worker.delivered
    return len(events) / elapsed


async def bare(
    url: str,
    bodies: Sequence[bytes],
    tasks: int,
    headers: Sequence[dict[str, str]] | None = None,
    *,
    aio: bool = False,
) -> float:
    """Events/s of a plain httpx loop posting ``bodies`` with ``tasks`` tasks on one client.

    ``headers`` (one dict per body, built before timing) sends the same headers as our sink.
    """
    plain = {"content-type": "application/json"}
    queue = iter(zip(bodies, headers or [plain] * len(bodies), strict=True))
    transport = AiohttpTransport() if aio else None
    async with httpx.AsyncClient(timeout=10, transport=transport) as client:

        async def poster() -> None:
            for body, head in queue:
                response = await client.post(url, content=body, headers=head)
                response.raise_for_status()

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(poster)
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed


async def throughput(url: str, tmp: Path) -> None:
    """Print events/s for ours and the bare loops, each measured REPEATS times alternately."""
    events = interleaved(JOBS, PER_JOB)
    bodies = [e.to_json().encode() for e in events]
    # The exact headers our sink sends (webhook-id, -timestamp, user-agent), built untimed.
    sink_headers = [
        {
            "content-type": "application/json",
            "webhook-id": e.id,
            "webhook-timestamp": str(int(time.time())),
            "user-agent": "ftwatch/bench",
        }
        for e in events
    ]
    results: dict[str, list[float]] = {
        "ours": [],
        "bare8": [],
        "bare8h": [],
        "bare1": [],
        "ours_aio": [],
        "bare8_aio": [],
    }
    await bare(url, bodies[:200], CONCURRENCY)  # warm both processes up
    for run in range(REPEATS):
        results["ours"].append(await ours(url, events, tmp, run))
        results["bare8"].append(await bare(url, bodies, CONCURRENCY))
        results["bare8h"].append(await bare(url, bodies, CONCURRENCY, sink_headers))
        results["bare1"].append(await bare(url, bodies, 1))
        results["ours_aio"].append(await ours(url, events, tmp, run, aio=True))
        results["bare8_aio"].append(await bare(url, bodies, CONCURRENCY, aio=True))
    best = {k: max(v) for k, v in results.items()}
    n = len(events)
    print(f"1. throughput, {n} events over {JOBS} jobs, best of {REPEATS} alternating runs")
    for key, label in (
        ("ours", f"SinkWorker + WebhookSink on httpx's transport (concurrency {CONCURRENCY})"),
        ("bare8", f"bare httpx, {CONCURRENCY} tasks on one client"),
        ("bare8h", f"bare httpx, {CONCURRENCY} tasks, same headers as the sink"),
        ("bare1", "bare httpx, sequential"),
        ("ours_aio", "SinkWorker + WebhookSink on httpx-aiohttp's transport (default)"),
        ("bare8_aio", f"bare httpx on httpx-aiohttp's transport, {CONCURRENCY} tasks"),
    ):
        runs = ", ".join(f"{x:.0f}" for x in results[key])
        print(f"  {label:<64} {best[key]:7.0f} events/s  (runs: {runs})")
    ratio8 = best["ours"] / best["bare8"]
    print(f"  ratio ours/bare({CONCURRENCY})           {ratio8:5.2f}  (goal >= 0.9)")
    ratio8h = best["ours"] / best["bare8h"]
    print(f"  ratio ours/bare({CONCURRENCY}, same headers) {ratio8h:5.2f}")
    print(f"  ratio ours/bare(sequential)  {best['ours'] / best['bare1']:5.2f}")
    print(f"  ratio ours(aiohttp)/ours     {best['ours_aio'] / best['ours']:5.2f}")
    aio = best["ours_aio"] / best["bare8_aio"]
    print(f"  ratio ours(aiohttp)/bare(aiohttp, {CONCURRENCY}) {aio:5.2f}")


# -- 2 and 3. latency -------------------------------------------------------------------------


class TimedSink(WebhookSink):
    """A WebhookSink that records when each event's delivery got its 2xx."""

    def __init__(self, config: WebhookConfig) -> None:
        super().__init__(config)
        self.acked: dict[str, float] = {}
        self.count = 0
        self.target = 0
        self.all_acked = anyio.Event()

    async def send(self, event: BaseEvent) -> None:
        """Send, then timestamp the 2xx."""
        await super().send(event)
        self.acked[event.id] = time.perf_counter()
        if len(self.acked) >= self.target:
            self.all_acked.set()


async def trickle(url: str, tmp: Path, name: str, *, beside: str | None = None) -> list[float]:
    """Commit one event every TRICKLE_GAP s with the worker(s) running; return latencies (ms).

    A latency runs from just before the commit call to the healthy sink's 2xx, so it includes
    the commit itself. ``beside`` is the URL of a second sink that never delivers (a receiver
    that never answers, or a port that refuses connections), run alongside.
    """
    events = interleaved(TRICKLE_JOBS, TRICKLE_EVENTS // TRICKLE_JOBS)
    healthy_config = hook("healthy", url)
    configs = [healthy_config]
    if beside is not None:
        configs.append(hook("broken", beside, timeout=30))
    committed: dict[str, float] = {}
    async with await Store.open(tmp / f"{name}.db") as store:
        healthy = TimedSink(healthy_config)
        healthy.target = len(events)
        sinks: list[WebhookSink] = [healthy]
        sinks += [WebhookSink(c) for c in configs[1:]]
        workers = [SinkWorker(s, c, store) for s, c in zip(sinks, configs, strict=True)]
        await store.set_sinks([c.name for c in configs], now=time.time())
        try:
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.run)
                for event in events:
                    committed[event.id] = time.perf_counter()
                    await store.commit("bench", states={}, events=[event], now=time.time())
                    for worker in workers:
                        worker.wake()
                    await anyio.sleep(TRICKLE_GAP)
                with anyio.fail_after(30):
                    await healthy.all_acked.wait()
                tg.cancel_scope.cancel()
        finally:
            for sink in sinks:
                await sink.aclose()
        if beside is not None:
            assert workers[1].delivered == 0, "the broken sink delivered something"
    return [(healthy.acked[i] - committed[i]) * 1000 for i in committed]


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def latency(url: str, tmp: Path) -> None:
    """Print p50/p99 of commit-to-2xx, then the healthy sink's p99 alone and beside a broken one."""
    lat = await trickle(url, tmp, "latency")
    print(
        f"2. commit -> 2xx latency, {len(lat)} events, one commit every"
        f" {TRICKLE_GAP * 1000:.0f} ms over {TRICKLE_JOBS} jobs"
    )
    print(f"  p50 {pct(lat, 50):6.2f} ms   p99 {pct(lat, 99):6.2f} ms   max {max(lat):6.2f} ms")

    # A port that refuses connections: bound, then closed, so nothing listens on it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}"
    runs: dict[str, list[float]] = {"alone": [], "hung": [], "refused": []}
    for run in range(ISOLATION_REPEATS):
        runs["alone"].append(pct(await trickle(url, tmp, f"alone-{run}"), 99))
        runs["hung"].append(pct(await trickle(url, tmp, f"hung-{run}", beside=f"{url}/hang"), 99))
        runs["refused"].append(pct(await trickle(url, tmp, f"refused-{run}", beside=refused), 99))
    median = {k: statistics.median(v) for k, v in runs.items()}
    print(f"3. isolation: healthy sink's p99, median of {ISOLATION_REPEATS} alternating runs")
    for key, label in (
        ("alone", "alone"),
        ("hung", "beside a sink whose receiver never answers"),
        ("refused", "beside a sink whose receiver refuses connections"),
    ):
        shown = ", ".join(f"{x:.2f}" for x in runs[key])
        print(f"  {label:<50} {median[key]:6.2f} ms  (runs: {shown})")
    print(f"  ratio hung/alone      {median['hung'] / median['alone']:5.2f}  (goal < 1.2)")
    print(f"  ratio refused/alone   {median['refused'] / median['alone']:5.2f}  (goal < 1.2)")


async def main(log_stream: TextIO) -> None:
    """Run the three measurements against one receiver process, logging to ``log_stream``."""
    # As the daemon runs: debug lines (one per delivery) filtered out before rendering, and
    # warnings (the broken sinks' retries) rendered, though to nowhere, to keep the figures.
    configure_logging("warning", "json", stream=log_stream)
    with receiver() as url, tempfile.TemporaryDirectory() as tmp:
        await throughput(url, Path(tmp))
        await latency(url, Path(tmp))


if __name__ == "__main__":
    with open(os.devnull, "w") as devnull:
        anyio.run(main, devnull, backend="asyncio")
