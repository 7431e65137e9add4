"""End to end: the daemon (Watcher and the simulator) mails a real SMTP server (aiosmtpd).

A job that fails and a job that stalls in the queue and then moves again reach the server as
three messages over STARTTLS with a login: each with the right subject, the stall pair in one
thread under their job's root.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from ftwatch_email import EmailConfig
from watcher import SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.simulator import Simulator
from watcher.testing import simulator_transport

pytest.importorskip("aiosmtpd", reason="the real SMTP server comes from PyPI's aiosmtpd package")

from smtp_server import PASSWORD, USER, make_tls, parts, smtp_server

START = 1_750_000_000.0
HOUR = 3600.0


@pytest.fixture
def anyio_backend() -> str:
    """aiosmtplib speaks asyncio."""
    return "asyncio"


async def test_a_failed_job_and_a_stall_arrive_as_emails(tmp_path: Path) -> None:
    """Failed, stalled and unstalled are mailed as they happen; nothing else is routed."""
    tls = make_tls(tmp_path)
    clock = ManualClock(START)
    sim = Simulator(clock, seed=3)
    failing = sim.create_job(
        script=[(0, "running"), (60, "failed", {"code": "invalid_file", "message": "<bad> row"})]
    )
    stuck = sim.create_job(
        created_at=START - 5 * HOUR, script=[(0, "queued"), (7 * HOUR, "running")]
    )
    with smtp_server(starttls=tls.server) as (box, port):
        sink = EmailConfig.model_validate(
            {
                "name": "mail",
                "type": "email",
                "events": [
                    "fine_tuning.job.failed",
                    "fine_tuning.job.stalled",
                    "fine_tuning.job.unstalled",
                ],
                "host": "127.0.0.1",
                "port": port,
                "ca_file": tls.ca_file,
                "username": USER,
                "password": PASSWORD,
                "from": "ftwatch@example.test",
                "to": ["oncall@example.test"],
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
            with anyio.fail_after(20):
                await watcher.poll_once()
                clock.advance(60)
                await watcher.poll_once()
                await watcher.flush()
                first = sorted(
                    [(await box.next())[1] for _ in range(2)], key=lambda m: "stuck" in m["Subject"]
                )
                clock.advance(2 * HOUR)
                await watcher.poll_once()
                await watcher.flush()
                _, moved = await box.next()
        assert box.received.empty()
    failed, stalled = first
    assert failed["Subject"].startswith(f"[ftwatch] ❌ Fine-tuning job failed: {failing}")
    assert "invalid_file" in failed["Subject"]
    text, html = parts(failed)
    assert "<bad> row" in text and "&lt;bad&gt; row" in html
    assert stalled["Subject"].startswith("[ftwatch] ⏳ Fine-tuning job stuck in queue for 5h")
    assert moved["Subject"].startswith(f"[ftwatch] ▶️ Fine-tuning job moving again: {stuck}")
    assert failed["References"] == f"<ftwatch.sim.{failing}@ftwatch>"
    assert stalled["References"] == moved["In-Reply-To"] == f"<ftwatch.sim.{stuck}@ftwatch>"
    assert len({m["Message-ID"] for m in (failed, stalled, moved)}) == 3
