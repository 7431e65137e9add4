"""The first baseline is stored chunk by chunk, and one cut off halfway is redone cleanly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from watcher import SourceConfig
from watcher.app import client_for
from watcher.clock import ManualClock
from watcher.diff import JobState
from watcher.errors import StoreError
from watcher.events import BaseEvent
from watcher.poller import SourcePoller
from watcher.simulator import Simulator
from watcher.store import SQLiteStore
from watcher.testing import simulator_transport

START = 1_750_000_000.0
SOURCE = SourceConfig(name="sim", base_url="http://sim/v1", page_size=5, max_pages=100)


class DyingStore:
    """A store whose process dies (every call fails) after ``commits`` commits."""

    def __init__(self, store: SQLiteStore, commits: int) -> None:
        self.store = store
        self.commits_left = commits
        self.committed_states: list[int] = []

    async def commit(self, source: str, *, states: Mapping[str, JobState], **kw: Any) -> list[int]:
        if self.commits_left == 0:
            raise StoreError("killed")
        self.commits_left -= 1
        self.committed_states.append(len(states))
        return await self.store.commit(source, states=states, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def _poller(sim: Simulator, store: Any, clock: ManualClock) -> tuple[SourcePoller, list[Any]]:
    published: list[BaseEvent] = []

    async def publish(events: Sequence[BaseEvent]) -> None:
        published.extend(events)

    client = client_for(SOURCE, transport=simulator_transport(sim))
    poller = SourcePoller(SOURCE, client, store, publish=publish, clock=clock, baseline_chunk=10)
    await poller.load()
    return poller, published


@pytest.fixture
def sim() -> Simulator:
    """45 finished jobs and 5 running ones, newest first: ten pages of five."""
    simulator = Simulator(ManualClock(START), seed=5)
    simulator.add_jobs(45, "succeeded", start=START - 100_000, interval=60)
    simulator.add_jobs(5, "running", start=START - 1_000, interval=1)
    return simulator


async def test_a_baseline_cut_off_halfway_is_redone_without_events(
    sim: Simulator, tmp_path: Path
) -> None:
    """Killed after two chunks were stored, the restarted baseline emits nothing for them."""
    clock = ManualClock(START)
    async with await SQLiteStore.open(tmp_path / "state.db") as store:
        dying = DyingStore(store, commits=2)
        poller, published = await _poller(sim, dying, clock)
        with pytest.raises(StoreError):
            await poller.poll_once()
        await poller.client.aclose()
        # Stored in chunks as read, not all at the end: two chunks of ten made it.
        assert dying.committed_states == [10, 10]
        assert published == []
        stored = await store.load_states("sim")
        assert len(stored) == 20
        assert not await store.is_baselined("sim")

    # A job stored before the kill finishes meanwhile: that one change, and only it, is news.
    newest = max(stored, key=lambda j: stored[j].job.created_at or 0)
    assert stored[newest].job.status == "running"
    sim.set_status(newest, "succeeded")
    clock.advance(5)

    async with await SQLiteStore.open(tmp_path / "state.db") as store:
        poller, published = await _poller(sim, store, clock)
        report = await poller.poll_once()
        await poller.client.aclose()
        assert poller.baselined
        assert [(e.type, e.job_id) for e in published] == [
            ("fine_tuning.job.status_changed", newest),
            ("fine_tuning.job.succeeded", newest),
        ]
        assert report.events == published
        after = await store.load_states("sim")

    # The same states as a baseline that was never cut off, read at the same time.
    async with await SQLiteStore.open(tmp_path / "whole.db") as store:
        poller, published = await _poller(sim, store, ManualClock(START + 5))
        await poller.poll_once()
        await poller.client.aclose()
        assert published == []
        whole = await store.load_states("sim")
    assert after.keys() == whole.keys()
    assert {j: s.job for j, s in after.items()} == {j: s.job for j, s in whole.items()}
    assert {j: dict(s.seen) for j, s in after.items() if j != newest} == {
        j: dict(s.seen) for j, s in whole.items() if j != newest
    }


async def test_a_restarted_poller_knows_the_active_jobs_it_stored(
    sim: Simulator, tmp_path: Path
) -> None:
    """After a restart the loaded states give the same active jobs as before it."""
    clock = ManualClock(START)
    async with await SQLiteStore.open(tmp_path / "state.db") as store:
        poller, _ = await _poller(sim, store, clock)
        await poller.poll_once()
        await poller.client.aclose()
        before = set(poller.active_jobs())
        states = {j: (s.job.id, s.job.status, s.job.created_at) for j, s in poller.states.items()}
    async with await SQLiteStore.open(tmp_path / "state.db") as store:
        again, _ = await _poller(sim, store, clock)
        await again.client.aclose()
    assert len(before) == 5
    assert set(again.active_jobs()) == before
    assert {j: (s.job.id, s.job.status, s.job.created_at) for j, s in again.states.items()} == (
        states
    )
