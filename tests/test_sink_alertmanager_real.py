"""The Alertmanager sink against a real Alertmanager (Debian's ``prometheus-alertmanager``).

The daemon runs on a ManualClock set in the recent past, so that the ``endsAt`` of a firing
alert lies ahead of Alertmanager's real clock and a resolve's ``endsAt`` behind it. Alertmanager
notifies a local recording receiver through its own webhook receiver, with short group waits;
the tests wait on that receiver, and read Alertmanager's ``GET /api/v2/alerts``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from tests.alertmanager_server import Alertmanager, needs_alertmanager, running_alertmanager
from tests.test_sink_alertmanager import failed_event

from ftwatch_alertmanager import AlertmanagerConfig, AlertmanagerSink
from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator
from watcher.sinks import SinkContext
from watcher.testing import simulator_transport
from watcher.testing_receiver import RecordingReceiver

pytestmark = needs_alertmanager

MINUTE = 60.0


def _notifications(receiver: RecordingReceiver, job: str) -> list[tuple[str, str]]:
    """(status, condition) of each alert in each notification Alertmanager sent for ``job``."""
    found = []
    for request in receiver.requests:
        for alert in request.json()["alerts"]:
            if alert["labels"].get("job") == job:
                found.append((alert["status"], alert["labels"]["condition"]))
    return found


@pytest.fixture
async def am(tmp_path: Path) -> AsyncIterator[tuple[Alertmanager, RecordingReceiver]]:
    """A real Alertmanager whose webhook receiver is a recording receiver of this test."""
    receiver = RecordingReceiver()
    async with (
        serve_asgi(receiver) as hook,
        running_alertmanager(tmp_path / "am", f"{hook}/alertmanager") as server,
    ):
        yield server, receiver


async def test_failed_and_stalled_jobs_through_the_daemon_and_a_restart(
    am: tuple[Alertmanager, RecordingReceiver], tmp_path: Path
) -> None:
    """A failure fires an alert with our labels; a stall fires and, once the job moves, resolves.

    A daemon restart in between re-posts both from the state file (Alertmanager updates them,
    still one alert each), and Alertmanager notifies once per firing and once per resolve.
    """
    server, receiver = am
    start = float(int(time.time() - 2 * 3600))
    clock = ManualClock(start)
    sim = Simulator(clock, seed=1)
    error = {"code": "invalid_training_file", "message": "line 3 is not JSON"}
    failing = sim.create_job(
        suffix="nightly", script=[(0, "running"), (10 * MINUTE, "failed", error)]
    )
    stuck = sim.create_job(suffix="stuck", script=[(0, "queued"), (50 * MINUTE, "running")])
    source = SourceConfig(name="sim", base_url="http://sim/v1", jitter=0, stall_queued="30m")
    sink = AlertmanagerConfig(
        name="am",
        type="alertmanager",
        urls=[server.url],
        labels={"team": "ml"},
        resend_interval="1h",
    )

    def daemon() -> Watcher:
        return Watcher(
            sources=[source],
            sinks=[sink],
            state_path=tmp_path / "state.db",
            clock=clock,
            transport=simulator_transport(sim),
        )

    async with daemon() as watcher:
        await watcher.poll_once()
        clock.advance(10 * MINUTE)
        await watcher.poll_once()
        await watcher.drained()
        [failed] = await server.alerts(job=failing)
        assert failed["labels"] == {
            "alertname": "FineTuningJobFailed",
            "source": "sim",
            "job": failing,
            "model": "gpt-4o-mini-2024-07-18",
            "suffix": "nightly",
            "status": "failed",
            "condition": "failed",
            "severity": "error",
            "team": "ml",
        }
        assert failed["status"]["state"] == "active"
        assert failed["annotations"]["summary"].startswith("❌ Fine-tuning job failed: ")
        assert "line 3 is not JSON" in failed["annotations"]["description"]
        ended = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + 10 * MINUTE))
        assert failed["startsAt"] == ended
        clock.advance(25 * MINUTE)  # queued for 35 minutes: past stall_queued
        await watcher.poll_once()
        await watcher.drained()
        [stalled] = await server.alerts(job=stuck)
        assert stalled["labels"]["condition"] == "stalled"
        assert stalled["labels"]["status"] == "queued"
        assert stalled["labels"]["alertname"] == "FineTuningJobStalled"
        assert stalled["labels"]["severity"] == "warning"
        with anyio.fail_after(10):
            await receiver.wait_for(2)

    # The restart: a second daemon on the same state file re-posts both at once.
    async with daemon() as watcher:
        seen = {failing: failed["updatedAt"], stuck: stalled["updatedAt"]}
        for job, before in seen.items():
            [again] = await server.until(
                lambda found, before=before: len(found) == 1 and found[0]["updatedAt"] > before,
                job=job,
            )
            assert again["fingerprint"] == (failed if job == failing else stalled)["fingerprint"]
        clock.advance(15 * MINUTE)  # the stuck job starts running
        await watcher.poll_once()
        await watcher.drained()
        assert await server.alerts(job=stuck) == []
        assert len(await server.alerts(job=failing)) == 1
        with anyio.fail_after(10):
            await receiver.wait_for(3)

    assert _notifications(receiver, failing) == [("firing", "failed")]
    assert _notifications(receiver, stuck) == [("firing", "stalled"), ("resolved", "stalled")]


async def rounds(sink: AlertmanagerSink, n: int) -> None:
    """Wait until the keep-alive has done ``n`` rounds of posts."""
    with anyio.fail_after(10):
        await sink.wait_for_rounds(n)


async def test_an_alertmanager_that_restarted_gets_the_alert_back_from_the_keep_alive(
    tmp_path: Path,
) -> None:
    """Alertmanager forgets alerts when it restarts; the keep-alive posts them again from the
    state file at once and then every ``resend_interval``, with the same labels and start."""
    receiver = RecordingReceiver()
    clock = ManualClock(float(int(time.time() - 600)))
    event = failed_event(clock.now() - 60)
    context = SinkContext(state_dir=tmp_path / "state", now=clock.now, sleep=clock.sleep)
    context.state_dir.mkdir()

    def config(url: str) -> AlertmanagerConfig:
        return AlertmanagerConfig(
            name="am",
            type="alertmanager",
            urls=[url],
            resend_interval="10m",
        )

    async with serve_asgi(receiver) as hook:
        async with running_alertmanager(tmp_path / "am1", f"{hook}/x") as first:
            async with AlertmanagerSink(config(first.url)) as sink, anyio.create_task_group() as tg:
                tg.start_soon(sink.run, context)
                await rounds(sink, 1)
                await sink.send(event)
                tg.cancel_scope.cancel()
            [alert] = await first.alerts(job=event.job_id)
        async with running_alertmanager(tmp_path / "am2", f"{hook}/x") as second:
            assert await second.alerts(job=event.job_id) == []
            async with (
                AlertmanagerSink(config(second.url)) as sink,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(sink.run, context)
                await rounds(sink, 1)
                [back] = await second.alerts(job=event.job_id)
                assert back["labels"] == alert["labels"]
                assert back["startsAt"] == alert["startsAt"]
                # The next round, ten minutes on: posted again, with an end further ahead.
                clock.advance(10 * MINUTE)
                await rounds(sink, 2)
                [later] = await second.alerts(job=event.job_id)
                assert later["fingerprint"] == back["fingerprint"]
                assert later["endsAt"] > back["endsAt"]
                tg.cancel_scope.cancel()
