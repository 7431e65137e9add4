"""A sink whose receiver refuses connections waits as a whole and probes, sparing its neighbours."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from tests.helpers import free_port

from ftwatch_webhook import WebhookConfig
from watcher import RetryPolicy, SourceConfig, Watcher
from watcher.breaker import BREAKER_THRESHOLD
from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.testing import simulator_transport
from watcher.testing_receiver import RecordingReceiver

START = 1_750_000_000.0
JOBS = 30


def _hook(name: str, url: str) -> WebhookConfig:
    return WebhookConfig(
        name=name,
        type="webhook",
        url=url,
        timeout=2,
        retry=RetryPolicy(initial_backoff=1, max_backoff=8, max_attempts=1000, max_age=10**6),
    )


def _attempts(state: Path, sink: str) -> int:
    """Every attempt the sink made that failed, as its delivery rows in the state file count."""
    with sqlite3.connect(state) as db:
        (total,) = db.execute(
            "SELECT coalesce(sum(attempts), 0) FROM deliveries WHERE sink = ?", (sink,)
        ).fetchone()
    return int(total)


async def test_a_refusing_receiver_is_probed_once_per_interval_and_spares_the_healthy_sink(
    tmp_path: Path,
) -> None:
    """30 jobs' events: the healthy sink gets all of them in the same pass; the refused one
    stops after the threshold, then tries one delivery per open interval, then catches up in
    per-job order once its receiver is back."""
    sim = Simulator(ManualClock(START), seed=5)
    for _ in range(JOBS):
        sim.create_job(created_at=START, script=[(0, "running")])
    healthy = RecordingReceiver()
    port = free_port()
    clock = ManualClock(START)
    state = tmp_path / "s.db"
    async with serve_asgi(healthy) as healthy_url:
        watcher = Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1", emit_existing=True)],
            sinks=[_hook("healthy", healthy_url), _hook("down", f"http://127.0.0.1:{port}")],
            state_path=state,
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            journaled = [e.id for e in await watcher.poll_once()]
            assert len(journaled) == JOBS
            await watcher.flush()
            # The healthy sink is current after one pass, whatever the other one does.
            assert sorted(r.headers["webhook-id"] for r in healthy.requests) == sorted(journaled)
            # The refused sink stopped at the threshold (plus what its other connections had
            # already sent) instead of trying all 30 events.
            down = watcher.workers["down"]
            opened = _attempts(state, "down")
            assert BREAKER_THRESHOLD <= opened < BREAKER_THRESHOLD + down.config.concurrency
            # Ten open intervals: one probe each (the interval doubles, so fewer still).
            for _ in range(10):
                assert down.next_due is not None
                clock.set(down.next_due)
                await watcher.flush()
            probes = _attempts(state, "down") - opened
            assert 1 <= probes <= 10
            assert down.delivered == 0
            back = RecordingReceiver()
            async with serve_asgi(back, port=port):
                for _ in range(50):
                    if down.next_due is None:
                        break
                    clock.set(max(clock.now(), down.next_due))
                    await watcher.flush()
    assert sorted(r.headers["webhook-id"] for r in back.requests) == sorted(journaled)
    # Each job's events in journal order (here one each: every job arrives exactly once).
    per_job: dict[str, list[str]] = defaultdict(list)
    for request in back.requests:
        per_job[json.loads(request.body)["data"]["id"]].append(request.headers["webhook-id"])
    assert len(per_job) == JOBS and all(len(ids) == 1 for ids in per_job.values())


def test_the_circuit_opens_at_the_threshold_probes_once_and_doubles_its_wait_up_to_the_cap() -> (
    None
):
    """Closed -> open after the threshold; one probe per interval; the interval doubles, capped;
    any answer closes it."""
    from watcher.breaker import CircuitBreaker

    breaker = CircuitBreaker("down", initial=1.0, maximum=4.0)
    for i in range(BREAKER_THRESHOLD):
        ticket = breaker.admit(100.0)
        assert ticket.go and not ticket.probe
        assert breaker.no_answer(ticket, 100.0, "refused") == (i == BREAKER_THRESHOLD - 1)
    assert breaker.holding(100.5)
    assert breaker.admit(100.5).until == 101.0
    waits = []
    now = 101.0
    for _ in range(4):
        probe = breaker.admit(now)
        assert probe.go and probe.probe
        other = breaker.admit(now)  # while the probe is out, nothing else goes
        assert not other.go and other.until > now
        assert breaker.no_answer(probe, now, "refused")
        waits.append(breaker.open_until - now)
        now = breaker.open_until
    assert waits == [2.0, 4.0, 4.0, 4.0]
    assert breaker.admit(now).probe
    assert breaker.answered() and breaker.state == "closed"
    assert breaker.admit(now).go and not breaker.holding(now)
