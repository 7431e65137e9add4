"""A real Prometheus scrapes a running watcher; its query API shows what the simulator implies."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from watcher import Config, ServerConfig, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.simulator import Simulator, serve_simulator
from watcher.testing import CollectingSink

log = logging.getLogger(__name__)

#: How long Prometheus may take to start and scrape (it is an outside server: polled, bounded).
PATIENCE = 60.0

#: The simulated jobs: status -> how many. Static: the simulator's clock never moves.
JOBS = {"running": 2, "queued": 1, "succeeded": 3}


def free_port() -> int:
    """A port free on loopback now (Prometheus takes a fixed one on its command line)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


async def test_prometheus_scrapes_jobs_and_deliveries(tmp_path: Path) -> None:
    """Prometheus scrapes /metrics; its query API shows the simulator's jobs by status and as
    many delivered events as the sink received."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not found: install Debian's `prometheus` package")
    sim = Simulator(ManualClock(1_750_000_000.0))
    for status, count in JOBS.items():
        sim.add_jobs(count, status)
    sink = CollectingSink()
    async with serve_simulator(sim, port=0) as url:
        source = SourceConfig(name="sim", base_url=url, poll_interval=0.5, emit_existing=True)
        config = Config(sources=[source], server=ServerConfig(listen="127.0.0.1:0"))
        async with Watcher(config, sinks=[sink], state_path=tmp_path / "s.db") as watcher:
            with anyio.fail_after(PATIENCE):
                await sink.wait_for(sum(JOBS.values()))
                await watcher.drained()
            assert watcher.ops_url is not None
            target = watcher.ops_url.removeprefix("http://")
            (tmp_path / "prometheus.yml").write_text(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"
                "scrape_configs:\n  - job_name: ftwatch\n"
                f"    static_configs:\n      - targets: ['{target}']\n"
            )
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            command = [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            with (tmp_path / "prometheus.log").open("wb") as output:
                async with await anyio.open_process(command, stdout=output, stderr=output) as proc:
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
                        proc.terminate()
    seen = {series["metric"]["status"]: float(series["value"][1]) for series in jobs}
    types = {series["metric"]["type"]: float(series["value"][1]) for series in emitted}
    log.info("prometheus: ftwatch_jobs %s; events %s; delivered %s", seen, types, delivered)
    assert seen == {status: float(count) for status, count in JOBS.items()}
    # emit_existing: every job is announced, and a finished one's outcome follows.
    created, succeeded = sum(JOBS.values()), JOBS["succeeded"]
    assert types == {"fine_tuning.job.created": created, "fine_tuning.job.succeeded": succeeded}
    assert delivered[0]["metric"]["sink"] == "collect"
    assert float(delivered[0]["value"][1]) == created + succeeded == len(sink.events)
    assert float(up[0]["value"][1]) == 1.0
