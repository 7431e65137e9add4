"""The poller: what it costs per cycle, how it is bounded, and what it emits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0


@pytest.fixture
def sim() -> Simulator:
    """A simulator on a manual clock."""
    return Simulator(ManualClock(START), seed=1)


WatcherFactory = Callable[..., Any]


@pytest.fixture
def make_watcher(sim: Simulator, tmp_path: Path) -> WatcherFactory:
    """Build a watcher on the simulator, driven by hand (no background loops)."""

    @asynccontextmanager
    async def make(**source: Any) -> AsyncIterator[tuple[Watcher, CollectingSink]]:
        sink = CollectingSink()
        # Lifecycle only unless a test asks: the progress types have their own tests.
        config = SourceConfig(name="sim", base_url="http://sim/v1", **{"progress": False, **source})
        watcher = Watcher(
            sources=[config],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=ManualClock(START, autojump=True),
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            yield watcher, sink

    return make


def _script(*steps: tuple[float, str]) -> list[tuple[float, str]]:
    return list(steps)


async def test_steady_state_costs_one_request_with_250_finished_and_3_active(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """With 250 finished jobs and 3 recent active ones, a steady-state cycle is one list request."""
    sim.add_jobs(250, "succeeded", start=START - 400_000, interval=60)
    for _ in range(3):
        sim.create_job(script=[(0, "running"), (10_000, "succeeded")])
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()  # the baseline reads every page
        sim.stats.reset()
        await watcher.poll_once()
        assert sim.stats.total == 1
        assert sim.stats.as_dict().get("list") == 1


async def test_finished_jobs_are_never_fetched_again(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """Only active jobs that scrolled out of the first page are retrieved, one by one."""
    old_active = sim.create_job(
        created_at=START - 500_000, script=[(0, "running"), (10**7, "succeeded")]
    )
    sim.add_jobs(300, "succeeded", start=START - 400_000, interval=60)
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()
        sim.stats.reset()
        await watcher.poll_once()
        counts = sim.stats.as_dict()
        # One page shows the newest jobs; the old active one is cheaper to retrieve than to
        # page to (it sits behind 300 finished ones).
        assert counts.get("list") == 1
        assert counts.get("retrieve") == 1
        assert sim.stats.total == 2
        assert old_active in watcher.pollers["sim"].active_jobs()


async def test_more_new_jobs_than_a_page_are_all_announced(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """When more jobs appear between cycles than one page holds, paging goes on to a known one."""
    sim.add_jobs(5, "succeeded", start=START - 100_000)
    async with make_watcher(page_size=10) as (watcher, _):
        await watcher.poll_once()
        new = sim.add_jobs(25, "running", start=START - 1_000, interval=1)
        events = await watcher.poll_once()
        created = {e.job_id for e in events if e.type == "fine_tuning.job.created"}
        assert created == set(new)


async def test_more_new_jobs_than_the_page_limit_are_caught_up_in_later_cycles(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """Jobs below the page limit are read in the next cycles, each announced exactly once.

    Every cycle stays within max_pages: the catch-up gets the pages the newest ones left over.
    """
    sim.add_jobs(5, "succeeded", start=START - 100_000)
    async with make_watcher(page_size=10, max_pages=2) as (watcher, _):
        poller = watcher.pollers["sim"]
        await watcher.poll_once()
        new = sim.add_jobs(55, "running", start=START - 1_000, interval=1)
        created: list[str] = []
        pages: list[int] = []
        for _ in range(12):
            sim.stats.reset()
            events = await watcher.poll_once()
            pages.append(sim.stats.as_dict().get("list", 0))
            created += [e.job_id for e in events if e.type == "fine_tuning.job.created"]
            if not poller.gaps:
                break
        assert poller.gaps == []
        assert sorted(created) == sorted(new)
        assert max(pages) <= 2
        # The first cycle read 20 of them; the other 35 took one page a cycle.
        assert len(pages) == 5


async def test_a_gap_in_the_job_list_survives_a_restart(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """The catch-up cursor is stored with the cycle: a new process reads on from it."""
    sim.add_jobs(5, "succeeded", start=START - 100_000)
    async with make_watcher(page_size=10, max_pages=2) as (watcher, _):
        await watcher.poll_once()
        new = sim.add_jobs(45, "succeeded", start=START - 1_000, interval=1)
        events = await watcher.poll_once()
        assert watcher.pollers["sim"].gaps
    async with make_watcher(page_size=10, max_pages=2) as (watcher, _):
        poller = watcher.pollers["sim"]
        assert poller.gaps
        for _ in range(10):
            if not poller.gaps:
                break
            events += await watcher.poll_once()
    created = [e.job_id for e in events if e.type == "fine_tuning.job.created"]
    succeeded = [e.job_id for e in events if e.type == "fine_tuning.job.succeeded"]
    assert sorted(created) == sorted(new)
    assert sorted(succeeded) == sorted(new)


async def test_a_status_change_becomes_events_in_order(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """A job moving on between cycles yields status_changed then its terminal event."""
    job_id = sim.create_job(
        script=[(0, "queued"), (60, "running"), (120, "failed", {"code": "x", "message": "y"})]
    )
    async with make_watcher() as (watcher, _):
        assert await watcher.poll_once() == []  # silent baseline
        sim.clock.advance(60)  # type: ignore[attr-defined]
        [changed] = await watcher.poll_once()
        assert (changed.type, changed.previous_status, changed.status) == (
            "fine_tuning.job.status_changed",
            "queued",
            "running",
        )
        sim.clock.advance(60)  # type: ignore[attr-defined]
        events = await watcher.poll_once()
        assert [e.type for e in events] == [
            "fine_tuning.job.status_changed",
            "fine_tuning.job.failed",
        ]
        assert events[1].job_id == job_id
        assert events[1].job.failure is not None
        assert events[1].job.failure.code == "x"


async def test_emit_existing_announces_the_first_baseline(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """With emit_existing the first cycle emits created (and terminal events) for every job."""
    sim.add_jobs(2, "succeeded")
    sim.add_jobs(1, "running")
    async with make_watcher(emit_existing=True) as (watcher, _):
        events = await watcher.poll_once()
        types = sorted(e.type for e in events)
        assert types.count("fine_tuning.job.created") == 3
        assert types.count("fine_tuning.job.succeeded") == 2


async def test_unknown_statuses_are_kept_and_diffed(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """A provider's own statuses (paused, pending) are diffed like any other."""
    job_id = sim.create_job(script=[(0, "running"), (10**6, "succeeded")])
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()
        sim.set_status(job_id, "paused")
        [event] = await watcher.poll_once()
        assert (event.previous_status, event.status) == ("running", "paused")
        sim.set_status(job_id, "pending")
        [event] = await watcher.poll_once()
        assert (event.previous_status, event.status) == ("paused", "pending")


async def test_endless_pagination_cannot_trap_the_poller(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """A server whose has_more never ends is read to a bound, and what was read is still used."""
    sim.add_jobs(30, "running")
    sim.faults.endless_pages = True
    async with make_watcher(page_size=10, max_pages=5) as (watcher, _):
        report = await watcher.pollers["sim"].poll_once()
        assert report.pages <= 5
        assert report.truncated
        assert report.jobs_seen >= 10
        report = await watcher.pollers["sim"].poll_once()
        assert report.pages <= 5


async def test_retrieves_are_bounded_per_cycle_and_spread_over_cycles(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """With many active jobs out of reach, each cycle retrieves at most max_retrieves of them."""
    old = [
        sim.create_job(created_at=START - 900_000 + i, script=[(0, "running"), (10**7, "failed")])
        for i in range(7)
    ]
    sim.add_jobs(500, "succeeded", start=START - 800_000, interval=60)
    async with make_watcher(max_retrieves=3, max_pages=2) as (watcher, _):
        poller = watcher.pollers["sim"]
        await poller.poll_once()
        while not poller.baselined:
            await poller.poll_once()
        retrieved: list[int] = []
        for _ in range(3):
            report = await poller.poll_once()
            retrieved.append(report.retrieves)
        assert max(retrieved) <= 3
        assert sum(retrieved) >= len(old)


async def test_only_the_listed_jobs_are_watched(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """``jobs = [...]`` retrieves only those jobs and never lists."""
    wanted = sim.create_job(script=[(0, "running"), (100, "succeeded")])
    sim.create_job(script=[(0, "running"), (100, "failed")])
    async with make_watcher(jobs=[wanted]) as (watcher, _):
        await watcher.poll_once()
        sim.clock.advance(200)  # type: ignore[attr-defined]
        sim.stats.reset()
        events = await watcher.poll_once()
        assert {e.job_id for e in events} == {wanted}
        assert sim.stats.as_dict().get("list", 0) == 0
        sim.stats.reset()
        await watcher.poll_once()  # finished now: nothing left to fetch
        assert sim.stats.total == 0


async def test_a_malformed_answer_skips_the_cycle_and_the_next_one_catches_up(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """Garbage JSON costs one cycle, never the job's events."""
    job_id = sim.create_job(script=[(0, "running"), (50, "succeeded")])
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()
        sim.clock.advance(100)  # type: ignore[attr-defined]
        sim.faults.malformed_next(1, "json")
        from watcher.errors import MalformedResponse

        with pytest.raises(MalformedResponse):
            await watcher.poll_once()
        events = await watcher.poll_once()
        assert [e.type for e in events][-1] == "fine_tuning.job.succeeded"
        assert events[-1].job_id == job_id


async def test_server_errors_and_429s_are_retried_within_the_cycle(
    sim: Simulator, make_watcher: WatcherFactory
) -> None:
    """A few 500s and a 429 with Retry-After are absorbed by the client's retries."""
    sim.create_job(script=[(0, "running"), (50, "cancelled")])
    async with make_watcher() as (watcher, _):
        await watcher.poll_once()
        sim.clock.advance(100)  # type: ignore[attr-defined]
        sim.faults.fail_next(2, 500)
        sim.faults.fail_next(1, 429, retry_after=3)
        events = await watcher.poll_once()
        assert [e.type for e in events] == [
            "fine_tuning.job.status_changed",
            "fine_tuning.job.cancelled",
        ]


async def test_events_link_to_the_dashboard_only_for_openai_sources(
    sim: Simulator, tmp_path: Path
) -> None:
    """A source on api.openai.com puts the job's dashboard link in its events; another not."""
    sim.create_job(script=[(0, "running")])
    sinks = {"openai": CollectingSink(name="a"), "other": CollectingSink(name="b")}
    for name, base_url in (("openai", "https://api.openai.com/v1"), ("other", "http://sim/v1")):
        watcher = Watcher(
            sources=[SourceConfig(name=name, base_url=base_url, emit_existing=True)],
            sinks=[sinks[name]],
            state_path=tmp_path / f"{name}.db",
            clock=ManualClock(START, autojump=True),
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            await watcher.poll_once()
            await watcher.flush()
    [(job_id, link)] = {(e.job_id, e.dashboard_url) for e in sinks["openai"].events}
    assert link == f"https://platform.openai.com/finetune/{job_id}"
    assert sinks["openai"].events[0].envelope()["data"]["dashboard_url"] == link
    assert sinks["other"].events and all(e.dashboard_url is None for e in sinks["other"].events)
