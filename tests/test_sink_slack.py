"""Tests for the Slack sink (plugins/ftwatch_slack): its messages, its config and Slack's answers.

Every message is checked with slack_sdk's own Block Kit models, and every post goes over a real
loopback socket to a small Slack-like receiver defined here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from slack_sdk.models.blocks import Block
from structlog.testing import capture_logs

from ftwatch_slack import SlackConfig, SlackSink, build_message, human_duration
from watcher.diff import diff
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import sink_plugin

T0 = 1_700_000_000
WEBHOOK_SECRET = "B0SECRET/hunter2webhookpart"
TOKEN = "xoxb-1111-2222-sekrit-token"
CHANNEL = "C0123456789"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# ---------------------------------------------------------------------------------------------
# Events


def _job(**fields: Any) -> FineTuningJob:
    base: dict[str, Any] = {
        "id": "ftjob-abc123",
        "status": "queued",
        "created_at": T0,
        "model": "gpt-4o-mini-2024-07-18",
        "user_provided_suffix": "support-bot",
    }
    return FineTuningJob.model_validate({**base, **fields})


def _history(last: dict[str, Any], *, bare: bool = False) -> list[BaseEvent]:
    """Every event of a job seen queued, then running 252 s after creation, then ``last``."""
    if bare:
        start = FineTuningJob(id="ftjob-bare", status="queued")
        state, created = diff(None, start, source="openai", now=T0 + 10)
        state, running = diff(
            state, FineTuningJob(id="ftjob-bare", status="running"), source="openai", now=T0 + 252
        )
        end = FineTuningJob.model_validate({"id": "ftjob-bare", **last})
    else:
        state, created = diff(None, _job(), source="openai", now=T0 + 10)
        state, running = diff(state, _job(status="running"), source="openai", now=T0 + 252)
        end = _job(**last)
    _, ended = diff(state, end, source="openai", now=T0 + 252 + 3780 + 30)
    return [*created, *running, *ended]


def _succeeded(**extra: Any) -> BaseEvent:
    events = _history(
        {
            "status": "succeeded",
            "finished_at": T0 + 252 + 3780,
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme:support-bot:AbC123",
            "trained_tokens": 1_234_567,
            **extra,
        }
    )
    return next(e for e in events if e.type == "fine_tuning.job.succeeded")


def _failed(message: str = "x" * 5000) -> BaseEvent:
    events = _history(
        {
            "status": "failed",
            "finished_at": T0 + 4000,
            "error": {
                "code": "invalid_training_file",
                "message": message,
                "param": "training_file",
            },
        }
    )
    return next(e for e in events if e.type == "fine_tuning.job.failed")


def _all_events() -> list[BaseEvent]:
    """Each of the five event types, with full jobs and with jobs that are null everywhere."""
    events: list[BaseEvent] = []
    events += _history({"status": "succeeded", "fine_tuned_model": "ft:x", "trained_tokens": 9})
    events += _history({"status": "failed", "error": {"code": "e", "message": "m" * 5000}})
    events += _history({"status": "cancelled"})
    events += _history({"status": "succeeded"}, bare=True)
    events += _history({"status": "failed", "error": {}}, bare=True)
    events += _history({"status": "cancelled"}, bare=True)
    nulls = FineTuningJob.model_validate({"id": "ftjob-null", "status": "failed", "error": None})
    events += diff(None, nulls, source="", now=T0)[1]
    events.append(
        _failed().model_copy(update={"dashboard_url": "https://platform.openai.com/ft/ftjob-1"})
    )
    return events


# ---------------------------------------------------------------------------------------------
# A Slack-like receiver on a real socket


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class SlackLike:
    """A Slack-like ASGI app: incoming webhooks under ``/services/``, the Web API under ``/api/``.

    Answers like Slack does unless a test queues its own answers in ``script``: ``(status,
    headers, body)``. ``hold`` makes it wait before answering, to test timeouts.
    """

    token: str = TOKEN
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    hold: anyio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the request, then answer it."""
        assert scope["type"] == "http"
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = json.loads(b"".join(chunks))
        self.received.append(Received(scope["path"], headers, body))
        if self.hold is not None:
            await self.hold.wait()
        if self.script:
            status, extra, answer = self.script.pop(0)
        else:
            status, extra, answer = self._answer(scope["path"], headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in extra.items()],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _answer(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/services/"):
            ok = isinstance(body.get("text"), str) and isinstance(body.get("blocks"), list)
            return (200, {}, b"ok") if ok else (400, {}, b"invalid_payload")
        if path == "/api/chat.postMessage":
            if headers.get("authorization") != f"Bearer {self.token}":
                return 200, {}, b'{"ok": false, "error": "invalid_auth"}'
            if not body.get("channel"):
                return 200, {}, b'{"ok": false, "error": "channel_not_found"}'
            return 200, {}, b'{"ok": true, "channel": "C0123456789", "ts": "1.2"}'
        return 404, {}, b"no_service"


def _webhook_config(base_url: str, **extra: Any) -> SlackConfig:
    return SlackConfig(
        name="ml-alerts",
        type="slack",
        webhook_url=f"{base_url}/services/T0/{WEBHOOK_SECRET}",
        **extra,
    )


def _bot_config(base_url: str, **extra: Any) -> SlackConfig:
    return SlackConfig(
        name="ml-bot",
        type="slack",
        token=TOKEN,
        channel=CHANNEL,
        api_url=f"{base_url}/api",
        **extra,
    )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one receiver serves every test (each server costs 0.1 s to stop)."""
    return "asyncio"


@pytest.fixture(scope="module")
async def slack_server() -> AsyncIterator[tuple[SlackLike, str]]:
    """One Slack-like receiver listening on loopback for the module, and its base URL."""
    app = SlackLike()
    async with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def slack(slack_server: tuple[SlackLike, str]) -> tuple[SlackLike, str]:
    """The module's receiver, reset to answer like Slack with nothing received yet."""
    app, url = slack_server
    app.token = TOKEN
    app.received.clear()
    app.script.clear()
    app.hold = None
    return app, url


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert WEBHOOK_SECRET not in text
        assert "hunter2" not in text
        assert TOKEN not in text
        assert "sekrit" not in text


# ---------------------------------------------------------------------------------------------
# Messages


def test_every_message_is_valid_block_kit() -> None:
    """Every message we build parses with slack_sdk's block models, validates and round-trips."""
    for event in _all_events():
        message = build_message(event)
        assert isinstance(message["text"], str)
        assert message["text"]
        assert "\n" not in message["text"]
        for raw in message["blocks"]:
            block = Block.parse(raw)
            assert block is not None, raw
            block.validate_json()
            assert block.to_dict() == raw


def test_messages_respect_slack_text_limits() -> None:
    """Header, section, field and fallback texts all stay within Slack's limits."""
    for event in _all_events():
        message = build_message(event)
        assert len(message["text"]) <= 300
        for block in message["blocks"]:
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= 150
            if block["type"] == "section":
                assert len(block.get("text", {}).get("text", "")) <= 3000
                assert len(block.get("fields", [])) <= 10
                assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


def _fields(message: dict[str, Any]) -> dict[str, str]:
    section = next(b for b in message["blocks"] if "fields" in b)
    return dict(f["text"].split("\n", 1) for f in section["fields"])


def test_success_message_reads_at_a_glance() -> None:
    """A success shows the job, model, suffix, change, result, tokens, durations and source."""
    message = build_message(_succeeded())
    header = message["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "✅ Fine-tuning job succeeded · support-bot"
    assert _fields(message) == {
        "*Job*": "`ftjob-abc123`",
        "*Base model*": "`gpt-4o-mini-2024-07-18`",
        "*Suffix*": "`support-bot`",
        "*Status*": "running → succeeded",
        "*Fine-tuned model*": "`ft:gpt-4o-mini-2024-07-18:acme:support-bot:AbC123`",
        "*Trained tokens*": "1,234,567",
        "*Queued for*": "4m 12s",
        "*Ran for*": "1h 03m",
        "*Source*": "`openai`",
    }
    assert message["text"] == (
        "✅ Fine-tuning job succeeded: ftjob-abc123 (support-bot)"
        " → ft:gpt-4o-mini-2024-07-18:acme:support-bot:AbC123"
    )


def test_each_event_type_gets_its_own_header() -> None:
    """The header names what happened with an emoji per event type."""
    headers = {
        e.type: build_message(e)["blocks"][0]["text"]["text"]
        for e in [*_history({"status": "cancelled"}), _succeeded(), _failed()]
    }
    assert headers == {
        "fine_tuning.job.created": "🆕 New fine-tuning job · support-bot",
        "fine_tuning.job.status_changed": "🔄 Fine-tuning job is now cancelled · support-bot",
        "fine_tuning.job.cancelled": "🚫 Fine-tuning job cancelled · support-bot",
        "fine_tuning.job.succeeded": "✅ Fine-tuning job succeeded · support-bot",
        "fine_tuning.job.failed": "❌ Fine-tuning job failed · support-bot",
    }


def test_a_test_event_is_marked_as_a_test_everywhere_it_shows() -> None:
    """`ftwatch sinks test`'s sample says it is a test in its header, fallback text and context."""
    message = build_message(_succeeded(metadata={"ftwatch_test": "true"}))
    header = message["blocks"][0]["text"]["text"]
    assert header == "🧪 Test from ftwatch: Fine-tuning job succeeded · support-bot"
    assert message["text"].startswith("🧪 Test from ftwatch: Fine-tuning job succeeded: ")
    assert "✅" not in header + message["text"]
    assert "a test message, no job changed" in message["blocks"][-1]["elements"][0]["text"]
    for raw in message["blocks"]:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
    # Other metadata, or a marker that is not exactly "true", leaves the message as it was.
    for metadata in ({"team": "ml"}, {"ftwatch_test": "false"}):
        assert build_message(_succeeded(metadata=metadata))["blocks"][0]["text"]["text"] == (
            "✅ Fine-tuning job succeeded · support-bot"
        )


def test_failure_shows_code_and_truncated_message() -> None:
    """A failure shows its error code and its message, cut to fit a section with an ellipsis."""
    message = build_message(_failed("bad row " + "y" * 5000))
    assert _fields(message)["*Error code*"] == "`invalid_training_file`"
    error = message["blocks"][2]["text"]["text"]
    assert error.startswith("*Error message*\n> bad row yyy")
    assert error.endswith("…")
    assert len(error) == 3000
    assert message["text"].startswith("❌ Fine-tuning job failed: ftjob-abc123 (support-bot): ")


def test_text_from_the_api_cannot_ping_or_link() -> None:
    """Mentions and links in API values are escaped, never sent as live mrkdwn."""
    message = build_message(_failed("see <!channel> & <https://evil.example|here>"))
    dumped = json.dumps([b for b in message["blocks"] if b["type"] != "header"])
    assert "<!channel>" not in dumped
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|here&gt;" in dumped
    assert "<!channel>" not in message["text"]


def test_dashboard_link_becomes_a_button() -> None:
    """An event with a dashboard link gets a button to it; one without gets none."""
    url = "https://platform.openai.com/finetune/ftjob-abc123"
    with_link = build_message(_succeeded().model_copy(update={"dashboard_url": url}))
    actions = [b for b in with_link["blocks"] if b["type"] == "actions"]
    assert actions[0]["elements"][0]["url"] == url
    assert actions[0]["elements"][0]["text"]["text"] == "Open in dashboard"
    assert not [b for b in build_message(_succeeded())["blocks"] if b["type"] == "actions"]


def test_job_with_nulls_everywhere_still_reads() -> None:
    """A job with only an id and a status gives a short, valid message without empty fields."""
    nulls = FineTuningJob(id="ftjob-null", status="failed")
    events = diff(None, nulls, source="openai", now=T0)[1]
    failed = next(e for e in events if e.type == "fine_tuning.job.failed")
    message = build_message(failed)
    assert _fields(message) == {
        "*Job*": "`ftjob-null`",
        "*Status*": "failed",
        "*Source*": "`openai`",
    }
    assert message["text"] == "❌ Fine-tuning job failed: ftjob-null"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45.4, "45s"), (252, "4m 12s"), (3780, "1h 03m"), (90061, "1d 01h"), (-3, "0s")],
)
def test_human_duration(seconds: float, shown: str) -> None:
    """Durations read the way a person says them."""
    assert human_duration(seconds) == shown


# ---------------------------------------------------------------------------------------------
# Config


def test_entry_point_finds_the_slack_sink() -> None:
    """The ``slack`` entry point resolves to SlackSink and its config model."""
    plugin = sink_plugin("slack")
    assert plugin.factory is SlackSink
    assert plugin.config_model is SlackConfig


@pytest.mark.parametrize(
    "url",
    [
        "hooks.slack.com/services/T000/B000/sekrit",
        "ftp://hooks.slack.com/services/T000/B000/sekrit",
        "https:///services/sekrit",
        "xoxb-sekrit",
    ],
)
def test_invalid_webhook_url_is_explained_without_quoting_it(url: str) -> None:
    """A webhook URL that is not an http(s) URL with a host names the key and the expected form."""
    with pytest.raises(ValidationError) as caught:
        SlackConfig(name="s", type="slack", webhook_url=url)
    text = str(caught.value)
    assert "webhook_url" in text
    assert "expected a Slack incoming-webhook URL such as https://hooks.slack.com/services/" in text
    assert "sekrit" not in text


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, "needs webhook_url"),
        ({"token": TOKEN}, "token needs channel"),
        ({"channel": CHANNEL}, "channel needs token"),
        (
            {"webhook_url": "https://hooks.slack.com/services/T/B/sekrit", "token": TOKEN},
            "not both",
        ),
    ],
)
def test_exactly_one_mode_is_required(keys: dict[str, str], expected: str) -> None:
    """Neither or both modes, or a token without a channel, get a clear error without secrets."""
    with pytest.raises(ValidationError) as caught:
        SlackConfig(name="s", type="slack", **keys)
    assert expected in str(caught.value)
    _assert_no_secret(str(caught.value))


async def test_secrets_stay_out_of_repr_and_dumps() -> None:
    """The webhook URL and token appear in no repr, str or JSON dump of the config or sink."""
    for config in (_webhook_config("http://127.0.0.1:9"), _bot_config("http://127.0.0.1:9")):
        async with SlackSink(config) as sink:
            _assert_no_secret(repr(config), str(config), config.model_dump_json(), repr(sink))


# ---------------------------------------------------------------------------------------------
# Delivery


async def test_webhook_post_carries_text_and_blocks(slack: tuple[SlackLike, str]) -> None:
    """An incoming-webhook post sends the message JSON and counts Slack's ``ok`` as delivered."""
    app, url = slack
    event = _succeeded()
    async with SlackSink(_webhook_config(url)) as sink:
        assert await sink.send(event) == "HTTP 200"
    [request] = app.received
    assert request.path == f"/services/T0/{WEBHOOK_SECRET}"
    assert request.headers["content-type"].startswith("application/json")
    assert request.body["text"] == build_message(event)["text"]
    assert request.body["blocks"] == build_message(event)["blocks"]
    assert "authorization" not in request.headers


async def test_chat_post_message_sends_token_and_channel(slack: tuple[SlackLike, str]) -> None:
    """Bot mode posts to chat.postMessage with the bearer token and the channel."""
    app, url = slack
    async with SlackSink(_bot_config(url)) as sink:
        assert await sink.send(_failed()) == "HTTP 200"
    [request] = app.received
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body["channel"] == CHANNEL
    assert request.body["text"]
    assert request.body["blocks"]


@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "retry_after"),
    [
        (429, {"Retry-After": "7"}, b"rate_limited", SinkUnavailable, 7.0),
        (500, {}, b"internal_error", SinkUnavailable, None),
        (503, {}, b"<html>upstream down</html>", SinkUnavailable, None),
        (400, {}, b"invalid_payload", SinkRejected, None),
        (400, {}, b"too_many_attachments", SinkRejected, None),
        (403, {}, b"action_prohibited", SinkDisabled, None),
        (404, {}, b"channel_not_found", SinkDisabled, None),
        (404, {}, b"no_service", SinkDisabled, None),
        (410, {}, b"channel_is_archived", SinkDisabled, None),
    ],
)
async def test_webhook_answers_map_to_outcomes(
    slack: tuple[SlackLike, str],
    status: int,
    headers: dict[str, str],
    body: bytes,
    error: type[SinkError],
    retry_after: float | None,
) -> None:
    """Each incoming-webhook error answer becomes the sink outcome the dispatcher acts on."""
    app, url = slack
    app.script.append((status, headers, body))
    async with SlackSink(_webhook_config(url)) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(_succeeded())
    assert type(caught.value) is error
    assert caught.value.sink == "ml-alerts"
    assert caught.value.status_code == status
    assert getattr(caught.value, "retry_after", None) == retry_after
    message = str(caught.value)
    assert "'ml-alerts'" in message
    assert f"HTTP {status}" in message
    if not body.startswith(b"<"):
        assert body.decode() in message
    assert "<html>" not in message
    _assert_no_secret(message, repr(caught.value))


@pytest.mark.parametrize(
    ("status", "headers", "answer", "error", "retry_after"),
    [
        (200, {"Retry-After": "3"}, {"ok": False, "error": "ratelimited"}, SinkUnavailable, 3.0),
        (429, {"Retry-After": "12"}, {"ok": False, "error": "ratelimited"}, SinkUnavailable, 12.0),
        (200, {}, {"ok": False, "error": "invalid_auth"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "not_authed"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "token_revoked"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "account_inactive"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "channel_not_found"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "is_archived"}, SinkDisabled, None),
        (200, {}, {"ok": False, "error": "invalid_blocks"}, SinkRejected, None),
        (200, {}, {"ok": False, "error": "msg_too_long"}, SinkRejected, None),
        (500, {}, {"ok": False, "error": "internal_error"}, SinkUnavailable, None),
    ],
)
async def test_chat_post_message_errors_map_to_outcomes(
    slack: tuple[SlackLike, str],
    status: int,
    headers: dict[str, str],
    answer: dict[str, Any],
    error: type[SinkError],
    retry_after: float | None,
) -> None:
    """Each ``ok: false`` error of chat.postMessage becomes the matching sink outcome."""
    app, url = slack
    app.script.append((status, headers, json.dumps(answer).encode()))
    async with SlackSink(_bot_config(url)) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(_succeeded())
    assert type(caught.value) is error
    assert getattr(caught.value, "retry_after", None) == retry_after
    message = str(caught.value)
    assert "'ml-bot'" in message
    if status == 200:
        assert answer["error"] in message
    _assert_no_secret(message, repr(caught.value))


async def test_an_answer_nested_too_deep_for_json_is_not_json_not_a_crash(
    slack: tuple[SlackLike, str],
) -> None:
    """4 KiB of ``[[[[`` from something posing as Slack is "not JSON", retried, not a crash."""
    app, url = slack
    app.script.append((200, {}, b"[" * 4096))
    async with SlackSink(_bot_config(url)) as sink:
        with pytest.raises(SinkUnavailable, match="something other than JSON"):
            await sink.send(_succeeded())


async def test_wrong_token_disables_the_sink(slack: tuple[SlackLike, str]) -> None:
    """A token Slack does not accept disables the sink with a message saying to check it."""
    app, url = slack
    app.token = "xoxb-some-other-token"
    async with SlackSink(_bot_config(url)) as sink:
        with pytest.raises(SinkDisabled, match=r"invalid_auth.*check the token"):
            await sink.send(_succeeded())


async def test_connection_refused_is_transient() -> None:
    """A receiver that is not listening gives SinkUnavailable saying so, without the URL."""
    async with serve_asgi(SlackLike()) as url:
        pass  # the port is closed again once the server has stopped
    async with SlackSink(_webhook_config(url)) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_succeeded())
    assert str(caught.value) == "sink 'ml-alerts': Slack refused the connection"
    assert url.rsplit(":", 1)[1] not in str(caught.value)
    _assert_no_secret(str(caught.value), repr(caught.value))
    assert caught.value.__cause__ is None


async def test_timeout_is_transient(slack: tuple[SlackLike, str]) -> None:
    """Slack not answering within ``timeout`` gives SinkUnavailable naming the timeout."""
    app, url = slack
    app.hold = anyio.Event()
    try:
        async with SlackSink(_webhook_config(url, timeout="0.2s")) as sink:
            with (
                anyio.fail_after(5),
                pytest.raises(SinkUnavailable, match=r"timed out waiting for Slack after 0\.2s$"),
            ):
                await sink.send(_succeeded())
    finally:
        app.hold.set()


async def test_secrets_never_reach_logs_or_errors(slack: tuple[SlackLike, str]) -> None:
    """Through every kind of outcome, no log entry, error or repr holds the URL or the token."""
    app, url = slack
    answers: list[tuple[int, dict[str, str], bytes]] = [
        (200, {}, b"ok"),
        (429, {"Retry-After": "1"}, b"rate_limited"),
        (500, {}, b"oops"),
        (400, {}, b"invalid_payload"),
        (404, {}, b"no_service"),
    ]
    api_answers: list[tuple[int, dict[str, str], bytes]] = [
        (200, {}, b'{"ok": true}'),
        (200, {}, b'{"ok": false, "error": "ratelimited"}'),
        (200, {}, b'{"ok": false, "error": "invalid_auth"}'),
        (200, {}, b"<html>not json</html>"),
        (404, {}, b"not found"),
    ]
    seen: list[str] = []
    with capture_logs() as logs:
        for config, script in ((_webhook_config(url), answers), (_bot_config(url), api_answers)):
            app.script.extend(script)
            async with SlackSink(config) as sink:
                seen.append(repr(sink))
                for _ in script:
                    try:
                        await sink.send(_failed())
                    except SinkError as exc:
                        seen += [str(exc), repr(exc)]
    assert len(seen) == 2 + 2 * 8
    _assert_no_secret(*seen, repr(logs))
    assert any(entry["event"] == "slack_unavailable" for entry in logs)
