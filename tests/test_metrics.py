"""The /metrics series a scrape of a running watcher shows, read over a real loopback socket."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from watcher import Config, JobCreated, ServerConfig, SinkUnavailable, SourceConfig, Watcher
from watcher.clock import ManualClock
from watcher.events import BaseEvent
from watcher.metrics import Metrics, operation_of
from watcher.simulator import Simulator
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def ops_watcher(sim: Simulator, path: Path, sink: CollectingSink, **source: object) -> Watcher:
    """A watcher over the simulator with the operations endpoint on a free loopback port.

    Progress reading is off unless asked for: these tests count lifecycle events exactly."""
    source.setdefault("progress", False)
    config = Config(
        sources=[SourceConfig(name="sim", base_url="http://sim/v1", **source)],  # type: ignore[arg-type]
        server=ServerConfig(listen="127.0.0.1:0"),
    )
    return Watcher(
        config,
        sinks=[sink],
        state_path=path,
        clock=ManualClock(START, autojump=True),
        transport=simulator_transport(sim),
        autostart=False,
    )


async def scrape(watcher: Watcher) -> Samples:
    """GET /metrics and return every sample by name and labels."""
    assert watcher.ops_url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{watcher.ops_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when the series is not there."""
    return samples.get((name, frozenset(labels.items())))


async def test_a_scrape_shows_jobs_events_requests_and_deliveries(tmp_path: Path) -> None:
    """After one cycle, /metrics counts the jobs by status, the events, the API calls and the
    deliveries, and stamps the successful poll."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(2, "running")
    sim.add_jobs(1, "queued")
    sim.add_jobs(3, "succeeded")
    sink = CollectingSink()
    async with ops_watcher(sim, tmp_path / "s.db", sink, emit_existing=True) as watcher:
        await watcher.poll_once()
        await watcher.flush()
        samples = await scrape(watcher)
    assert value(samples, "ftwatch_jobs", source="sim", status="running") == 2
    assert value(samples, "ftwatch_jobs", source="sim", status="queued") == 1
    assert value(samples, "ftwatch_jobs", source="sim", status="succeeded") == 3
    created = "fine_tuning.job.created"
    assert value(samples, "ftwatch_events_emitted_total", source="sim", type=created) == 6
    assert value(samples, "ftwatch_deliveries_total", sink="collect", outcome="delivered") == len(
        sink.events
    )
    assert len(sink.events) >= 6
    ok = {"source": "sim", "endpoint": "list_jobs", "outcome": "ok"}
    assert value(samples, "ftwatch_api_requests_total", **ok) == 1
    polled = value(samples, "ftwatch_last_successful_poll_timestamp_seconds", source="sim")
    assert polled is not None and polled >= START  # the watcher's clock, in Unix time
    assert value(samples, "ftwatch_sink_queue_depth", sink="collect") == 0
    assert value(samples, "ftwatch_sink_dead_letters", sink="collect") == 0
    assert value(samples, "ftwatch_sink_disabled", sink="collect") == 0
    assert value(samples, "ftwatch_subscriber_drops_total") == 0
    builds = [key for key in samples if key[0] == "ftwatch_build_info"]
    assert len(builds) == 1
    assert ("version", __import__("watcher").__version__) in builds[0][1]


async def test_a_failing_sink_shows_its_queue_and_the_oldest_pending_age(tmp_path: Path) -> None:
    """A sink that is unavailable counts failed attempts; its queue depth and the age of its
    oldest waiting event show at the next scrape, and a status no job has any more reads 0."""
    sim = Simulator(ManualClock(START))
    sim.create_job(script=[(0, "running"), (60, "succeeded")])
    sink = CollectingSink()

    def unavailable(event: BaseEvent) -> None:
        raise SinkUnavailable("down for maintenance", sink="collect")

    sink.fail = unavailable
    async with ops_watcher(sim, tmp_path / "s.db", sink, emit_existing=True) as watcher:
        await watcher.poll_once()
        await watcher.flush()
        before = await scrape(watcher)
        sim.clock.advance(60)  # type: ignore[attr-defined]
        await watcher.poll_once()
        clock = watcher.clock
        assert isinstance(clock, ManualClock)
        clock.advance(120)
        samples = await scrape(watcher)
    failed = value(samples, "ftwatch_deliveries_total", sink="collect", outcome="unavailable")
    assert failed == 1  # one attempt; the retry is not due yet
    assert value(samples, "ftwatch_sink_queue_depth", sink="collect") == 3
    age = value(samples, "ftwatch_sink_oldest_pending_age_seconds", sink="collect")
    assert age is not None and age >= 120
    assert value(before, "ftwatch_jobs", source="sim", status="running") == 1
    assert value(samples, "ftwatch_jobs", source="sim", status="running") == 0
    assert value(samples, "ftwatch_jobs", source="sim", status="succeeded") == 1


async def test_subscriber_drops_are_counted(tmp_path: Path) -> None:
    """Events a full subscriber drops show in ftwatch_subscriber_drops_total."""
    sim = Simulator(ManualClock(START))
    sim.add_jobs(5, "running")
    async with ops_watcher(sim, tmp_path / "s.db", CollectingSink(), emit_existing=True) as w:
        slow = w.events(JobCreated, buffer=2)
        await w.poll_once()
        samples = await scrape(w)
    assert slow.dropped == 3
    assert value(samples, "ftwatch_subscriber_drops_total") == 3


def test_api_paths_map_to_bounded_operation_names() -> None:
    """Request paths become operation names; a job id never becomes a label value."""
    base = "/proxy/v1/fine_tuning/jobs"
    assert operation_of(base) == "list_jobs"
    assert operation_of(f"{base}/ftjob-1") == "retrieve_job"
    assert operation_of(f"{base}/ftjob-1/events") == "list_job_events"
    assert operation_of(f"{base}/ftjob-1/checkpoints") == "list_checkpoints"
    assert operation_of(f"{base}/ftjob-1/cancel") == "job_action"
    assert operation_of("/v1/models") == "other"


def test_every_series_is_in_the_readme() -> None:
    """The README's table names every series the registry exposes."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    metrics = Metrics()
    names = {family.name for family in metrics.registry.collect()}
    assert len(names) == 13
    for family in metrics.registry.collect():
        shown = f"{family.name}_total" if family.type == "counter" else family.name
        if family.type == "info":
            shown = f"{family.name}_info"
        assert f"`{shown}`" in readme, shown


async def test_no_secret_in_any_series_or_body(tmp_path: Path) -> None:
    """The source's API key shows in no series, label or response body, even after the API
    refused it (the source stopped and /readyz explains why)."""
    key = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"
    sim = Simulator(ManualClock(START), api_key="sk-another-key-the-simulator-wants-000000")
    sim.add_jobs(1, "running")
    watcher = ops_watcher(sim, tmp_path / "s.db", CollectingSink(), api_key=key)
    async with watcher:
        await watcher.pollers["sim"].run()  # returns at once: the key is refused
        assert watcher.ops_url is not None
        async with httpx.AsyncClient() as client:
            bodies = [
                (await client.get(f"{watcher.ops_url}{path}")).text
                for path in ("/metrics", "/readyz", "/healthz")
            ]
    assert "stopped" in bodies[1]
    assert 'outcome="client_error"' in bodies[0]
    for body in bodies:
        assert key not in body
        assert key[8:20] not in body
