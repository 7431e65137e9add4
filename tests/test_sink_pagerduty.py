"""The PagerDuty sink (plugins/ftwatch_pagerduty): its events, its config and PagerDuty's answers.

Every body is checked against the Events API v2 contract (tests/pagerduty_contract.py) by a
PagerDuty-like receiver on a real loopback socket, which also keeps incidents by ``dedup_key``
so that a test sees what an on-call person would: how many incidents opened, which are open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs
from tests.pagerduty_contract import PagerDutyLike, alert_event_errors, change_event_errors

from ftwatch_pagerduty import PagerDutyConfig, PagerDutySink, change_body, event_body
from watcher.alerts import Action, Alert
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import (
    BaseEvent,
    JobCancelled,
    JobFailed,
    JobStalled,
    JobSucceeded,
    JobUnstalled,
)
from watcher.facts import TEST_MARK
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import sink_plugin

START = 1_750_000_000.0
ROUTING_KEY = "R0utingKeyS3cretS3cretS3cret0042"
DASHBOARD = "https://platform.openai.com/finetune/ftjob-abc"


def _event(kind: type[BaseEvent], status: str, *, eid: str = "", **fields: Any) -> BaseEvent:
    job: dict[str, Any] = {
        "id": "ftjob-abc",
        "object": "fine_tuning.job",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_700_000_000,
        "user_provided_suffix": "support-bot",
        "status": status,
        **fields.pop("job", {}),
    }
    return kind(
        id=eid or f"evt-{status}",
        source="openai",
        observed_at=START,
        job=FineTuningJob.model_validate(job),
        **fields,
    )


def _failed(message: str = "bad row 7", **fields: Any) -> BaseEvent:
    error = {"code": "invalid_training_file", "message": message, "param": "training_file"}
    return _event(JobFailed, "failed", job={"error": error, "finished_at": 1_700_004_000}, **fields)


def _stalled() -> BaseEvent:
    return _event(
        JobStalled, "queued", reason="queued_too_long", since=START - 5 * 3600, threshold=4 * 3600
    )


def _unstalled() -> BaseEvent:
    return _event(
        JobUnstalled,
        "running",
        reason="queued_too_long",
        since=START - 5 * 3600,
        stalled_for=5 * 3600,
    )


def _config(url: str = "http://127.0.0.1:9", **extra: Any) -> PagerDutyConfig:
    return PagerDutyConfig(
        name="on-call", type="pagerduty", routing_key=ROUTING_KEY, api_url=url, **extra
    )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one receiver serves every test."""
    return "asyncio"


@pytest.fixture(scope="module")
async def pd_server() -> AsyncIterator[tuple[PagerDutyLike, str]]:
    """One PagerDuty-like receiver on loopback for the module, and its base URL."""
    app = PagerDutyLike()
    async with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def pd(pd_server: tuple[PagerDutyLike, str]) -> tuple[PagerDutyLike, str]:
    """The module's receiver, as fresh as a new PagerDuty service."""
    app, url = pd_server
    app.reset()
    return app, url


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert ROUTING_KEY not in text
        assert "S3cret" not in text


# ---------------------------------------------------------------------------------------------
# Bodies against the contract


def _every_alert() -> list[Alert]:
    loud = _config(alert_on_cancelled=True, notify_succeeded=True)
    events = [
        _stalled(),
        _unstalled(),
        _failed(),
        _failed("x" * 5000, dashboard_url=DASHBOARD),
        _event(JobCancelled, "cancelled"),
        _event(JobSucceeded, "succeeded", job={"fine_tuned_model": "ft:gpt-4o-mini:acme::x"}),
        _event(JobFailed, "failed", job={"model": None, "user_provided_suffix": None}),
    ]
    return [alert for event in events for alert in loud.alerts_for(event)]


def test_every_body_we_build_passes_the_events_api_contract() -> None:
    """Trigger, resolve and change bodies for every alert have no error by the contract."""
    config = _config()
    alerts = _every_alert()
    assert {a.action for a in alerts} == set(Action)
    for alert in alerts:
        if alert.action is Action.NOTICE:
            assert change_event_errors(change_body(alert, config)) == []
        else:
            assert alert_event_errors(event_body(alert, config)) == []


def test_a_trigger_carries_every_field_of_the_alert() -> None:
    """A failed job's trigger: key, summary, source, severity, time, model, group, class..."""
    [_, fire] = _config(severity={"failed": "critical"}).alerts_for(
        _failed(dashboard_url=DASHBOARD)
    )
    body = event_body(fire, _config(source="ml-host-1"))
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "ftwatch/openai/ftjob-abc/failed"
    payload = body["payload"]
    assert payload["summary"] == (
        "❌ Fine-tuning job failed: ftjob-abc (support-bot): invalid_training_file: bad row 7"
    )
    assert (payload["source"], payload["severity"]) == ("ml-host-1", "critical")
    assert payload["timestamp"] == "2025-06-15T15:06:40.000Z"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "gpt-4o-mini-2024-07-18",
        "openai",
        "failed",
    )
    details = payload["custom_details"]
    assert details["job"] == "ftjob-abc" and details["model"] == "gpt-4o-mini-2024-07-18"
    assert details["error"] == "bad row 7" and details["error_code"] == "invalid_training_file"
    assert details["dashboard_url"] == DASHBOARD
    assert body["links"] == [{"href": DASHBOARD, "text": "Open the job in the dashboard"}]
    assert (body["client"], body["client_url"]) == ("ftwatch", DASHBOARD)
    # Without `source` in the config, payload.source is the ftwatch source the job came from.
    assert event_body(fire, _config())["payload"]["source"] == "openai"


def test_a_resolve_is_only_the_key() -> None:
    """A resolve carries the routing key, the action and the dedup key, nothing else."""
    [resolve] = _config().alerts_for(_unstalled())
    assert event_body(resolve, _config()) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "ftwatch/openai/ftjob-abc/stalled",
    }


def test_a_long_summary_is_cut_to_1024_with_an_ellipsis() -> None:
    """An error message of 5000 characters: a 1024-character summary ending in an ellipsis."""
    [_, fire] = _config().alerts_for(_failed("y" * 5000))
    summary = event_body(fire, _config())["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("y…")
    assert len(fire.details()["error"]) == 5000
    assert len(event_body(fire, _config())["payload"]["custom_details"]["error"]) == 4000


def test_a_long_key_stays_within_255_characters() -> None:
    """A source and job id far too long still give a dedup_key PagerDuty takes."""
    event = _failed().model_copy(update={"source": "s" * 300})
    [_, fire] = _config().alerts_for(event)
    body = event_body(fire, _config())
    assert len(body["dedup_key"]) <= 255
    assert alert_event_errors(body) == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"event_action": "escalate"}, "'event_action' must be one of"),
        ({"routing_key": "short"}, "'routing_key' must be a string of 32"),
        ({"dedup_key": "k" * 256}, "'dedup_key' must be at most 255"),
        ({"payload": {"summary": "s", "source": "x", "severity": "fatal"}}, "'payload.severity'"),
        ({"payload": {"summary": "s" * 1025, "source": "x", "severity": "info"}}, "at most 1024"),
        ({"payload": {"source": "x", "severity": "info"}}, "'payload.summary' must be"),
        ({"payload": {"summary": "s", "severity": "info"}}, "'payload.source' must be"),
        (
            {"payload": {"summary": "s", "source": "x", "severity": "info", "timestamp": "now"}},
            "ISO 8601",
        ),
        ({"severity": "info"}, "unknown keys ['severity']"),
    ],
)
def test_the_contract_refuses_what_pagerduty_refuses(change: dict[str, Any], error: str) -> None:
    """The checker is not a rubber stamp: each broken field is named."""
    [_, fire] = _config().alerts_for(_failed())
    body = {**event_body(fire, _config()), **change}
    assert any(error in e for e in alert_event_errors(body)), alert_event_errors(body)
    assert any(
        "'dedup_key' is required" in e
        for e in alert_event_errors({"routing_key": ROUTING_KEY, "event_action": "resolve"})
    )


# ---------------------------------------------------------------------------------------------
# Config


def test_entry_point_finds_the_pagerduty_sink() -> None:
    """The ``pagerduty`` entry point resolves to PagerDutySink and its config model."""
    plugin = sink_plugin("pagerduty")
    assert plugin.factory is PagerDutySink
    assert plugin.config_model is PagerDutyConfig


@pytest.mark.parametrize("key", ["S3cret", "S3cret" * 6 + "!!", "S3cret" * 6 + " x", ""])
def test_a_routing_key_of_the_wrong_shape_is_explained_without_quoting_it(key: str) -> None:
    """A routing key that is not 32 letters and digits: one sentence naming the key, no value."""
    with pytest.raises(ValidationError) as caught:
        PagerDutyConfig(name="p", type="pagerduty", routing_key=key)
    text = str(caught.value)
    assert "routing_key" in text and "32-letter-and-digit integration key" in text
    _assert_no_secret(text)


async def test_the_routing_key_stays_out_of_repr_and_dumps() -> None:
    """The routing key appears in no repr, str or JSON dump of the config or the sink."""
    config = _config()
    async with PagerDutySink(config) as sink:
        _assert_no_secret(repr(config), str(config), config.model_dump_json(), repr(sink))


# ---------------------------------------------------------------------------------------------
# Delivery


async def test_a_failed_job_opens_one_incident_keyed_by_the_alert(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """Failed: resolve the stall (harmless when none is open), then trigger ``failed``: 202."""
    app, url = pd
    async with PagerDutySink(_config(url)) as sink:
        receipt = await sink.send(_failed())
    assert receipt == (
        "HTTP 202 resolve dedup_key=ftwatch/openai/ftjob-abc/stalled; "
        "HTTP 202 trigger dedup_key=ftwatch/openai/ftjob-abc/failed"
    )
    assert [r.status for r in app.received] == [202, 202]
    assert [b["event_action"] for b in app.accepted()] == ["resolve", "trigger"]
    assert app.opened == 1
    assert app.incidents == {"ftwatch/openai/ftjob-abc/failed": True}
    assert app.received[0].headers["content-type"] == "application/json"
    assert app.received[0].headers["user-agent"] == "ftwatch-pagerduty"


async def test_a_stall_opens_and_moving_again_resolves_the_same_incident(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """Stalled triggers ``.../stalled``; unstalled resolves that very key."""
    app, url = pd
    async with PagerDutySink(_config(url)) as sink:
        await sink.send(_stalled())
        assert app.incidents == {"ftwatch/openai/ftjob-abc/stalled": True}
        await sink.send(_unstalled())
    trigger, resolve = app.accepted()
    assert trigger["dedup_key"] == resolve["dedup_key"] == "ftwatch/openai/ftjob-abc/stalled"
    assert trigger["payload"]["severity"] == "warning" and trigger["payload"]["class"] == "stalled"
    assert app.incidents == {"ftwatch/openai/ftjob-abc/stalled": False}
    assert app.opened == 1


async def test_a_replayed_event_or_a_restart_opens_no_second_incident(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """The same failure sent twice (a retry, a replay, a new sink after a restart): one incident."""
    app, url = pd
    async with PagerDutySink(_config(url)) as sink:
        await sink.send(_failed())
    async with PagerDutySink(_config(url)) as again:
        await again.send(_failed())
        await again.send(_failed(eid="evt-replayed-with-another-id"))
    keys = [b["dedup_key"] for b in app.accepted() if b["event_action"] == "trigger"]
    assert keys == ["ftwatch/openai/ftjob-abc/failed"] * 3
    assert app.opened == 1


async def test_a_retry_after_a_partial_failure_sends_every_alert_again(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """The resolve went through, the trigger hit a 503: the retry sends both, one incident."""
    app, url = pd
    app.script += [(202, {}, b'{"status": "success"}'), (503, {}, b"{}")]
    async with PagerDutySink(_config(url)) as sink:
        with pytest.raises(SinkUnavailable):
            await sink.send(_failed())
        await sink.send(_failed())
    actions = [(r.body["event_action"], r.status) for r in app.received]
    assert actions == [("resolve", 202), ("trigger", 503), ("resolve", 202), ("trigger", 202)]
    assert app.opened == 1


async def test_events_without_alerts_and_notices(pd: tuple[PagerDutyLike, str]) -> None:
    """A created job sends nothing; a success sends a change event only when asked."""
    app, url = pd
    succeeded = _event(JobSucceeded, "succeeded", job={"fine_tuned_model": "ft:x"})
    async with PagerDutySink(_config(url)) as sink:
        assert (
            await sink.send(
                _event(JobSucceeded, "running").model_copy(
                    update={"type": "fine_tuning.job.created"}
                )
            )
            == "no alert"
        )
        assert (
            await sink.send(succeeded)
            == "HTTP 202 resolve dedup_key=ftwatch/openai/ftjob-abc/stalled"
        )
    assert app.changes == []
    async with PagerDutySink(_config(url, notify_succeeded=True)) as sink:
        receipt = await sink.send(succeeded)
    assert receipt.endswith("; HTTP 202 change")
    [change] = app.changes
    assert (
        change["payload"]["summary"]
        == "✅ Fine-tuning job succeeded: ftjob-abc (support-bot) → ft:x"
    )
    assert change["payload"]["source"] == "openai"
    assert change["payload"]["custom_details"]["condition"] == "succeeded"
    assert app.opened == 0


async def test_a_test_event_is_a_marked_change_event(pd: tuple[PagerDutyLike, str]) -> None:
    """``ftwatch sinks test``'s sample pages nobody: one change event whose summary says test."""
    app, url = pd
    sample = _event(JobSucceeded, "succeeded", job={"metadata": {"ftwatch_test": "true"}})
    async with PagerDutySink(_config(url)) as sink:
        assert await sink.send(sample) == "HTTP 202 change"
    [change] = app.changes
    assert change["payload"]["summary"].startswith(f"{TEST_MARK} Fine-tuning job succeeded")
    assert app.accepted() == [] and app.opened == 0


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (429, {"Retry-After": "7"}, SinkUnavailable, 7.0),
        (500, {}, SinkUnavailable, None),
        (503, {"Retry-After": "30"}, SinkUnavailable, 30.0),
        (403, {}, SinkDisabled, None),
        (404, {}, SinkDisabled, None),
    ],
)
async def test_answers_map_to_outcomes(
    pd: tuple[PagerDutyLike, str],
    status: int,
    headers: dict[str, str],
    error: type[SinkError],
    retry_after: float | None,
) -> None:
    """429 and 5xx are retried (after Retry-After); 403/404 mean the key or URL is wrong."""
    app, url = pd
    app.script.append((status, headers, b'{"status": "throttled"}'))
    async with PagerDutySink(_config(url)) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(_stalled())
    assert type(caught.value) is error
    assert caught.value.status_code == status
    assert getattr(caught.value, "retry_after", None) == retry_after
    assert f"HTTP {status}" in str(caught.value) and "'on-call'" in str(caught.value)
    _assert_no_secret(str(caught.value))


async def test_a_400_is_permanent_and_names_pagerdutys_errors(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """PagerDuty's ``errors`` are in the reason, each one line, bounded, without the key."""
    app, url = pd
    errors = [
        f"'payload.summary' problem {ROUTING_KEY}\nline two",
        *[f"e{i}" * 100 for i in range(9)],
    ]
    answer = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    app.script.append((400, {}, json.dumps(answer).encode()))
    async with PagerDutySink(_config(url)) as sink:
        with pytest.raises(SinkRejected) as caught:
            await sink.send(_stalled())
    reason = caught.value.reason
    assert reason.startswith(
        "PagerDuty rejected the event (HTTP 400, Event object is invalid: "
        "'payload.summary' problem ******** line two; e0e0"
    )
    assert reason.endswith("; and 5 more)")
    assert len(reason) < 800 and "\n" not in reason
    _assert_no_secret(reason, str(caught.value))


async def test_a_refused_routing_key_disables_the_sink(pd: tuple[PagerDutyLike, str]) -> None:
    """A 400 about the routing key is no one event's fault: the sink stops, saying what to check."""
    app, url = pd
    answer = {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Invalid routing key"],
    }
    app.script.append((400, {}, json.dumps(answer).encode()))
    async with PagerDutySink(_config(url)) as sink:
        with pytest.raises(
            SinkDisabled, match=r"Invalid routing key.*check routing_key and api_url"
        ):
            await sink.send(_stalled())


async def test_the_receiver_answers_a_bad_body_like_pagerduty(
    pd: tuple[PagerDutyLike, str],
) -> None:
    """The local receiver itself refuses a broken body with PagerDuty's error shape."""
    _, url = pd
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/v2/enqueue", json={"event_action": "trigger"})
    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert "'payload' is missing or not an object" in body["errors"]


async def test_an_unreachable_pagerduty_is_transient() -> None:
    """Nobody listening: SinkUnavailable saying so, without the URL or the key."""
    async with serve_asgi(PagerDutyLike()) as url:
        pass
    async with PagerDutySink(_config(url)) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_stalled())
    assert str(caught.value) == "sink 'on-call': PagerDuty refused the connection"
    assert caught.value.__cause__ is None


async def test_the_routing_key_never_reaches_logs_or_errors(pd: tuple[PagerDutyLike, str]) -> None:
    """Through every kind of outcome, no log entry, error or repr holds the routing key."""
    app, url = pd
    app.script.extend(
        [
            (429, {"Retry-After": "1"}, b"{}"),
            (500, {}, b"oops"),
            (400, {}, json.dumps({"errors": [ROUTING_KEY]}).encode()),
            (404, {}, b"nope"),
        ]
    )
    seen: list[str] = []
    with capture_logs() as logs:
        async with PagerDutySink(_config(url)) as sink:
            seen.append(repr(sink))
            for event in (_stalled(),) * 4 + (_failed(),):
                try:
                    seen.append(await sink.send(event))
                except SinkError as exc:
                    seen += [str(exc), repr(exc)]
    assert len(seen) == 1 + 4 * 2 + 1
    _assert_no_secret(*seen, repr(logs))
    assert any(entry["event"] == "pagerduty_unavailable" for entry in logs)
