"""A real Prometheus scrapes the running daemon; its query API shows what the simulator implies."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.helpers import free_port

from watcher.clock import ManualClock
from watcher.serving import serve_asgi
from watcher.simulator import Simulator, serve_simulator
from watcher.testing import RecordingReceiver

log = logging.getLogger(__name__)

#: How long Prometheus may take to start and scrape (it is an outside server: polled, bounded).
PATIENCE = 60.0

#: The simulated jobs: status -> how many. Static: the simulator's clock never moves.
JOBS = {"running": 2, "queued": 1, "succeeded": 3}


async def query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    """One instant query through Prometheus's HTTP API; its result vector."""
    answer = await client.get(f"{base}/api/v1/query", params={"query": promql})
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def until(client: httpx.AsyncClient, base: str, promql: str, count: int) -> list[Any]:
    """Poll ``promql`` until it returns ``count`` series (bounded by PATIENCE)."""
    with anyio.fail_after(PATIENCE):
        while True:
            try:
                result = await query(client, base, promql)
            except httpx.HTTPError:
                result = []  # still starting
            if len(result) == count:
                return result
            await anyio.sleep(0.2)


async def test_prometheus_scrapes_the_daemon(tmp_path: Path) -> None:
    """`ftwatch run` with [server] serves /metrics; Prometheus scrapes it, and its query API
    shows the simulator's jobs by status, the events by type, and as many deliveries as the
    receiver acknowledged."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not found: install Debian's `prometheus` package")
    sim = Simulator(ManualClock(1_750_000_000.0))
    for status, count in JOBS.items():
        sim.add_jobs(count, status)
    # emit_existing: every job is announced, and a finished one's outcome follows.
    created, succeeded = sum(JOBS.values()), JOBS["succeeded"]
    receiver = RecordingReceiver()
    ops_port, prom_port = free_port(), free_port()
    async with serve_simulator(sim, port=0) as sim_url, serve_asgi(receiver) as hook_url:
        config = tmp_path / "ftwatch.toml"
        config.write_text(
            f'[state]\npath = "{tmp_path / "state.db"}"\n'
            f'[logging]\nformat = "json"\n'
            f'[server]\nlisten = "127.0.0.1:{ops_port}"\n'
            f'[[sources]]\nname = "sim"\nbase_url = "{sim_url}"\npoll_interval = 0.5\n'
            "emit_existing = true\nprogress = false\n"  # lifecycle counts only
            f'[[sinks]]\nname = "hook"\ntype = "webhook"\nurl = "{hook_url}/hook"\n'
        )
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"
            "scrape_configs:\n  - job_name: ftwatch\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{ops_port}']\n"
        )
        prometheus_command = [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        base = f"http://127.0.0.1:{prom_port}"
        daemon_log = (tmp_path / "daemon.log").open("wb")
        prometheus_log = (tmp_path / "prometheus.log").open("wb")
        with daemon_log, prometheus_log:
            daemon = await anyio.open_process(
                [sys.executable, "-m", "watcher", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=daemon_log,
            )
            async with daemon:
                try:
                    with anyio.fail_after(PATIENCE):
                        await receiver.wait_for_answers(created + succeeded)
                    async with await anyio.open_process(
                        prometheus_command, stdout=prometheus_log, stderr=prometheus_log
                    ) as server:
                        try:
                            async with httpx.AsyncClient() as client:
                                jobs = await until(client, base, 'ftwatch_jobs{job="ftwatch"}', 3)
                                delivered = await until(
                                    client,
                                    base,
                                    'ftwatch_deliveries_total{job="ftwatch",outcome="delivered"}',
                                    1,
                                )
                                emitted = await query(client, base, "ftwatch_events_emitted_total")
                                up = await query(client, base, 'up{job="ftwatch"}')
                        finally:
                            server.terminate()
                finally:
                    daemon.send_signal(signal.SIGTERM)
    seen = {series["metric"]["status"]: float(series["value"][1]) for series in jobs}
    types = {series["metric"]["type"]: float(series["value"][1]) for series in emitted}
    log.info("prometheus: ftwatch_jobs %s; events %s; delivered %s", seen, types, delivered)
    assert seen == {status: float(count) for status, count in JOBS.items()}
    assert types == {"fine_tuning.job.created": created, "fine_tuning.job.succeeded": succeeded}
    assert delivered[0]["metric"]["sink"] == "hook"
    acknowledged = [status for _, status in receiver.answered if status == 200]
    assert float(delivered[0]["value"][1]) == created + succeeded == len(acknowledged)
    assert float(up[0]["value"][1]) == 1.0
