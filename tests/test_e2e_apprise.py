"""The Apprise sink end to end: the daemon polls a simulated API, and what a failed job and a
stalled one say reaches a receiver through the real Apprise library (its json:// service)."""

from __future__ import annotations

from pathlib import Path

import anyio

from ftwatch_apprise import AppriseConfig
from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.testing import simulator_transport
from watcher.testing_receiver import RecordingReceiver

START = 1_750_000_000.0
HOUR = 3600.0


async def test_a_failed_job_and_a_stall_reach_apprise_through_the_daemon(tmp_path: Path) -> None:
    """The failure arrives (after a 500 that the daemon retries), the stall and its end too."""
    clock = ManualClock(START)
    sim = Simulator(clock, seed=2)
    error = {"code": "invalid_training_file", "message": "line 3 is not JSON"}
    failing = sim.create_job(script=[(0, "running"), (60, "failed", error)])
    stuck = sim.create_job(
        created_at=START - 5 * HOUR, script=[(0, "queued"), (7 * HOUR, "running")]
    )
    receiver = RecordingReceiver()
    receiver.fail_first(1, 500)
    async with serve_asgi(receiver) as base_url:
        sink = AppriseConfig.model_validate(
            {
                "name": "phone",
                "type": "apprise",
                "urls": "json://" + base_url.removeprefix("http://") + "/notify",
                "events": ["fine_tuning.job.failed", "fine_tuning.job.*stalled"],
            }
        )
        watcher = Watcher(
            sources=[SourceConfig(name="sim", base_url="http://sim/v1", jitter=0)],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=clock,
            transport=simulator_transport(sim),
            autostart=False,
        )
        async with watcher:
            await watcher.poll_once()
            clock.advance(60)
            await watcher.poll_once()  # the job failed; the other one is stalled in the queue
            await watcher.flush()  # one of the two is answered 500: retried after its backoff
            clock.advance(60)
            await watcher.flush()
            clock.advance(2 * HOUR)  # the stuck job starts running
            await watcher.poll_once()
            await watcher.flush()
            with anyio.fail_after(5):
                answered = await receiver.wait_for_answers(4)
    assert sorted(status for _, status in answered) == [200, 200, 200, 500]
    got = {
        (body["type"], body["title"]): body["message"]
        for body in (request.json() for request, status in answered if status == 200)
    }
    assert set(got) == {
        ("failure", "❌ Fine-tuning job failed"),
        ("warning", "⏳ Fine-tuning job stuck in queue for 5h 00m"),
        ("success", "▶️ Fine-tuning job moving again"),
    }
    failed = got["failure", "❌ Fine-tuning job failed"]
    assert f"Job: {failing}" in failed and "line 3 is not JSON" in failed
    assert f"Job: {stuck}" in got["success", "▶️ Fine-tuning job moving again"]
