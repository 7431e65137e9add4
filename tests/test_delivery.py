"""Reliable delivery through real webhook receivers: retries, a dead receiver, catching up."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import anyio
from tests.helpers import free_port

from ftwatch_webhook import WebhookConfig
from watcher import RetryPolicy, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.testing import simulator_transport
from watcher.testing_receiver import RecordedRequest, RecordingReceiver

START = 1_750_000_000.0


def _hook(name: str, url: str) -> WebhookConfig:
    return WebhookConfig(
        name=name,
        type="webhook",
        url=url,
        timeout=2,
        retry=RetryPolicy(initial_backoff=1, max_backoff=8, max_attempts=50),
    )


def _busy_sim() -> tuple[Simulator, list[str]]:
    sim = Simulator(ManualClock(START), seed=9)
    ids = [
        sim.create_job(
            created_at=START,
            script=[(0, "validating_files"), (10, "queued"), (20, "running"), (30, "succeeded")],
        )
        for _ in range(4)
    ]
    return sim, ids


def _per_job(requests: list[RecordedRequest]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for r in requests:
        out[json.loads(r.body)["data"]["id"]].append(r.headers["webhook-id"])
    return out


async def _run_timeline(watcher: Watcher, sim: Simulator) -> list[str]:
    """Step the simulator through its jobs' lives, one poll per step; return journaled ids."""
    journaled: list[str] = []
    for t in (0, 10, 20, 30):
        sim.clock.set(START + t)  # type: ignore[attr-defined]
        journaled.extend(e.id for e in await watcher.poll_once())
    return journaled


async def _deliver_all(watcher: Watcher, clock: ManualClock) -> None:
    """Flush every sink, moving the clock to each retry, until nothing is left to send."""
    for _ in range(200):
        await watcher.flush()
        due = [w.next_due for w in watcher.workers.values() if w.next_due is not None]
        if not due:
            return
        clock.set(min(due))
    raise AssertionError("deliveries never finished")


async def test_a_receiver_failing_its_first_deliveries_gets_everything_once_in_job_order(
    tmp_path: Path,
) -> None:
    """The first N deliveries fail with 503; after retries each event is acked once, in order."""
    sim, ids = _busy_sim()
    receiver = RecordingReceiver()
    receiver.fail_first(7, status=503)
    clock = ManualClock(START)
    async with serve_asgi(receiver) as url:
        watcher = Watcher(
            sources=[
                SourceConfig(
                    name="sim", base_url="http://sim/v1", emit_existing=True, progress=False
                )
            ],
            sinks=[_hook("hook", url)],
            state_path=tmp_path / "s.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            journaled = await _run_timeline(watcher, sim)
            await _deliver_all(watcher, clock)
    acked = receiver.requests[7:]
    assert sorted(r.headers["webhook-id"] for r in acked) == sorted(journaled)
    by_job = _per_job(acked)
    for job_id in ids:
        expected = [i for i in journaled if i in set(by_job[job_id])]
        assert by_job[job_id] == expected
    # The failed attempts were retried with the same webhook-id.
    assert {r.headers["webhook-id"] for r in receiver.requests[:7]} <= set(journaled)


async def test_a_dead_receiver_delays_nothing_else_and_catches_up_when_back(
    tmp_path: Path,
) -> None:
    """One receiver refuses connections throughout; the other stays current; then it catches up."""
    sim, ids = _busy_sim()
    healthy = RecordingReceiver()
    port = free_port()
    clock = ManualClock(START)
    async with serve_asgi(healthy) as healthy_url:
        watcher = Watcher(
            sources=[
                SourceConfig(
                    name="sim", base_url="http://sim/v1", emit_existing=True, progress=False
                )
            ],
            sinks=[_hook("healthy", healthy_url), _hook("down", f"http://127.0.0.1:{port}")],
            state_path=tmp_path / "s.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            journaled = await _run_timeline(watcher, sim)
            await watcher.flush()
            # The healthy sink is current while the other has delivered nothing.
            assert sorted(r.headers["webhook-id"] for r in healthy.requests) == sorted(journaled)
            assert watcher.workers["down"].delivered == 0
            clock.advance(3600)  # an hour of refused connections
            await watcher.flush()
            back = RecordingReceiver()
            async with serve_asgi(back, port=port):
                await _deliver_all(watcher, clock)
    assert sorted(r.headers["webhook-id"] for r in back.requests) == sorted(journaled)
    by_job = _per_job(back.requests)
    for job_id in ids:
        assert by_job[job_id] == [i for i in journaled if i in set(by_job[job_id])]


async def test_a_hung_receiver_never_slows_the_healthy_sink(tmp_path: Path) -> None:
    """With the daemon's loops running, a receiver that never answers delays no other sink."""
    sim, _ = _busy_sim()
    healthy, hung = RecordingReceiver(), RecordingReceiver()
    hung.hang()
    async with serve_asgi(healthy) as healthy_url, serve_asgi(hung) as hung_url:
        watcher = Watcher(
            sources=[
                SourceConfig(
                    name="sim",
                    base_url="http://sim/v1",
                    emit_existing=True,
                    jitter=0,
                    progress=False,
                )
            ],
            sinks=[_hook("healthy", healthy_url), _hook("hung", hung_url)],
            state_path=tmp_path / "s.db",
            transport=simulator_transport(sim),
        )
        async with watcher:
            with anyio.fail_after(10):
                await healthy.wait_for(4)  # four `created` events
                await hung.wait_for(1)  # and the other sink is stuck on its first
                sim.clock.set(START + 30)  # type: ignore[attr-defined]
                watcher.pollers["sim"].poke()
                await healthy.wait_for(4 + 4 * 2)
    assert watcher.workers["hung"].delivered == 0


async def test_slack_rate_limiting_is_waited_out_as_slack_asks(tmp_path: Path) -> None:
    """A 429 from Slack with Retry-After: 30 is tried again 30 s later, not sooner, and lands."""
    from ftwatch_slack import SlackConfig

    sim = Simulator(ManualClock(START), seed=9)
    sim.create_job(created_at=START, script=[(0, "running")])
    receiver = RecordingReceiver()
    receiver.fail_first(1, status=429, body=b"rate_limited", headers={"Retry-After": "30"})
    clock = ManualClock(START)
    async with serve_asgi(receiver) as url:
        slack = SlackConfig(
            name="slack",
            type="slack",
            webhook_url=f"{url}/services/T0/B0/secret",
            retry=RetryPolicy(initial_backoff=1, max_backoff=8),
        )
        watcher = Watcher(
            sources=[
                SourceConfig(
                    name="sim", base_url="http://sim/v1", emit_existing=True, progress=False
                )
            ],
            sinks=[slack],
            state_path=tmp_path / "s.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            [event] = await watcher.poll_once()
            await watcher.flush()
            worker = watcher.workers["slack"]
            assert len(receiver.requests) == 1 and worker.delivered == 0
            assert worker.next_due is not None and worker.next_due >= START + 30
            clock.set(START + 29)
            await watcher.flush()
            assert len(receiver.requests) == 1  # not sooner than Slack asked
            clock.set(worker.next_due)
            await watcher.flush()
    first, second = receiver.requests
    assert [status for _, status in receiver.answered] == [429, 200]
    assert first.body == second.body and event.job_id in second.json()["text"]


async def test_the_webhook_posts_the_journal_s_bytes_as_stored_and_signs_them(
    tmp_path: Path,
) -> None:
    """The body a receiver gets is the journal row's text byte for byte, never a rebuild of it.

    The stored text is respelt (spaces after the separators, keys in another order) before the
    delivery: a sink that re-serialised the event would send the canonical spelling instead.
    """
    import sqlite3

    from standardwebhooks import Webhook

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sim, _ = _busy_sim()
    receiver = RecordingReceiver()
    clock = ManualClock(START)
    async with serve_asgi(receiver) as url:
        signed = WebhookConfig.model_validate(_hook("hook", url).model_dump() | {"secret": secret})
        watcher = Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1", emit_existing=True)],
            sinks=[signed],
            state_path=tmp_path / "s.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            await watcher.poll_once()
            with sqlite3.connect(tmp_path / "s.db") as db:
                for seq, body in db.execute("SELECT seq, body FROM journal").fetchall():
                    respelt = json.dumps(dict(reversed(json.loads(body).items())))
                    db.execute("UPDATE journal SET body = ? WHERE seq = ?", (respelt, seq))
            await watcher.flush()
    with sqlite3.connect(tmp_path / "s.db") as db:
        stored = dict(db.execute("SELECT event_id, body FROM journal").fetchall())
    assert len(receiver.requests) == len(stored) == 4
    for request in receiver.requests:
        assert request.body == stored[request.headers["webhook-id"]].encode()
        # The signature is over those same bytes: a receiver written for OpenAI verifies it.
        Webhook(secret).verify(request.body, request.headers)
