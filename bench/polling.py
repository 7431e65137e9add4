"""Polling cost: API requests per steady-state cycle, and the CPU of a cycle over 10,000 jobs.

Run: .venv/bin/python bench/polling.py

1. With 250 finished jobs and 3 recent active ones on the simulator (over a real socket), the
   requests one steady-state cycle of ours costs, side by side with two naive loops written
   with the official ``openai`` SDK: (a) list every page, then retrieve every non-terminal job;
   (b) retrieve every job it knows.
2. The CPU of one cycle over 10,000 unchanged jobs (as the simulator renders them: 99 in 100
   finished), from the parsed pages to the states and events: old (validate every job, diff
   and compare it, pinned in ``bench/before.py``) beside new (fingerprint each raw object,
   validate and diff only what changed). Parsing the pages' JSON, the same for both, is
   printed apart.
3. A burst: 10,000 running jobs all finish in one cycle, 20,000 events diffed, serialised and
   committed to a real state file as the store does it (each event's journal text, each
   changed job's snapshot, one transaction): old (wire names looked up per event,
   ``json.dumps`` of ``model_dump``, one ``execute`` per journal entry) beside new (names looked
   up once, ``pydantic_core.to_json`` over the models, the known ids found by chunked
   ``IN`` reads and the rest written with one ``executemany``).
4. The API client's own cost: the simulator in its own process (``bench/e2e_sim.py``, 1,000
   running jobs) and the client here reading its 10 pages of 100 jobs over and over, on
   httpx's own transport beside httpx on aiohttp's (``httpx-aiohttp``, what the client now
   uses): CPU of this process per page (requesting, reading and parsing the page) and the
   wall time per page.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import before  # the pinned old path, beside this file
from e2e import Child  # a child process answering commands, beside this file
from openai import AsyncOpenAI

from watcher import SourceConfig, Watcher
from watcher.client import APIClient
from watcher.clock import ManualClock
from watcher.diff import JobState
from watcher.events import BaseEvent
from watcher.http import AsyncHTTPTransport, api_transport
from watcher.logs import configure_logging
from watcher.simulator import Simulator, serve_simulator
from watcher.snapshots import Fingerprints, JobsRead, diff_jobs
from watcher.store import journal
from watcher.store.schema import connect

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


def _pages(sim: Simulator, ids: list[str]) -> list[bytes]:
    """The list endpoint's bodies for these jobs, 100 a page, as the client receives them."""
    return [
        json.dumps({"object": "list", "data": [sim.job(j) for j in ids[i : i + 100]]}).encode()
        for i in range(0, len(ids), 100)
    ]


def _parse(pages: list[bytes]) -> list[Any]:
    """What the client's JSON parser hands on (shared by both paths, so timed apart)."""
    return [item for body in pages for item in json.loads(body)["data"]]


def _old(
    states: dict[str, JobState], items: list[Any], now: float, announce: bool = True
) -> list[BaseEvent]:
    changed, events = before.cycle(states, items, source="bench", now=now, announce=announce)
    states.update(changed)
    return events


class _New:
    """The poller's path now: fingerprints first, then validation and diff for what changed."""

    def __init__(self) -> None:
        self.prints = Fingerprints()
        #: The last call's changed states, whole (memory keeps them lean once settled).
        self.changed: dict[str, JobState] = {}

    def __call__(
        self, states: dict[str, JobState], items: list[Any], now: float, announce: bool = True
    ) -> list[BaseEvent]:
        read = JobsRead()
        self.prints.read(items, states, read, source="bench")
        changed, events = diff_jobs(
            states, read, source="bench", now=now, announce_new=announce, marks=self.prints.marks
        )
        self.changed = dict(changed)
        self.prints.settle(read, changed, states)
        return events


def _cpu_ms(work: Callable[..., object], *args: Any) -> float:
    t0 = time.process_time()
    work(*args)
    return (time.process_time() - t0) * 1000


def unchanged_cycle(n: int = 10_000, repeat: int = 9) -> None:
    """Print the CPU of one cycle's validation and diff over ``n`` unchanged jobs, old and new."""
    sim = Simulator(ManualClock(START), seed=3)
    ids = sim.add_jobs(n - n // 100, "succeeded", start=START - 10_000_000, interval=60)
    ids += sim.add_jobs(n // 100, "running", start=START - 1_000, interval=1)
    pages = _pages(sim, ids)
    old_states: dict[str, JobState] = {}
    new_states: dict[str, JobState] = {}
    new = _New()
    # The baseline, from which the new path has its fingerprints.
    _old(old_states, _parse(pages), 1.0, announce=False)
    new(new_states, _parse(pages), 1.0, announce=False)
    old_ms, new_ms, parse_ms, old_nogc, new_nogc = [], [], [], [], []
    for i in range(repeat):
        old_ms.append(_cpu_ms(_old, old_states, _parse(pages), 3.0 + i))
        new_ms.append(_cpu_ms(new, new_states, _parse(pages), 3.0 + i))
        parse_ms.append(_cpu_ms(_parse, pages))
        # The same with the garbage collector paused, to show what is left without it (the old
        # path's thousands of new models per cycle are what set the collector off).
        gc.disable()
        try:
            old_nogc.append(_cpu_ms(_old, old_states, _parse(pages), 3.0 + i))
            new_nogc.append(_cpu_ms(new, new_states, _parse(pages), 3.0 + i))
        finally:
            gc.enable()
    old, fresh = statistics.median(old_ms), statistics.median(new_ms)
    old_bare, new_bare = statistics.median(old_nogc), statistics.median(new_nogc)
    parse = statistics.median(parse_ms)
    print(f"one cycle over {n:,} unchanged jobs, validation and diff (CPU, median of {repeat}):")
    print(f"  old: validate every job, diff and compare   {old:8.1f} ms")
    ratio = fresh / old
    print(f"  new: fingerprint, skip what did not change  {fresh:8.1f} ms  ({ratio:.2f} of old)")
    print(f"  (both: parsing the pages' JSON first        {parse:8.1f} ms)")
    print(
        f"  (garbage collector paused: old {old_bare:.1f} ms, new {new_bare:.1f} ms,"
        f" {new_bare / old_bare:.2f} of old)"
    )


def _old_burst(
    states: dict[str, JobState], items: list[Any], conn: sqlite3.Connection
) -> tuple[int, float, float]:
    """The old path's burst; returns the events and the CPU ms after the diff and serialising."""
    t0 = time.process_time()
    changed, events = before.cycle(states, items, source="bench", now=2.0, announce=True)
    t1 = time.process_time()
    snapshots, entries = before.serialise_cycle("bench", list(changed.items()), events, 2.0)
    t2 = time.process_time()
    before.write_cycle(conn, snapshots, entries)
    return len(events), (t1 - t0) * 1000, (t2 - t0) * 1000


def _new_burst(
    path: _New, states: dict[str, JobState], items: list[Any], conn: sqlite3.Connection
) -> tuple[int, float, float]:
    """The new path's burst, as the poller and ``SQLiteStore.commit`` run it."""
    t0 = time.process_time()
    read = JobsRead()
    path.prints.read(items, states, read, source="bench")
    changed, events = diff_jobs(
        states, read, source="bench", now=2.0, announce_new=True, marks=path.prints.marks
    )
    t1 = time.process_time()
    snapshots, entries = journal.serialise_cycle("bench", list(changed.items()), events, 2.0)
    t2 = time.process_time()
    journal.write_cycle(conn, "bench", snapshots, entries, 2.0, None, None)
    return len(events), (t1 - t0) * 1000, (t2 - t0) * 1000


def burst(n: int = 10_000, repeat: int = 5) -> None:
    """Print the CPU of a cycle in which ``n`` jobs finish: diffed, serialised and committed."""
    sim = Simulator(ManualClock(START), seed=4)
    ids = sim.add_jobs(n, "running", start=START - 100_000, interval=1)
    running = _pages(sim, ids)
    for job_id in ids:
        sim.set_status(job_id, "succeeded")
    finished = _pages(sim, ids)

    totals: dict[str, list[float]] = {"old": [], "new": []}
    diffed: dict[str, list[float]] = {"old": [], "new": []}
    serialised: dict[str, list[float]] = {"old": [], "new": []}
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for name in ("old", "new"):
                # A fresh state file per run, holding the running jobs' baseline snapshots.
                _, conn = connect(Path(tmp) / f"{name}{i}.db")
                states: dict[str, JobState] = {}
                path = _New()
                if name == "old":
                    _old(states, _parse(running), 1.0, False)
                else:
                    path(states, _parse(running), 1.0, False)
                # The store gets whole snapshots; the new path's memory holds them lean.
                stored = states if name == "old" else path.changed
                snapshots, _ = journal.serialise_cycle("bench", list(stored.items()), [], 1.0)
                journal.write_cycle(conn, "bench", snapshots, [], 1.0, True, None)
                items = _parse(finished)
                t0 = time.process_time()
                if name == "old":
                    count, diff_ms, serial_ms = _old_burst(states, items, conn)
                else:
                    count, diff_ms, serial_ms = _new_burst(path, states, items, conn)
                totals[name].append((time.process_time() - t0) * 1000)
                diffed[name].append(diff_ms)
                serialised[name].append(serial_ms)
                conn.close()
    old, fresh = statistics.median(totals["old"]), statistics.median(totals["new"])
    print(f"a burst: {n:,} jobs finish, {count:,} events diffed, serialised and committed")
    print(f"(CPU, median of {repeat}, into a real state file):")
    print(f"  old: model_dump + json.dumps, execute per event {old:8.1f} ms")
    ratio = fresh / old
    print(
        f"  new: pydantic_core.to_json, executemany         {fresh:8.1f} ms  ({ratio:.2f} of old)"
    )
    for label, parts in (("diffed", diffed), ("diffed and serialised", serialised)):
        a, b = statistics.median(parts["old"]), statistics.median(parts["new"])
        print(f"  (up to {label}: old {a:.1f} ms, new {b:.1f} ms, {b / a:.2f} of old)")
    a = old - statistics.median(serialised["old"])
    b = fresh - statistics.median(serialised["new"])
    print(f"  (the commit alone: old {a:.1f} ms, new {b:.1f} ms, {b / a:.2f} of old)")


async def _read_pages(client: APIClient, rounds: int) -> tuple[float, float, int]:
    """Read every page ``rounds`` times; return the CPU and wall seconds and the pages read."""
    pages = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        after = None
        while True:
            page = await client.list_job_objects(limit=100, after=after)
            pages += 1
            if not page.has_more:
                break
            after = page.last_id
    return time.process_time() - cpu, time.perf_counter() - wall, pages


async def client_cost(jobs: int = 1_000, rounds: int = 20, repeat: int = 5) -> None:
    """Print the API client's CPU and wall time per page: httpx's transport and aiohttp's."""
    sim = Child([sys.executable, str(Path(__file__).parent / "e2e_sim.py"), str(jobs)])
    transports: dict[str, Callable[[], Any]] = {
        "httpx's own transport": AsyncHTTPTransport,
        "httpx on aiohttp (now)": api_transport,
    }
    cpu: dict[str, list[float]] = {name: [] for name in transports}
    wall: dict[str, list[float]] = {name: [] for name in transports}
    try:
        for _ in range(repeat):
            for name, make in transports.items():  # interleaved, so load hits both alike
                async with APIClient(
                    base_url=sim.first, source="bench", transport=make()
                ) as client:
                    await _read_pages(client, 1)  # connect and warm up
                    spent, took, pages = await _read_pages(client, rounds)
                cpu[name].append(spent / pages * 1000)
                wall[name].append(took / pages * 1000)
    finally:
        sim.close()
    print("the API client reading pages of 100 jobs from the simulator in its own process")
    print(f"({jobs:,} jobs, {rounds} reads of every page, median of {repeat} rounds, per page):")
    base = statistics.median(cpu["httpx's own transport"])
    for name in transports:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"  {name:24s} CPU {c:6.2f} ms  wall {w:6.2f} ms  ({c / base:.2f} of httpx's CPU)")


if __name__ == "__main__":
    configure_logging("warning", "console")
    anyio.run(requests_per_cycle)
    unchanged_cycle()
    burst()
    anyio.run(client_cost)
