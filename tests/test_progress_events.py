"""Issue 8's event types: their envelope, its round trip, and opt-in routing per sink."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from ftwatch_slack import build_message
from ftwatch_stdout import format_line
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


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_slack_renders_each_new_type_as_valid_block_kit(event: BaseEvent) -> None:
    """Slack's message for each new type validates with slack_sdk and reads as words."""
    message = build_message(event)
    assert "\n" not in message["text"] and "fine_tuning.job" not in message["text"]
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        assert block.to_dict() == raw


def test_slack_says_how_long_a_stall_lasts_and_quotes_messages() -> None:
    """A stall names its status and duration; a warning's text is in the message."""
    stalled = build_message(
        JobStalled(
            **{**COMMON, "observed_at": 3 * 3600.0},
            reason="queued_too_long",
            since=0.0,
            threshold=1.0,
        )
    )
    assert "stuck in queue for 3h 00m" in stalled["text"]
    warned = build_message(SAMPLES[2])
    assert "careful" in warned["text"] and "warning" in warned["text"]
    assert any("careful" in json.dumps(b) for b in warned["blocks"])


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_stdout_prints_one_compact_line_per_new_type(event: BaseEvent) -> None:
    """The stdout line of each new type is one line with its key detail."""
    line = format_line(event, colour=False)
    assert "\n" not in line and "ftjob-1" in line
    expected = {
        "fine_tuning.job.progress": "step 10/100 █░░░░░░░░░ 10% loss 0.5",
        "fine_tuning.job.checkpoint_created": "ft:m:ckpt-step-10",
        "fine_tuning.job.message": "warn: careful",
        "fine_tuning.job.stalled": "queued_too_long",
        "fine_tuning.job.unstalled": "over after 120 min",
        "fine_tuning.job.eta_changed": "ETA moved +60 min",
    }[event.type]
    assert expected in line
