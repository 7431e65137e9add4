"""Issue 8's event types: their envelope, its round trip, and opt-in routing per sink."""

from __future__ import annotations

import json
from typing import Any

import pytest

from watcher.events import (
    BaseEvent,
    JobCheckpointCreated,
    JobEtaChanged,
    JobMessage,
    JobProgress,
    JobStalled,
    JobStatusChanged,
    JobUnstalled,
    event_from_envelope,
)
from watcher.models import FineTuningJob
from watcher.sinks import SinkConfig

JOB = FineTuningJob.model_validate(
    {"id": "ftjob-1", "object": "fine_tuning.job", "status": "running", "model": "m"}
)
COMMON: dict[str, Any] = {"id": "evt_1", "source": "openai", "observed_at": 100.0, "job": JOB}

SAMPLES: list[BaseEvent] = [
    JobProgress(**COMMON, step=10, total_steps=100, train_loss=0.5, percent=10.0),
    JobCheckpointCreated(
        **COMMON,
        checkpoint_id="ftckpt_1",
        step_number=10,
        fine_tuned_model_checkpoint="ft:m:ckpt-step-10",
        metrics={"train_loss": 0.5},
    ),
    JobMessage(**COMMON, level="warn", message="careful", api_event_id="ftevent-1"),
    JobStalled(**COMMON, reason="queued_too_long", since=1.0, threshold=3600.0),
    JobUnstalled(**COMMON, reason="queued_too_long", since=1.0, stalled_for=7200.0),
    JobEtaChanged(**COMMON, previous_estimated_finish=1000, estimated_finish=4600, shift=3600.0),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_the_envelope_carries_the_type_fields_and_reads_back_the_same(event: BaseEvent) -> None:
    """Each new type's own fields are in ``data`` and the envelope rebuilds an equal event."""
    body = json.loads(event.to_json())
    assert body["type"] == event.type
    for name, value in event.details().items():
        assert body["data"][name] == json.loads(json.dumps(value))
    assert body["data"]["id"] == "ftjob-1"
    assert event_from_envelope(event.to_json()) == event
    assert event_from_envelope(body) == event


def test_lifecycle_envelopes_are_unchanged() -> None:
    """A lifecycle event carries no extra data keys."""
    event = JobStatusChanged(**COMMON, previous_status="queued")
    assert event.details() == {}
    assert "reason" not in json.loads(event.to_json())["data"]


def _sink(events: list[str] | None = None) -> SinkConfig:
    extra = {} if events is None else {"events": events}
    return SinkConfig(name="s", type="stdout", **extra)


@pytest.mark.parametrize(
    ("events", "wanted"),
    [
        (None, {"fine_tuning.job.message", "fine_tuning.job.stalled", "fine_tuning.job.unstalled"}),
        (
            ["fine_tuning.job.*"],
            {"fine_tuning.job.message", "fine_tuning.job.stalled", "fine_tuning.job.unstalled"},
        ),
        (["fine_tuning.job.progress"], {"fine_tuning.job.progress"}),
        (
            ["*", "fine_tuning.job.checkpoint_created", "fine_tuning.job.eta_changed"],
            {e.type for e in SAMPLES} - {"fine_tuning.job.progress"},
        ),
    ],
)
def test_progress_events_reach_only_sinks_that_name_them(
    events: list[str] | None, wanted: set[str]
) -> None:
    """Progress, checkpoints and ETA changes are opt-in by full name; alerts follow globs."""
    sink = _sink(events)
    assert {e.type for e in SAMPLES if sink.wants(e)} == wanted
