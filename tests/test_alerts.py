"""The alert model (which events fire, resolve or notice alerts) and sinks' background work."""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher import SourceConfig, Watcher
from watcher.alerts import KEY_MAX, AlertingConfig, AlertKey, Condition, alerts_for
from watcher.clock import ManualClock
from watcher.events import BaseEvent, JobFailed, JobStalled, JobSucceeded, JobUnstalled
from watcher.models import FineTuningJob
from watcher.simulator import Simulator
from watcher.sinks import SinkConfig, SinkContext, sink_state_dir
from watcher.testing import CollectingSink, simulator_transport

START = 1_750_000_000.0


def _job(status: str, **extra: object) -> FineTuningJob:
    return FineTuningJob.model_validate(
        {
            "id": "ftjob-abc",
            "object": "fine_tuning.job",
            "model": "gpt-4o-mini",
            "created_at": 1_700_000_000,
            "status": status,
            **extra,
        }
    )


def _event(kind: type[BaseEvent], status: str, **fields: object) -> BaseEvent:
    job = _job(status, **fields.pop("job_fields", {}))  # type: ignore[arg-type]
    return kind(id=f"evt-{status}", source="openai", observed_at=START, job=job, **fields)


def _plan(event: BaseEvent, config: AlertingConfig | None = None) -> list[tuple[str, str]]:
    config = config or AlertingConfig(name="pager", type="pagerduty")
    return [(a.condition.value, a.action.value) for a in config.alerts_for(event)]


def test_each_event_maps_to_its_alerts_in_order() -> None:
    stalled = _event(
        JobStalled, "queued", reason="queued_too_long", since=START - 9000, threshold=3600
    )
    unstalled = _event(
        JobUnstalled, "running", reason="queued_too_long", since=START - 9000, stalled_for=9000
    )
    failed = _event(JobFailed, "failed", job_fields={"error": {"code": "bad", "message": "m"}})
    succeeded = _event(JobSucceeded, "succeeded")
    assert _plan(stalled) == [("stalled", "fire")]
    assert _plan(unstalled) == [("stalled", "resolve")]
    # A job's end resolves its stall first, then opens what the end means.
    assert _plan(failed) == [("stalled", "resolve"), ("failed", "fire")]
    assert _plan(succeeded) == [("stalled", "resolve")]
    loud = AlertingConfig(
        name="p", type="x", notify_succeeded=True, severity={"failed": "critical"}
    )
    assert _plan(succeeded, loud) == [("stalled", "resolve"), ("succeeded", "notice")]
    assert [a.severity for a in loud.alerts_for(failed)] == ["warning", "critical"]


def test_a_stall_and_its_end_share_one_key_and_start() -> None:
    since = START - 9000
    fired = alerts_for(
        _event(JobStalled, "queued", reason="queued_too_long", since=since, threshold=1)
    )
    cleared = alerts_for(
        _event(JobUnstalled, "running", reason="queued_too_long", since=since, stalled_for=9000)
    )
    assert fired[0].key == cleared[0].key
    assert str(fired[0].key) == "ftwatch/openai/ftjob-abc/stalled"
    assert fired[0].started_at == cleared[0].started_at == since
    assert cleared[0].summary() == "Fine-tuning job ftjob-abc is no longer stalled (running)"


@given(st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=400))
def test_keys_are_deterministic_and_never_longer_than_the_limit(source: str, job: str) -> None:
    key = AlertKey(source, job, Condition.FAILED)
    assert len(str(key)) <= KEY_MAX
    assert str(key) == str(AlertKey(source, job, Condition.FAILED))
    assert str(key) != str(AlertKey(source, job, Condition.STALLED))


def test_unknown_severities_are_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError, match="severity"):
        AlertingConfig(name="p", type="x", severity={"failed": "apocalyptic"})  # type: ignore[dict-item]


def test_the_sink_state_dir_is_private_and_spelt_safely(tmp_path: Path) -> None:
    plain = sink_state_dir(tmp_path / "ftwatch.db", "pager")
    assert plain == tmp_path / "ftwatch.db.sinks" / "pager"
    assert stat.S_IMODE(plain.stat().st_mode) == 0o700
    odd = sink_state_dir(tmp_path / "ftwatch.db", "../a b")
    assert odd.parent == plain.parent and "/" not in odd.name
    assert odd != sink_state_dir(tmp_path / "ftwatch.db", "._a_b")


class _Background(CollectingSink):
    def __init__(self) -> None:
        super().__init__()
        self.config = SinkConfig(name="keeper", type="test")
        self.contexts: list[SinkContext] = []
        self.ticks = 0
        self.started = anyio.Event()
        self.stopped = False

    async def run(self, context: SinkContext) -> None:
        self.contexts.append(context)
        self.started.set()
        try:
            while True:
                await context.sleep(60)
                self.ticks += 1
        finally:
            self.stopped = True


async def test_the_daemon_runs_a_sinks_background_work_on_its_clock(tmp_path: Path) -> None:
    sim = Simulator(ManualClock(START))
    sink = _Background()
    clock = ManualClock(START, autojump=True)
    async with Watcher(
        sources=[SourceConfig(name="sim", base_url="http://sim/v1", progress=False)],
        sinks=[sink],
        state_path=tmp_path / "s.db",
        clock=clock,
        transport=simulator_transport(sim),
    ):
        await sink.started.wait()
        (context,) = sink.contexts
        assert context.state_dir == tmp_path / "s.db.sinks" / "keeper"
        assert context.state_dir.is_dir()
        assert context.now() == clock.now()
        while sink.ticks < 3:
            await anyio.lowlevel.checkpoint()
    assert sink.stopped
