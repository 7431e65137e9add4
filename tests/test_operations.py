"""The operations endpoint: off by default, /healthz, /readyz with reasons, routes, config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from test_metrics import START, ops_watcher
from watcher import ConfigError, SinkDisabled, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.config import parse_config
from watcher.events import BaseEvent
from watcher.operations import Reply, json_reply
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, simulator_transport


async def get(watcher: Watcher, path: str, method: str = "GET") -> httpx.Response:
    """One request to the watcher's operations endpoint."""
    assert watcher.ops_url is not None
    async with httpx.AsyncClient() as client:
        return await client.request(method, f"{watcher.ops_url}{path}")


async def test_the_endpoint_is_off_by_default(tmp_path: Path) -> None:
    """Without [server] listen nothing is served and no metrics are kept."""
    sim = Simulator(ManualClock(START))
    source = SourceConfig(name="sim", base_url="http://sim/v1")
    async with Watcher(
        sources=[source],
        state_path=tmp_path / "s.db",
        transport=simulator_transport(sim),
        autostart=False,
    ) as watcher:
        assert watcher.ops_url is None
        assert watcher.metrics is None


async def test_ready_only_after_every_source_polled(tmp_path: Path) -> None:
    """/healthz answers at once; /readyz says which source has not polled, then turns ready,
    and turns unready again when the last good poll is more than a few intervals old."""
    sim = Simulator(ManualClock(START))
    async with ops_watcher(sim, tmp_path / "s.db", CollectingSink(), poll_interval=30) as w:
        health = await get(w, "/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        early = await get(w, "/readyz")
        assert early.status_code == 503
        assert early.json()["reasons"] == ["source 'sim' has not polled successfully yet"]
        await w.poll_once()
        ready = await get(w, "/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        clock = w.clock
        assert isinstance(clock, ManualClock)
        clock.advance(3 * 30 * 1.1 + 30 + 1)  # three intervals with jitter, plus a timeout
        stale = await get(w, "/readyz")
    assert stale.status_code == 503
    assert "last polled successfully 130s ago" in stale.json()["reasons"][0]


async def test_a_disabled_sink_makes_the_watcher_unready(tmp_path: Path) -> None:
    """A sink that disabled itself is named in /readyz's reasons and in ftwatch_sink_disabled."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(1, "running")
    sink = CollectingSink()

    def gone(event: BaseEvent) -> None:
        raise SinkDisabled("the receiver answered 410 Gone", sink="collect")

    sink.fail = gone
    async with ops_watcher(sim, tmp_path / "s.db", sink, emit_existing=True) as w:
        await w.poll_once()
        await w.flush()
        answer = await get(w, "/readyz")
        metrics = (await get(w, "/metrics")).text
    assert answer.status_code == 503
    assert answer.json()["reasons"] == [
        "sink 'collect' is disabled: the receiver answered 410 Gone"
    ]
    assert 'ftwatch_sink_disabled{sink="collect"} 1.0' in metrics
    assert 'ftwatch_deliveries_total{outcome="disabled",sink="collect"} 1.0' in metrics


async def test_routes_unknown_paths_methods_and_a_new_route(tmp_path: Path) -> None:
    """An unknown path is a 404 listing the routes, a POST a 405, HEAD has no body, and a
    route added to ``watcher.routes`` is served at once."""
    sim = Simulator(ManualClock(START))
    async with ops_watcher(sim, tmp_path / "s.db", CollectingSink()) as w:

        async def jobs() -> Reply:
            return json_reply({"jobs": []})

        w.routes["/jobs"] = jobs
        missing = await get(w, "/nope")
        post = await get(w, "/metrics", "POST")
        head = await get(w, "/healthz", "HEAD")
        added = await get(w, "/jobs")
    assert missing.status_code == 404
    assert "/healthz, /jobs, /metrics, /readyz" in missing.json()["error"]
    assert post.status_code == 405
    assert head.status_code == 200 and head.content == b""
    assert added.json() == {"jobs": []}


async def test_jobs_serves_what_status_json_prints(tmp_path: Path) -> None:
    """/jobs is the daemon's own `ftwatch status --json`: the same document, read live."""
    from watcher.status import read_status

    sim = Simulator(ManualClock(START))
    sim.add_jobs(2, "running")
    sim.add_jobs(1, "succeeded")
    async with ops_watcher(sim, tmp_path / "s.db", CollectingSink(), emit_existing=True) as w:
        await w.poll_once()
        await w.flush()
        answer = await get(w, "/jobs")
        offline = await read_status(tmp_path / "s.db", now=w.clock.now())
    assert answer.status_code == 200
    body = answer.json()
    assert body == offline.model_dump(mode="json")
    (source,) = body["sources"]
    assert source["jobs"] == {"running": 2, "succeeded": 1}
    assert len(source["active"]) == 2


@pytest.mark.parametrize(
    "listen", ["9464", "localhost", ":9464", "127.0.0.1:99999", "::1:9464", "a b:1", "[x]:1"]
)
def test_a_bad_listen_address_is_a_config_error(listen: str) -> None:
    """server.listen must be host:port; the error names the key and shows the form."""
    data = {"sources": [{"name": "s"}], "server": {"listen": listen}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, path="ftwatch.toml")
    assert "server.listen" in str(caught.value)
    assert '"127.0.0.1:9464"' in str(caught.value)


@pytest.mark.parametrize(
    ("listen", "address"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("0.0.0.0:80", None)],
)
def test_good_listen_addresses(listen: str, address: tuple[str, int] | None) -> None:
    """Loopback, IPv6 in brackets and any other address are accepted."""
    config = parse_config({"sources": [{"name": "s"}], "server": {"listen": listen}})
    assert config.server.address == (address or ("0.0.0.0", 80))


async def test_promtool_accepts_the_exposition(tmp_path: Path) -> None:
    """`promtool check metrics` finds nothing wrong with what /metrics serves."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's `prometheus` package")
    sim = Simulator(ManualClock(START))
    sim.add_jobs(2, "running")
    async with ops_watcher(sim, tmp_path / "s.db", CollectingSink(), emit_existing=True) as w:
        await w.poll_once()
        await w.flush()
        text = (await get(w, "/metrics")).content
    result = subprocess.run(  # noqa: ASYNC221 - a short check after the server has stopped
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_refuses_a_bad_listen_address() -> None:
    """`ftwatch demo --listen` checks host:port before anything starts, exit code 2."""
    from click.testing import CliRunner

    from watcher.cli import main

    result = CliRunner().invoke(main, ["demo", "--listen", "nonsense"])
    assert result.exit_code == 2
    assert "'nonsense' is not host:port" in result.output
