"""The Alertmanager sink against local recording receivers: payloads, answers, HA, state, secrets.

The real Alertmanager's tests are in test_sink_alertmanager_real.py; these are the fast cases,
each post over a real loopback socket to ``watcher.testing_receiver``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from structlog.testing import capture_logs
from tests.helpers import free_port

from ftwatch_alertmanager import AlertmanagerConfig, AlertmanagerSink
from watcher.cli import main
from watcher.clock import ManualClock
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent, JobFailed, JobStalled, JobSucceeded, JobUnstalled
from watcher.facts import TEST_MARK
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import BackgroundSink, SinkContext, register_sink_secrets, sink_plugin
from watcher.testing_receiver import RecordedRequest, RecordingReceiver

T0 = 1_750_000_000.0
PASSWORD = "am-pass-9f8e7d6c"
TOKEN = "am-bearer-1a2b3c4d"
JOB = "ftjob-am1"


def _job(status: str, **fields: Any) -> FineTuningJob:
    return FineTuningJob.model_validate(
        {
            "id": JOB,
            "object": "fine_tuning.job",
            "status": status,
            "model": "gpt-4o-mini-2024-07-18",
            "user_provided_suffix": "nightly",
            "created_at": int(T0) - 7200,
            **fields,
        }
    )


def failed_event(finished_at: float, job_id: str = JOB) -> BaseEvent:
    """The failure of a job that ended at ``finished_at``, seen a little after."""
    job = _job(
        "failed",
        id=job_id,
        finished_at=int(finished_at),
        error={"code": "invalid_training_file", "message": "line 3 is not JSON", "param": None},
    )
    return JobFailed(
        id=f"evt-failed-{job_id}",
        source="openai",
        observed_at=finished_at + 5,
        previous_status="running",
        job=job,
        dashboard_url=f"https://platform.openai.com/finetune/{job_id}",
    )


def stalled_event(now: float) -> BaseEvent:
    """A job queued since an hour before ``now``, announced stalled."""
    return JobStalled(
        id="evt-stalled",
        source="openai",
        observed_at=now,
        job=_job("queued"),
        reason="queued_too_long",
        since=now - 3600,
        threshold=1800,
    )


def unstalled_event(now: float) -> BaseEvent:
    """The same job running again: its stall is over."""
    return JobUnstalled(
        id="evt-unstalled",
        source="openai",
        observed_at=now,
        previous_status="queued",
        job=_job("running"),
        reason="queued_too_long",
        since=now - 4000,
        stalled_for=4000,
    )


def succeeded_event(now: float) -> BaseEvent:
    """The job's success."""
    job = _job("succeeded", finished_at=int(now), fine_tuned_model="ft:gpt-4o-mini:acme::x")
    return JobSucceeded(id="evt-ok", source="openai", observed_at=now, job=job)


def _config(*urls: str, **keys: Any) -> AlertmanagerConfig:
    return AlertmanagerConfig(name="am", type="alertmanager", urls=list(urls), **keys)


def _alerts(request: RecordedRequest) -> list[dict[str, Any]]:
    assert request.method == "POST"
    assert request.path == "/api/v2/alerts"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert isinstance(body, list)
    return body


def _ts(seconds: float) -> str:
    from ftwatch_alertmanager._payload import timestamp

    return timestamp(seconds)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[RecordingReceiver, str]]:
    """A recording receiver standing in for one Alertmanager."""
    recorder = RecordingReceiver()
    async with serve_asgi(recorder) as url:
        yield recorder, url


class Running:
    """A sink whose keep-alive runs on a ManualClock, as the daemon would run it."""

    def __init__(self, sink: AlertmanagerSink, clock: ManualClock, state_dir: Path) -> None:
        self.sink, self.clock = sink, clock
        state_dir.mkdir(exist_ok=True)
        self.context = SinkContext(state_dir=state_dir, now=clock.now, sleep=clock.sleep)

    async def rounds(self, n: int) -> None:
        """Wait until the keep-alive has done ``n`` rounds."""
        with anyio.fail_after(10):
            await self.sink.wait_for_rounds(n)


async def _running(
    config: AlertmanagerConfig, clock: ManualClock, state_dir: Path, tg: anyio.abc.TaskGroup
) -> Running:
    sink = AlertmanagerSink(config)
    running = Running(sink, clock, state_dir)
    tg.start_soon(sink.run, running.context)
    await running.rounds(1)
    return running


# -- what is posted ------------------------------------------------------------------------------


async def test_a_failure_resolves_the_stall_and_fires_in_one_post_with_every_label(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """The exact alerts of a failed job: labels, annotations, times and the dashboard link."""
    recorder, url = receiver
    clock = ManualClock(T0)
    config = _config(url, labels={"team": "ml"}, severity={"failed": "critical"})
    async with anyio.create_task_group() as tg:
        running = await _running(config, clock, tmp_path / "state", tg)
        receipt = await running.sink.send(failed_event(T0 - 60))
        tg.cancel_scope.cancel()
    await running.sink.aclose()
    assert receipt == "HTTP 200"
    [request] = recorder.requests
    *stalls, failed = _alerts(request)
    # The stall is resolved first (never fired: each status it could have stalled in).
    assert [s["labels"]["condition"] for s in stalls] == ["stalled"] * 3
    assert {s["endsAt"] for s in stalls} == {_ts(T0)}
    assert failed == {
        "labels": {
            "alertname": "FineTuningJobFailed",
            "source": "openai",
            "job": JOB,
            "model": "gpt-4o-mini-2024-07-18",
            "suffix": "nightly",
            "status": "failed",
            "condition": "failed",
            "severity": "critical",
            "team": "ml",
        },
        "annotations": {
            "summary": "❌ Fine-tuning job failed: ftjob-am1 (nightly): invalid_training_file: "
            "line 3 is not JSON",
            "description": failed["annotations"]["description"],
            "alert_key": f"ftwatch/openai/{JOB}/failed",
        },
        "startsAt": _ts(T0 - 60),
        "endsAt": _ts(T0 + 4 * 60),
        "generatorURL": f"https://platform.openai.com/finetune/{JOB}",
    }
    description = failed["annotations"]["description"]
    assert "Job: ftjob-am1" in description and "Error message: line 3 is not JSON" in description


async def test_one_alertname_for_all_with_the_condition_label(
    receiver: tuple[RecordingReceiver, str],
) -> None:
    """``alertname`` set: every alert carries it, ``condition`` tells them apart."""
    recorder, url = receiver
    async with AlertmanagerSink(_config(url, alertname="FineTuning")) as sink:
        await sink.send(stalled_event(T0))
    [alert] = _alerts(recorder.requests[0])
    assert alert["labels"]["alertname"] == "FineTuning"
    assert alert["labels"]["condition"] == "stalled"
    assert alert["labels"]["status"] == "queued"
    assert alert["labels"]["severity"] == "warning"
    assert alert["startsAt"] == _ts(T0 - 3600)


async def test_a_stall_resolves_with_the_labels_it_fired_with(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """The job is running when its stall ends, but the resolve names the alert that fired
    (status ``queued``), with ``endsAt`` now; the sink then forgets it."""
    recorder, url = receiver
    clock = ManualClock(T0)
    async with anyio.create_task_group() as tg:
        running = await _running(_config(url), clock, tmp_path / "state", tg)
        await running.sink.send(stalled_event(T0))
        clock.advance(600)
        await running.rounds(2)
        await running.sink.send(unstalled_event(clock.now()))
        assert running.sink.firing == {}
        tg.cancel_scope.cancel()
    await running.sink.aclose()
    fired, kept, resolved = (_alerts(r) for r in recorder.requests)
    assert [{**a, "endsAt": None} for a in kept] == [{**a, "endsAt": None} for a in fired]
    assert kept[0]["endsAt"] == _ts(T0 + 600 + 240)
    assert resolved[0]["labels"] == fired[0]["labels"]
    assert resolved[0]["labels"]["status"] == "queued"
    assert resolved[0]["startsAt"] == fired[0]["startsAt"]
    assert resolved[0]["endsAt"] == _ts(T0 + 600)


async def test_resolving_what_never_fired_is_harmless_and_remembers_nothing(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """A job's end with no stall held: a resolve per status a stall could have had, no state."""
    recorder, url = receiver
    clock = ManualClock(T0)
    async with anyio.create_task_group() as tg:
        running = await _running(_config(url), clock, tmp_path / "state", tg)
        assert await running.sink.send(succeeded_event(T0)) == "HTTP 200"
        tg.cancel_scope.cancel()
    await running.sink.aclose()
    resolves = _alerts(recorder.requests[0])
    assert sorted(a["labels"]["status"] for a in resolves) == [
        "queued",
        "running",
        "validating_files",
    ]
    assert {a["endsAt"] for a in resolves} == {_ts(T0)}
    assert json.loads((tmp_path / "state" / "alerts.json").read_text())["alerts"] == []


async def test_notices_and_cancelled_alerts_only_when_asked(
    receiver: tuple[RecordingReceiver, str],
) -> None:
    """A success is a short info alert with ``notify_succeeded``; other types post nothing."""
    recorder, url = receiver
    async with AlertmanagerSink(_config(url, notify_succeeded=True, notice_duration="10m")) as sink:
        await sink.send(succeeded_event(T0))
        status_only = failed_event(T0).model_copy(update={"type": "fine_tuning.job.status_changed"})
        assert await sink.send(status_only) == "no alert"
    [request] = recorder.requests
    notice = _alerts(request)[-1]
    assert notice["labels"]["alertname"] == "FineTuningJobSucceeded"
    assert notice["labels"]["severity"] == "info"
    assert sink.firing == {}


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retry_after", "words"),
    [
        (400, b'"start time must be before end time"', {}, SinkRejected, None, "HTTP 400, start"),
        (422, b'{"code":601,"message":"bad uri"}', {}, SinkRejected, None, "HTTP 422, bad uri"),
        (401, b"", {}, SinkDisabled, None, "check username and password"),
        (404, b"", {}, SinkDisabled, None, "Alertmanager's base URL"),
        (429, b"", {"Retry-After": "7"}, SinkUnavailable, 7.0, "asked to wait 7s"),
        (503, b"", {"Retry-After": "30"}, SinkUnavailable, 30.0, "HTTP 503"),
        (500, b"", {}, SinkUnavailable, None, "HTTP 500"),
    ],
)
async def test_answers_map_to_outcomes(
    receiver: tuple[RecordingReceiver, str],
    status: int,
    body: bytes,
    headers: dict[str, str],
    error: type[SinkError],
    retry_after: float | None,
    words: str,
) -> None:
    """4xx is permanent (401/403/404 disable the sink), 429 and 5xx retry after Retry-After."""
    recorder, url = receiver
    recorder.respond(status, body, headers)
    async with AlertmanagerSink(_config(url)) as sink:
        with pytest.raises(error) as caught:
            await sink.send(failed_event(T0))
    assert type(caught.value) is error
    assert words in caught.value.reason
    assert caught.value.status_code == status
    if isinstance(caught.value, SinkUnavailable):
        assert caught.value.retry_after == retry_after
    assert sink.firing == {}


async def test_a_refused_connection_is_transient() -> None:
    """Nothing listening: unavailable, retried by the daemon."""
    async with AlertmanagerSink(_config(f"http://127.0.0.1:{free_port()}")) as sink:
        with pytest.raises(SinkUnavailable, match="Alertmanager refused the connection"):
            await sink.send(failed_event(T0))


async def test_every_alertmanager_gets_every_post_and_one_is_enough(tmp_path: Path) -> None:
    """An HA pair: both get each post; one down still delivers (and is logged), the keep-alive
    brings it up to date; both down is unavailable, naming both."""
    first, second = RecordingReceiver(), RecordingReceiver()
    clock = ManualClock(T0)
    async with serve_asgi(first) as one, serve_asgi(second) as two:
        config = _config(one, two, resend_interval="5m")
        async with anyio.create_task_group() as tg:
            running = await _running(config, clock, tmp_path / "state", tg)
            assert await running.sink.send(stalled_event(T0)) == "accepted by 2 of 2 Alertmanagers"
            assert _alerts(first.requests[-1]) == _alerts(second.requests[-1])
            second.respond(503)
            with capture_logs() as logs:
                receipt = await running.sink.send(failed_event(T0, job_id="ftjob-other"))
            assert receipt == "accepted by 1 of 2 Alertmanagers"
            [warning] = [e for e in logs if e["event"] == "alertmanager_partly_delivered"]
            assert warning["failed"] == [f"{two.removeprefix('http://')}: HTTP 503"]
            second.respond(200)
            clock.advance(300)
            await running.rounds(2)
            caught_up = _alerts(second.requests[-1])
            assert {a["labels"]["condition"] for a in caught_up} == {"stalled", "failed"}
            first.respond(500)
            second.respond(502)
            with pytest.raises(SinkUnavailable) as caught:
                await running.sink.send(unstalled_event(T0 + 300))
            tg.cancel_scope.cancel()
        await running.sink.aclose()
    assert one.removeprefix("http://") in caught.value.reason
    assert two.removeprefix("http://") in caught.value.reason


# -- state across restarts -----------------------------------------------------------------------


async def test_firing_alerts_outlive_a_restart_in_a_private_file(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """A second sink on the same state directory posts the held alert at once, same labels;
    the file is private and replaced whole (no temporary left behind)."""
    recorder, url = receiver
    clock = ManualClock(T0)
    state = tmp_path / "state"
    async with anyio.create_task_group() as tg:
        first = await _running(_config(url), clock, state, tg)
        await first.sink.send(stalled_event(T0))
        tg.cancel_scope.cancel()
    await first.sink.aclose()
    assert os.listdir(state) == ["alerts.json"]
    assert stat.S_IMODE((state / "alerts.json").stat().st_mode) == 0o600
    fired = _alerts(recorder.requests[-1])
    clock.advance(60)
    async with anyio.create_task_group() as tg:
        second = await _running(_config(url), clock, state, tg)
        reposted = _alerts(recorder.requests[-1])
        assert [a["labels"] for a in reposted] == [a["labels"] for a in fired]
        assert reposted[0]["endsAt"] == _ts(T0 + 60 + 240)
        await second.sink.send(unstalled_event(T0 + 60))
        tg.cancel_scope.cancel()
    await second.sink.aclose()
    posts = len(recorder.requests)
    async with anyio.create_task_group() as tg:
        third = await _running(_config(url), clock, state, tg)
        tg.cancel_scope.cancel()
    await third.sink.aclose()
    assert len(recorder.requests) == posts  # nothing held, nothing posted


async def test_sends_before_the_keep_alive_starts_win_over_the_file(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """A resolve sent before ``run`` read the file is newer than the file: not re-fired."""
    recorder, url = receiver
    clock = ManualClock(T0)
    state = tmp_path / "state"
    async with anyio.create_task_group() as tg:
        first = await _running(_config(url), clock, state, tg)
        await first.sink.send(stalled_event(T0))
        tg.cancel_scope.cancel()
    await first.sink.aclose()
    async with AlertmanagerSink(_config(url)) as sink:
        assert isinstance(sink, BackgroundSink)
        await sink.send(unstalled_event(T0))  # before run: posted at once
        posts = len(recorder.requests)
        async with anyio.create_task_group() as tg:
            running = Running(sink, clock, state)
            tg.start_soon(sink.run, running.context)
            await running.rounds(1)
            tg.cancel_scope.cancel()
    assert len(recorder.requests) == posts
    assert json.loads((state / "alerts.json").read_text())["alerts"] == []


async def test_a_failed_alert_resolves_after_failed_resolve_after_not_before(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """Kept alive with endsAt capped at the job's end + failed_resolve_after, then resolved."""
    recorder, url = receiver
    clock = ManualClock(T0)
    config = _config(url, failed_resolve_after="2h", resend_interval="20m")
    async with anyio.create_task_group() as tg:
        running = await _running(config, clock, tmp_path / "state", tg)
        await running.sink.send(failed_event(T0 - 60))
        for n in range(2, 7):  # 20-minute rounds up to T0 + 100m
            clock.advance(20 * 60)
            await running.rounds(n)
            [alert] = _alerts(recorder.requests[-1])
            assert alert["endsAt"] == _ts(min(clock.now() + 80 * 60, T0 - 60 + 7200))
        clock.advance(20 * 60)  # T0 + 120m: the failure is 2h and 1m old
        await running.rounds(7)
        tg.cancel_scope.cancel()
    await running.sink.aclose()
    [resolved] = _alerts(recorder.requests[-1])
    assert resolved["endsAt"] == _ts(T0 - 60 + 7200)
    assert running.sink.firing == {}


# -- config, secrets, `ftwatch sinks test` ---------------------------------------------------------


async def test_credentials_are_sent_and_never_shown(
    receiver: tuple[RecordingReceiver, str],
) -> None:
    """Basic auth or a bearer token reach Alertmanager, and no repr, dump, error or log has them."""
    recorder, url = receiver
    secret_url = f"{url}/prefix?token=urltok-5e6f7a8b"
    basic = _config(secret_url, username="ftwatch", password=PASSWORD)
    bearer = _config(url, bearer_token=TOKEN)
    seen: list[str] = []
    with capture_logs() as logs:
        for config in (basic, bearer):
            register_sink_secrets(config)
            async with AlertmanagerSink(config) as sink:
                seen += [repr(config), str(config), config.model_dump_json(), repr(sink)]
                await sink.send(failed_event(T0))
                recorder.respond(401)
                try:
                    await sink.send(failed_event(T0))
                except SinkError as exc:
                    seen += [str(exc), repr(exc)]
                recorder.respond(200)
    pair = base64.b64encode(f"ftwatch:{PASSWORD}".encode()).decode()
    assert recorder.requests[0].headers["authorization"] == f"Basic {pair}"
    assert recorder.requests[0].path == "/prefix/api/v2/alerts"
    assert recorder.requests[2].headers["authorization"] == f"Bearer {TOKEN}"
    for text in [*seen, repr(logs)]:
        assert PASSWORD not in text and TOKEN not in text and "urltok" not in text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("", "missing required key 'urls'"),
        ("urls = []", "sinks[0].urls"),
        ("urls = ['ftp://am']", "expected an Alertmanager URL"),
        ("urls = ['http://u:pw-secret-99@am:9093']", "not in the URL"),
        ("urls = ['http://am:9093']\nlabels = { job = 'x' }", "set by the sink itself"),
        ("urls = ['http://am:9093']\nlabels = { '1x' = 'x' }", "not a valid Alertmanager label"),
        ("urls = ['http://am:9093']\nusername = 'u'", "needs both username and password"),
        ("urls = ['http://am:9093']\nresend_interval = '0s'", "resend_interval"),
    ],
)
def test_config_mistakes_get_one_sentence_and_exit_2(
    tmp_path: Path, body: str, needle: str
) -> None:
    """`ftwatch check` names the key and what is wrong, without quoting a secret."""
    path = tmp_path / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{tmp_path / "state.db"}"

            [[sources]]
            name = "openai"
            api_key = "sk-test-abcdefghijklmnop"

            [[sinks]]
            name = "am"
            type = "alertmanager"
            """
        )
        + body
        + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 2, result.stdout
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "pw-secret-99" not in result.stderr


def test_check_shows_no_credential_nor_url_token(tmp_path: Path) -> None:
    """`ftwatch check` masks the password, the token and a URL's path and query."""
    path = tmp_path / "ftwatch.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "s.db"}"\n\n[[sources]]\nname = "openai"\n'
        f'api_key = "sk-test-abcdefghijklmnop"\n\n[[sinks]]\nname = "am"\n'
        f'type = "alertmanager"\nurls = ["http://am-0:9093", "https://am-1/p?token=urltok-77"]\n'
        f'username = "ftwatch"\npassword = "{PASSWORD}"\n\n[[sinks]]\nname = "am2"\n'
        f'type = "alertmanager"\nurls = ["http://am:9093"]\nbearer_token = "{TOKEN}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    first, second = shown["sinks"]
    assert first["urls"] == ["http://am-0:9093", "https://am-1/********"]
    assert first["password"] == second["bearer_token"] == "********"
    for secret in (PASSWORD, TOKEN, "urltok-77"):
        assert secret not in result.stdout + result.stderr


def test_the_entry_point_finds_the_sink() -> None:
    """``type = "alertmanager"`` is found through the ftwatch.sinks entry point."""
    plugin = sink_plugin("alertmanager")
    assert plugin.factory is AlertmanagerSink
    assert plugin.config_model is AlertmanagerConfig
    with pytest.raises(ValidationError):
        AlertmanagerConfig(name="am", type="alertmanager", urls=["http://a:1", "http://a:1/"])


async def test_sinks_test_posts_a_short_alert_marked_as_a_test(
    receiver: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """`ftwatch sinks test` fires one test alert that ends by itself in five minutes."""
    recorder, url = receiver
    path = tmp_path / "ftwatch.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "s.db"}"\n\n[[sources]]\nname = "openai"\n'
        f'api_key = "sk-test-abcdefghijklmnop"\n\n[[sinks]]\nname = "am"\n'
        f'type = "alertmanager"\nurls = ["{url}"]\n',
        encoding="utf-8",
    )

    def run() -> Any:
        return CliRunner().invoke(main, ["sinks", "test", "am", "--config", str(path)])

    result = await anyio.to_thread.run_sync(run)
    assert result.exit_code == 0, result.stderr
    assert "delivered to sink 'am'" in result.stdout and "(HTTP 200)" in result.stdout
    [alert] = _alerts(recorder.requests[0])
    assert alert["labels"]["test"] == "true"
    assert alert["labels"]["condition"] == "test"
    assert alert["labels"]["alertname"] == "FineTuningWatchTest"
    assert alert["annotations"]["summary"].startswith(TEST_MARK)
    assert "no job changed" in alert["annotations"]["description"]
    assert not (tmp_path / "s.db.sinks").exists()
