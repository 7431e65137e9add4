"""Tests for the Teams sink (plugins/ftwatch_teams): its cards, its config, the answers it reads.

Every card is validated against Microsoft's published Adaptive Card JSON schemas (1.4, the
version the cards declare, and 1.5), kept in ``tests/fixtures/adaptive-cards/`` with their source
and licence. Every post goes over a real loopback socket to a recording receiver.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs
from tests.test_cli import _config, _run
from tests.test_e2e import Env, start_daemon, stop
from tests.test_sink_slack import T0, _all_events, _failed, _history, _succeeded

from ftwatch_teams import (
    CARD_CONTENT_TYPE,
    MESSAGE_MAX_BYTES,
    TeamsConfig,
    TeamsSink,
    build_message,
    encode_message,
    neutralise,
)
from watcher.clock import ManualClock
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import (
    BaseEvent,
    JobCheckpointCreated,
    JobEtaChanged,
    JobMessage,
    JobProgress,
    JobStalled,
    JobUnstalled,
)
from watcher.facts import TEST_MARK
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.simulator import Simulator, serve_simulator
from watcher.sinks import register_sink_secrets, sink_plugin
from watcher.testing_receiver import RecordedRequest, RecordingReceiver

FIXTURES = Path(__file__).parent / "fixtures" / "adaptive-cards"
#: The signature in a Workflows URL: anyone holding it can post to the channel.
SIG = "s1gN4tur3-hunter2-teams"
WORKFLOW_PATH = "/workflows/0123abcd/triggers/manual/paths/invoke"


def _validators() -> dict[str, jsonschema.Draft6Validator]:
    found = {}
    for version in ("1.4", "1.5"):
        schema = json.loads((FIXTURES / f"adaptive-card-{version}.schema.json").read_text())
        jsonschema.Draft6Validator.check_schema(schema)
        found[version] = jsonschema.Draft6Validator(schema)
    return found


SCHEMAS = _validators()


def _card_of(message: dict[str, Any]) -> dict[str, Any]:
    """The one Adaptive Card of a Teams message, after checking the envelope around it."""
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert (
        attachment["contentType"] == CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"
    )
    assert attachment["contentUrl"] is None
    card: dict[str, Any] = attachment["content"]
    return card


#: Cards already found valid, by their JSON: a card takes ~50 ms to validate (the schema tries
#: every element type at every place), and the same card is checked where built and where received.
_VALID: set[str] = set()


def assert_valid_card(message: dict[str, Any]) -> dict[str, Any]:
    """Validate a message's card against both published schemas; return the card."""
    card = _card_of(message)
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    key = json.dumps(card, sort_keys=True)
    if key not in _VALID:
        for version, validator in SCHEMAS.items():
            errors = [
                f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(card)
            ]
            assert not errors, f"not a valid Adaptive Card {version}: {errors}"
        _VALID.add(key)
    return card


def _texts(card: dict[str, Any]) -> list[str]:
    return [block["text"] for block in card["body"] if block["type"] == "TextBlock"]


def _facts(card: dict[str, Any]) -> dict[str, str]:
    [fact_set] = [block for block in card["body"] if block["type"] == "FactSet"]
    return {fact["title"]: fact["value"] for fact in fact_set["facts"]}


# ---------------------------------------------------------------------------------------------
# Events

JOB = FineTuningJob.model_validate(
    {"id": "ftjob-1", "object": "fine_tuning.job", "status": "running", "model": "m"}
)
COMMON: dict[str, Any] = {"id": "evt_1", "source": "openai", "observed_at": T0 + 100.0, "job": JOB}
HOSTILE = (
    "**URGENT** [click to re-authorise](https://evil.example/login) <b>bold</b> "
    "<a href='https://evil.example'>x</a> {{DATE(2017-02-14T06:08:39Z, SHORT)}}\n"
    "- a list item\n1. numbered\n# heading\n> quote\n`code` _it_ ~strike~ \\ \x00\x07 😀\u202e"
)


def _progress_events() -> list[BaseEvent]:
    return [
        JobProgress(**COMMON, step=10, total_steps=100, train_loss=0.5, percent=10.0),
        JobCheckpointCreated(
            **COMMON,
            checkpoint_id="ftckpt_1",
            step_number=10,
            fine_tuned_model_checkpoint="ft:m:ckpt-step-10",
            metrics={"train_loss": 0.5},
        ),
        JobMessage(**COMMON, level="warn", message="careful", api_event_id="ftevent-1"),
        JobMessage(**COMMON, level="error", message=HOSTILE, api_event_id="ftevent-2"),
        JobStalled(**COMMON, reason="queued_too_long", since=T0 - 7200.0, threshold=3600.0),
        JobStalled(**COMMON, reason="a_new_reason", since=T0, threshold=60.0),
        JobUnstalled(**COMMON, reason="queued_too_long", since=T0, stalled_for=7200.0),
        JobEtaChanged(
            **COMMON, previous_estimated_finish=1000, estimated_finish=4600, shift=3600.0
        ),
    ]


def _test_sample() -> BaseEvent:
    event = _succeeded()
    job = event.job.model_copy(update={"metadata": {"ftwatch_test": "true"}})
    return event.model_copy(update={"job": job})


def _every_event() -> list[BaseEvent]:
    return [
        *_all_events(),
        *_progress_events(),
        _failed(HOSTILE * 100),
        _failed("😀" * 10_000),
        _failed('"\\\x01' * 5_000),
        _test_sample(),
    ]


# ---------------------------------------------------------------------------------------------
# Cards


@pytest.mark.parametrize("event", _every_event(), ids=lambda e: e.type.rsplit(".", 1)[-1])
def test_every_card_is_a_valid_adaptive_card_within_teams_size(event: BaseEvent) -> None:
    """Each event type, hostile and null-filled jobs included, gives one schema-valid card that
    fits Teams' message size, says what happened and names the event."""
    message = build_message(event)
    card = assert_valid_card(message)
    assert len(encode_message(message)) <= MESSAGE_MAX_BYTES < 28 * 1024
    texts = _texts(card)
    assert texts[0]  # the title
    assert f"event {event.id} · seen" in texts[-1] and texts[-1].startswith("ftwatch · ")
    assert _facts(card)["Job"] == neutralise(event.job.id)
    assert card["fallbackText"]


def test_the_card_carries_the_same_facts_as_the_slack_message() -> None:
    """Title, facts, error text, colour, dashboard button and context line of a failed job."""
    event = _failed("File has 3 bad lines").model_copy(
        update={"dashboard_url": "https://platform.openai.com/finetune/ftjob-abc123"}
    )
    card = assert_valid_card(build_message(event))
    title = card["body"][0]
    assert title["text"] == "❌ Fine-tuning job failed · support-bot"
    assert title["color"] == "attention"
    assert title["weight"] == "bolder"
    assert _facts(card) == {
        "Job": "ftjob-abc123",
        "Base model": "gpt-4o-mini-2024-07-18",
        "Suffix": "support-bot",
        "Status": "running → failed",
        "Error code": "invalid_training_file",
        "Parameter": "training_file",
        "Queued for": "4m 12s",
        "Ran for": "1h 02m",
        "Source": "openai",
    }
    label, text = card["body"][2], card["body"][3]
    assert label["text"] == "Error message"
    assert text == {
        "type": "TextBlock",
        "text": "File has 3 bad lines",
        "wrap": True,
        "fontType": "monospace",
        "spacing": "small",
    }
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in dashboard",
            "url": "https://platform.openai.com/finetune/ftjob-abc123",
        }
    ]
    context = card["body"][-1]
    assert context["size"] == "small" and context["isSubtle"] is True
    seen = datetime.fromtimestamp(int(event.observed_at), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert context["text"] == f"ftwatch · event {event.id} · seen {seen}"


@pytest.mark.parametrize(
    ("event", "colour"),
    [
        (_succeeded(), "good"),
        (_failed(), "attention"),
        (_history({"status": "cancelled"})[-1], "warning"),
        (_history({"status": "cancelled"})[0], "default"),
        (_progress_events()[4], "warning"),
        (_progress_events()[6], "good"),
        (_progress_events()[3], "attention"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.type.rsplit(".", 1)[-1],
)
def test_the_title_is_coloured_by_outcome(event: BaseEvent, colour: str) -> None:
    """Good news is green, failures red, stalls and cancellations amber, the rest plain."""
    assert _card_of(build_message(event))["body"][0]["color"] == colour


def test_without_a_dashboard_link_there_is_no_button() -> None:
    """An event with no usable link gets no action (and an unsafe one is left out)."""
    assert "actions" not in _card_of(build_message(_failed()))
    sneaky = _failed().model_copy(update={"dashboard_url": "javascript:alert(1)"})
    assert "actions" not in _card_of(build_message(sneaky))


def test_a_test_event_is_marked_as_a_test() -> None:
    """``sinks test``'s sample says so in its title, its fallback text and its context line."""
    card = assert_valid_card(build_message(_test_sample()))
    assert card["body"][0]["text"].startswith(TEST_MARK)
    assert card["fallbackText"].startswith(TEST_MARK)
    assert "a test message, no job changed" in card["body"][-1]["text"]
    assert "✅" not in card["body"][0]["text"]


def test_text_from_the_api_cannot_link_format_or_inject_dates() -> None:
    """Markdown links, emphasis, list markers and ``{{DATE()}}`` in an error stay literal text."""
    card = assert_valid_card(build_message(_failed(HOSTILE)))
    shown = card["body"][3]["text"]
    assert "](" not in shown.replace("\\](", "")
    assert "[click" not in shown.replace("\\[click", "")
    assert "**" not in shown.replace("\\*", "")
    assert "{{" not in shown
    assert "\n\\- a list item\n1\\. numbered\n" in shown
    # A right-to-left override cannot reorder what follows it.
    assert "\u202e" not in shown and shown.endswith("😀\ufffd")
    # Unescaping gives back what the API said: nothing is lost, only made literal.
    unescaped = re.sub(r"\\(.)", r"\1", shown, flags=re.S).replace("\u200b", "")
    assert unescaped == HOSTILE.replace("\u202e", "\ufffd")


def test_a_huge_message_is_cut_to_fit_with_an_ellipsis() -> None:
    """A 40 KB error of four-byte characters still gives a card under Teams' limit, cut with …"""
    message = build_message(_failed("😀" * 10_000))
    assert len(encode_message(message)) <= MESSAGE_MAX_BYTES
    text = _card_of(message)["body"][3]["text"]
    assert text.endswith("…") and len(text) > 5000


# ---------------------------------------------------------------------------------------------
# Config


def test_entry_point_finds_the_teams_sink() -> None:
    """The ``teams`` entry point resolves to TeamsSink and its config model."""
    plugin = sink_plugin("teams")
    assert plugin.factory is TeamsSink
    assert plugin.config_model is TeamsConfig


@pytest.mark.parametrize(
    "url",
    [
        f"prod-00.westus.logic.azure.com/workflows/x?sig={SIG}",
        f"ftp://prod-00.westus.logic.azure.com/workflows/x?sig={SIG}",
        f"https:///workflows/x?sig={SIG}",
        f"https://prod-00.westus.logic.azure.com/work flows?sig={SIG}",
    ],
)
def test_invalid_url_is_explained_without_quoting_it(url: str) -> None:
    """A url that is not an http(s) URL with a host names the key and what is expected."""
    with pytest.raises(ValidationError) as caught:
        TeamsConfig(name="t", type="teams", url=url)
    text = str(caught.value)
    assert "url" in text and "expected the HTTP URL of a Teams workflow" in text
    assert SIG not in text and "hunter2" not in text


def _teams_config(base_url: str, **extra: Any) -> TeamsConfig:
    return TeamsConfig(
        name="ml-team",
        type="teams",
        url=f"{base_url}{WORKFLOW_PATH}?api-version=2016-06-01&sp=%2Ftriggers&sig={SIG}",
        **extra,
    )


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SIG not in text
        assert "hunter2" not in text
        assert "sig=" not in text


async def test_the_url_stays_out_of_repr_and_dumps() -> None:
    """The signed URL appears in no repr, str or JSON dump of the config or the sink."""
    config = _teams_config("https://prod-00.westus.logic.azure.com:443")
    async with TeamsSink(config) as sink:
        _assert_no_secret(repr(config), str(config), config.model_dump_json(), repr(sink))
    assert "ml-team" in repr(sink)


def test_check_masks_the_url_and_explains_a_missing_one(tmp_path: Path) -> None:
    """`ftwatch check` shows the sink with its URL masked; without url it exits 2 naming it."""
    url = f"https://prod-00.westus.logic.azure.com{WORKFLOW_PATH}?sig={SIG}"
    path = _config(tmp_path, f'[[sinks]]\nname = "team"\ntype = "teams"\nurl = "{url}"\n')
    code, out, err = _run("check", "--config", str(path))
    assert code == 0, err
    _assert_no_secret(out, err)
    [sink] = json.loads(out)["sinks"]
    assert sink["url"] == "********"
    assert sink["timeout"] == 10.0
    path = _config(tmp_path, '[[sinks]]\nname = "team"\ntype = "teams"\n')
    code, out, err = _run("check", "--config", str(path))
    assert code == 2
    assert out == ""
    assert err == f"ftwatch: error: {path}: sinks[0]: missing required key 'url'\n"


# ---------------------------------------------------------------------------------------------
# Delivery, to a real receiver on loopback


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one server serves every test (each server costs 0.1 s to stop)."""
    return "asyncio"


@dataclass
class _Fresh:
    """An ASGI app handing each request to the receiver of the current test."""

    receiver: RecordingReceiver = field(default_factory=RecordingReceiver)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on."""
        await self.receiver(scope, receive, send)


@pytest.fixture(scope="module")
async def workflow_server() -> AsyncIterator[tuple[_Fresh, str]]:
    """One server on loopback for the module, and its base URL."""
    app = _Fresh()
    async with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def workflow(workflow_server: tuple[_Fresh, str]) -> tuple[RecordingReceiver, str]:
    """A new Workflows-like receiver answering 202 Accepted, and the server's base URL."""
    app, url = workflow_server
    app.receiver = RecordingReceiver()
    app.receiver.respond(202, b"")
    return app.receiver, url


def _card_received(request: RecordedRequest) -> dict[str, Any]:
    assert request.method == "POST"
    assert request.path == WORKFLOW_PATH
    assert f"sig={SIG}" in request.query
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    return assert_valid_card(json.loads(request.body))


async def test_every_event_arrives_as_a_valid_card(
    workflow: tuple[RecordingReceiver, str],
) -> None:
    """The bytes received for every event type, hostile ones included, are a Teams message whose
    one card validates against the published schemas; 202 Accepted is a delivery."""
    receiver, url = workflow
    events = _every_event()
    async with TeamsSink(_teams_config(url)) as sink:
        for event in events:
            assert await sink.send(event) == "HTTP 202"
    assert len(receiver.requests) == len(events)
    for request, event in zip(receiver.requests, events, strict=True):
        assert request.body == encode_message(build_message(event))
        assert len(request.body) <= MESSAGE_MAX_BYTES
        card = _card_received(request)
        assert event.id in card["body"][-1]["text"]


@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "retry_after", "says"),
    [
        (429, {"Retry-After": "7"}, b"", SinkUnavailable, 7.0, "HTTP 429"),
        (
            429,
            {},
            b'{"error":{"code":"WorkflowRequestsThrottled","message":"slow down"}}',
            SinkUnavailable,
            None,
            "HTTP 429, WorkflowRequestsThrottled",
        ),
        (500, {}, b"<html>oops</html>", SinkUnavailable, None, "HTTP 500"),
        (502, {"Retry-After": "3"}, b"", SinkUnavailable, 3.0, "HTTP 502"),
        (503, {}, b"", SinkUnavailable, None, "HTTP 503"),
        (408, {}, b"", SinkUnavailable, None, "HTTP 408"),
        (
            400,
            {},
            b'{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body..."}}',
            SinkRejected,
            None,
            "HTTP 400, TriggerInputSchemaMismatch",
        ),
        (
            401,
            {},
            b'{"error":{"code":"DirectApiAuthorizationRequired","message":"sig wrong"}}',
            SinkRejected,
            None,
            "HTTP 401, DirectApiAuthorizationRequired",
        ),
        (413, {}, b"too big <script>", SinkRejected, None, "HTTP 413"),
        (302, {"Location": "https://elsewhere.example/"}, b"", SinkRejected, None, "HTTP 302"),
        (410, {}, b"", SinkDisabled, None, "HTTP 410"),
    ],
)
async def test_answers_map_to_outcomes(
    workflow: tuple[RecordingReceiver, str],
    status: int,
    headers: dict[str, str],
    body: bytes,
    error: type[SinkError],
    retry_after: float | None,
    says: str,
) -> None:
    """429, 5xx and 408 are retried (Retry-After honoured), other 4xx and 3xx are permanent, 410
    stops the sink; each error names the sink, the status and the workflow's error code."""
    receiver, url = workflow
    receiver.respond(status, body, headers)
    async with TeamsSink(_teams_config(url)) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(_failed())
    assert type(caught.value) is error
    assert caught.value.sink == "ml-team"
    assert caught.value.status_code == status
    assert getattr(caught.value, "retry_after", None) == retry_after
    message = str(caught.value)
    assert "'ml-team'" in message and says in message
    assert "<" not in message and "message" not in message.split(":", 1)[1]
    _assert_no_secret(message, repr(caught.value))
    [request] = receiver.requests  # one attempt: retrying is the dispatcher's job
    _card_received(request)


async def test_connection_refused_and_timeout_are_transient(
    workflow: tuple[RecordingReceiver, str],
) -> None:
    """No workflow listening, or none answering within ``timeout``, is retried later."""
    receiver, url = workflow
    async with serve_asgi(RecordingReceiver()) as closed:
        pass  # the port is closed again once the server has stopped
    async with TeamsSink(_teams_config(closed)) as sink:
        with pytest.raises(SinkUnavailable) as refused:
            await sink.send(_failed())
    assert str(refused.value) == "sink 'ml-team': Teams refused the connection"
    assert refused.value.__cause__ is None
    receiver.hang()
    async with TeamsSink(_teams_config(url, timeout="0.2s")) as sink:
        with anyio.fail_after(5), pytest.raises(SinkUnavailable) as slow:
            await sink.send(_failed())
    assert str(slow.value).endswith("after 0.2s")
    receiver.respond(202)
    _assert_no_secret(str(refused.value), repr(refused.value), str(slow.value))


async def test_the_url_never_reaches_logs_or_errors(
    workflow: tuple[RecordingReceiver, str],
) -> None:
    """Through every kind of outcome, no log entry, error or repr holds the signed URL."""
    receiver, url = workflow
    config = _teams_config(url)
    register_sink_secrets(config)
    seen: list[str] = []
    answers = [(202, b""), (429, b""), (500, b""), (400, b'{"error":{"code":"BadRequest"}}')]
    with capture_logs() as logs:
        async with TeamsSink(config) as sink:
            seen.append(repr(sink))
            for status, body in answers:
                receiver.respond(status, body, {"Retry-After": "1"})
                try:
                    await sink.send(_failed())
                except SinkError as exc:
                    seen += [str(exc), repr(exc)]
    assert len(seen) == 1 + 2 * 3
    _assert_no_secret(*seen, repr(logs))
    assert any(entry["event"] == "teams_unavailable" for entry in logs)
    assert any(entry["event"] == "teams_answered" for entry in logs)


# ---------------------------------------------------------------------------------------------
# `ftwatch sinks test` and the daemon, end to end


async def test_sinks_test_sends_a_card_marked_as_a_test(
    tmp_path: Path, workflow: tuple[RecordingReceiver, str]
) -> None:
    """`ftwatch sinks test` posts the sample as a valid card that says it is a test, exit 0."""
    receiver, url = workflow
    body = f'[[sinks]]\nname = "team"\ntype = "teams"\nurl = "{url}{WORKFLOW_PATH}?sig={SIG}"\n'
    path = _config(tmp_path, body)
    code, out, err = await anyio.to_thread.run_sync(
        _run, "sinks", "test", "team", "--config", str(path)
    )
    assert code == 0, err
    assert re.fullmatch(
        r"ok: sample event \S+ delivered to sink 'team' in \d+ ms \(HTTP 202\)\n", out
    )
    [request] = receiver.requests
    card = _card_received(request)
    assert card["body"][0]["text"].startswith(TEST_MARK)
    assert "a test message, no job changed" in card["body"][-1]["text"]
    _assert_no_secret(out, err)


def _cards(receiver: RecordingReceiver) -> list[dict[str, Any]]:
    """Every card the receiver acknowledged, in the order they came."""
    return [
        _card_of(json.loads(request.body))
        for request, status in receiver.answered
        if 200 <= status < 300
    ]


async def _until_card(receiver: RecordingReceiver, job: str, title: str) -> dict[str, Any]:
    """The first acknowledged card about ``job`` whose title has ``title``, once it came."""
    with anyio.fail_after(30):
        while True:
            for card in _cards(receiver):
                if _facts(card)["Job"] == job and title in card["body"][0]["text"]:
                    return card
            await receiver.wait_for_answers(len(receiver.answered) + 1)


async def test_the_daemon_delivers_a_failure_and_a_stall_pair_as_cards(tmp_path: Path) -> None:
    """Through `ftwatch run`: a job stuck in the queue, moving again, and a job that fails with a
    hostile error reach a Teams workflow as valid cards, the first one after a 429."""
    t0 = float(int(time.time()))
    sim = Simulator(ManualClock(t0), seed=9)
    stuck = sim.create_job(
        created_at=t0 - 5 * 3600,
        script=[(0, "queued"), (5 * 3600 + 60, "running")],
        train_seconds=100 * 3600,
    )
    error = {"code": "invalid_training_file", "message": HOSTILE, "param": "training_file"}
    doomed = sim.create_job(created_at=t0, script=[(0, "running"), (120, "failed", error)])
    receiver = RecordingReceiver()
    receiver.respond(202)
    receiver.fail_first(1, 429, headers={"Retry-After": "0"})
    async with serve_simulator(sim, port=0) as sim_url, serve_asgi(receiver) as url:
        env = Env(sim, receiver, tmp_path / "f.toml", tmp_path / "l", tmp_path / "s.db", tmp_path)
        env.config.write_text(
            f'[state]\npath = "{env.state}"\n\n'
            f'[[sources]]\nname = "sim"\nbase_url = "{sim_url}"\npoll_interval = 0.05\n'
            'jitter = 0\ntimeout = 1\nprogress_interval = 0.05\nstall_no_progress = "off"\n\n'
            f'[[sinks]]\nname = "team"\ntype = "teams"\n'
            f'url = "{url}{WORKFLOW_PATH}?sig={SIG}"\ntimeout = 1\n\n'
            "[sinks.retry]\ninitial_backoff = 0.02\nmax_backoff = 0.2\n"
        )
        daemon = await start_daemon(env)
        try:
            stalled = await _until_card(receiver, stuck, "stuck in queue")
            sim.clock.set(t0 + 61)  # type: ignore[attr-defined]
            moving = await _until_card(receiver, stuck, "moving again")
            sim.clock.set(t0 + 121)  # type: ignore[attr-defined]
            failed = await _until_card(receiver, doomed, "Fine-tuning job failed")
        finally:
            assert await stop(daemon) == 0
    assert receiver.answered[0][1] == 429  # the first card was refused once, then retried
    for request in receiver.requests:
        _card_received(request)
    assert stalled["body"][0]["color"] == "warning"
    assert moving["body"][0]["color"] == "good"
    assert failed["body"][0]["color"] == "attention"
    assert _facts(failed)["Error code"] == "invalid_training_file"
    assert failed["body"][3]["text"] == neutralise(HOSTILE)
    contexts = [card["body"][-1]["text"] for card in _cards(receiver)]
    assert len(set(contexts)) == len(contexts), "a card was delivered twice"
    _assert_no_secret((tmp_path / "daemon.log").read_text())
