"""The Watcher: the public async API, restarts, several sources, and what it never leaks."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pytest
from anyio.abc import AsyncResource
from pydantic import SecretStr

from watcher import (
    JobCreated,
    JobFailed,
    JobSucceeded,
    SinkConfig,
    SourceConfig,
    SubscriberOverflow,
    Watcher,
)
from watcher.clock import ManualClock
from watcher.events import BaseEvent
from watcher.logs import configure_logging, reset_logging
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0
KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"


def _watcher(sim: Simulator, path: Path, sink: CollectingSink, **kw: object) -> Watcher:
    # Lifecycle events only: the progress types have their own tests (test_progress*.py).
    source = SourceConfig(name="sim", base_url="http://sim/v1", progress=False)
    return Watcher(
        sources=[source],
        sinks=[sink],
        state_path=path,
        clock=ManualClock(START, autojump=True),
        transport=simulator_transport(sim),
        autostart=False,
        **kw,  # type: ignore[arg-type]
    )


async def test_events_reach_subscribers_and_sinks_alike(tmp_path: Path) -> None:
    """A subscriber filtered by type and a sink see the same events, with the same ids."""
    sim = Simulator(ManualClock(START))
    sim.create_job(script=[(0, "running"), (60, "succeeded")])
    sim.create_job(script=[(0, "running"), (60, "failed", {"code": "c", "message": "m"})])
    sink = CollectingSink()
    async with _watcher(sim, tmp_path / "s.db", sink) as watcher:
        await watcher.poll_once()
        finished = watcher.events(JobFailed, JobSucceeded)
        everything = watcher.events()
        sim.clock.advance(60)  # type: ignore[attr-defined]
        events = await watcher.poll_once()
        await watcher.flush()
        got = [await finished.__anext__() for _ in range(2)]
        assert {e.type for e in got} == {"fine_tuning.job.failed", "fine_tuning.job.succeeded"}
        all_ids = [(await everything.__anext__()).id for _ in range(4)]
        assert all_ids == [e.id for e in events] == [e.id for e in sink.events]


async def test_a_full_subscriber_drops_new_events_and_counts_them(tmp_path: Path) -> None:
    """With overflow="drop", a subscriber that does not read keeps its first events only."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(5, "running")
    sink = CollectingSink()
    async with _watcher(sim, tmp_path / "s.db", sink) as watcher:
        slow = watcher.events(JobCreated, buffer=2)
        watcher.pollers["sim"].config = watcher.pollers["sim"].config.model_copy(
            update={"emit_existing": True}
        )
        await watcher.poll_once()
        assert slow.dropped == 3
        await watcher.flush()
        assert len(sink.events) == 5  # the sink, the durable path, got everything


async def test_overflow_error_ends_the_iteration_after_the_buffered_events(
    tmp_path: Path,
) -> None:
    """With overflow="error", iteration yields what was buffered then raises SubscriberOverflow."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(4, "running")
    async with _watcher(sim, tmp_path / "s.db", CollectingSink()) as watcher:
        strict = watcher.events(buffer=2, overflow="error")
        watcher.pollers["sim"].config = watcher.pollers["sim"].config.model_copy(
            update={"emit_existing": True}
        )
        await watcher.poll_once()
        got: list[BaseEvent] = []
        with pytest.raises(SubscriberOverflow):  # noqa: PT012 - the loop is the one statement
            async for event in strict:
                got.append(event)
        assert len(got) == 2


async def test_leaving_a_subscription_block_ends_it_for_good(tmp_path: Path) -> None:
    """A subscription is an anyio AsyncResource: its block (or aclose) ends the iteration."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(2, "running")
    async with _watcher(sim, tmp_path / "s.db", CollectingSink()) as watcher:
        async with watcher.events() as early:
            assert isinstance(early, AsyncResource)
        later = watcher.events()
        watcher.pollers["sim"].config = watcher.pollers["sim"].config.model_copy(
            update={"emit_existing": True}
        )
        await watcher.poll_once()
        await later.aclose()
        assert [event async for event in early] == []
        assert [event async for event in later] == []


async def test_handlers_are_called_and_survive_their_own_exceptions(tmp_path: Path) -> None:
    """@watcher.on calls the handler per event; an exception does not stop later calls."""
    sim = Simulator(ManualClock(START))
    for _ in range(2):
        sim.create_job(script=[(0, "running"), (60, "failed", {"code": "c", "message": "m"})])
    seen: list[str] = []
    two = anyio.Event()
    async with _watcher(sim, tmp_path / "s.db", CollectingSink()) as watcher:

        @watcher.on(JobFailed)
        async def handle(event: JobFailed) -> None:
            seen.append(event.job_id)
            if len(seen) == 2:
                two.set()
            raise RuntimeError("handler bug")

        await watcher.poll_once()
        sim.clock.advance(60)  # type: ignore[attr-defined]
        await watcher.poll_once()
        with anyio.fail_after(5):
            await two.wait()
    assert len(set(seen)) == 2


async def test_a_job_that_finished_while_down_is_emitted_after_restart(tmp_path: Path) -> None:
    """Promise 2: stored snapshots are diffed against the API after a restart."""
    sim = Simulator(ManualClock(START))
    job_id = sim.create_job(script=[(0, "running"), (600, "succeeded")])
    path = tmp_path / "s.db"
    async with _watcher(sim, path, CollectingSink()) as watcher:
        assert await watcher.poll_once() == []
    sim.clock.advance(3600)  # type: ignore[attr-defined]  # the daemon is down meanwhile
    sink = CollectingSink()
    async with _watcher(sim, path, sink) as watcher:
        events = await watcher.poll_once()
        await watcher.flush()
    assert [e.type for e in events] == [
        "fine_tuning.job.status_changed",
        "fine_tuning.job.succeeded",
    ]
    assert events[1].job_id == job_id
    assert [e.id for e in sink.events] == [e.id for e in events]


async def test_undelivered_events_are_delivered_after_restart_with_the_same_ids(
    tmp_path: Path,
) -> None:
    """Promise 1: what a sink had not acknowledged is sent after restart, same event ids."""
    sim = Simulator(ManualClock(START))
    sim.create_job(script=[(0, "running"), (60, "succeeded")])
    path = tmp_path / "s.db"
    async with _watcher(sim, path, CollectingSink()) as watcher:
        await watcher.poll_once()
        sim.clock.advance(60)  # type: ignore[attr-defined]
        journaled = await watcher.poll_once()
        # Closed before any delivery: as if killed right after the journal commit.
    sink = CollectingSink()
    async with _watcher(sim, path, sink) as watcher:
        await watcher.flush()
    assert [e.id for e in sink.events] == [e.id for e in journaled]


async def test_one_sources_refused_key_never_stalls_another(tmp_path: Path) -> None:
    """A source whose key is refused (401) stops alone; the other source keeps polling."""
    good = Simulator(ManualClock(START), seed=1)
    locked = Simulator(ManualClock(START), seed=2, api_key="the-right-key-123456")
    good.create_job(script=[(0, "running"), (60, "succeeded")])
    locked.create_job(script=[(0, "running")])
    sink = CollectingSink()
    clock = ManualClock(START, autojump=False)
    watcher = Watcher(
        sources=[
            SourceConfig(name="good", base_url="http://good/v1", poll_interval=10, jitter=0),
            SourceConfig(
                name="locked",
                base_url="http://locked/v1",
                api_key=SecretStr("wrong-key-abcdef"),
                poll_interval=10,
                jitter=0,
            ),
        ],
        sinks=[sink],
        state_path=tmp_path / "s.db",
        clock=clock,
        transport={"good": simulator_transport(good), "locked": simulator_transport(locked)},
    )
    async with watcher:
        with anyio.fail_after(5):
            while not watcher.pollers["locked"].failed or not watcher.pollers["good"].baselined:
                await anyio.lowlevel.checkpoint()
            good.clock.advance(60)  # type: ignore[attr-defined]
            watcher.pollers["good"].poke()
            await sink.wait_for(2)
    assert "api_key" in (watcher.pollers["locked"].failed or "")
    assert {e.type for e in sink.events} == {
        "fine_tuning.job.status_changed",
        "fine_tuning.job.succeeded",
    }


async def test_secrets_never_reach_the_logs(tmp_path: Path) -> None:
    """Promise 6: an API key refused by the server appears nowhere in the JSON logs."""
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    try:
        sim = Simulator(ManualClock(START), api_key="the-right-key-123456")
        sim.create_job(script=[(0, "running")])
        source = SourceConfig(name="sim", base_url="http://sim/v1", api_key=SecretStr(KEY))
        watcher = Watcher(
            sources=[source],
            sinks=[SinkConfig.model_validate({"name": "x", "type": "stdout"})],
            state_path=tmp_path / "s.db",
            clock=ManualClock(START, autojump=True),
            transport=simulator_transport(sim),
        )
        async with watcher:
            with anyio.fail_after(5):
                while not watcher.pollers["sim"].failed:
                    await anyio.lowlevel.checkpoint()
        text = out.getvalue()
        assert "source_stopped" in text
        assert KEY not in text
        assert KEY not in repr(watcher.config) and KEY not in str(watcher.config)
    finally:
        reset_logging()


async def test_a_second_watcher_on_the_same_state_file_is_refused(tmp_path: Path) -> None:
    """Two daemons on one state file would each deliver every event: the second is refused."""
    from watcher import StoreError

    sim = Simulator(ManualClock(START))
    path = tmp_path / "s.db"
    async with _watcher(sim, path, CollectingSink()):
        with pytest.raises(StoreError, match="in use by another ftwatch process"):
            async with _watcher(sim, path, CollectingSink()):
                pass
    async with _watcher(sim, path, CollectingSink()):  # free again once the first closed
        pass


async def test_sink_secrets_are_masked_in_every_log_line(tmp_path: Path) -> None:
    """Promise 6: a webhook's secret, tokened URL and header values never reach the logs."""
    import structlog

    from ftwatch_webhook import WebhookConfig

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    url = "https://hooks.example.test/in/T0K3N-abcdef123456"
    header = "Bearer hdr-token-0123456789"
    hook = WebhookConfig(
        name="hook",
        type="webhook",
        url=url,
        secret=SecretStr(secret),
        headers={"authorization-x": header},
    )
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        sim = Simulator(ManualClock(START))
        watcher = Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1")],
            sinks=[hook],
            state_path=tmp_path / "s.db",
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            # A plugin or a library that logs what it should not: the mask still holds.
            structlog.get_logger("careless").error("leak", detail=f"{url} {secret} {header}")
        text = out.getvalue()
        assert '"leak"' in text
        for value in (secret, url, header):
            assert value not in text
    finally:
        reset_logging()


async def test_a_sink_removed_from_the_config_is_retired_with_its_queue_kept(
    tmp_path: Path,
) -> None:
    """Its undelivered events become dead letters, logged with counts; a new sink starts fresh."""
    from structlog.testing import capture_logs

    from watcher.store import Store

    sim = Simulator(ManualClock(START))
    sim.create_job(script=[(0, "running"), (60, "succeeded")])
    path = tmp_path / "s.db"
    kept, removed = CollectingSink(name="kept"), CollectingSink(name="removed")
    source = SourceConfig(name="sim", base_url="http://sim/v1")

    def watcher_with(*sinks: CollectingSink) -> Watcher:
        return Watcher(
            sources=[source],
            sinks=list(sinks),
            state_path=path,
            clock=ManualClock(START, autojump=True),
            transport=simulator_transport(sim),
            autostart=False,
        )

    async with watcher_with(kept, removed) as watcher:
        await watcher.poll_once()  # the baseline
        sim.clock.advance(60)  # type: ignore[attr-defined]
        events = await watcher.poll_once()
        await watcher.workers["kept"].flush()  # "removed" never delivers them
    assert events

    late = CollectingSink(name="late")
    with capture_logs() as logs:
        async with watcher_with(kept, late) as watcher:
            await watcher.flush()
    assert late.events == []  # a new sink starts at the end of the journal
    [retired] = [e for e in logs if e["event"] == "sink_retired"]
    assert (retired["sink"], retired["queued"], retired["dead"]) == (
        "removed",
        len(events),
        len(events),
    )
    async with await Store.open(path) as store:
        letters = await store.dead_letters()
        assert [d.event_id for d in letters] == [e.id for e in events]
        assert {d.last_error for d in letters} == {"sink removed from the config"}
        assert await store.prune(older_than=START + 10**6) == 0  # kept as dead letters
        await store.drop_dead_letters(sink="removed")
        assert await store.prune(older_than=START + 10**6) == len(events)
