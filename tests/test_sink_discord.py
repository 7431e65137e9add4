"""Tests for the Discord sink (plugins/ftwatch_discord): its embeds, its config, Discord's answers.

Every post goes over a real loopback socket to a Discord-like receiver (tests/discord_receiver.py)
that refuses, as Discord does, a message breaking any embed limit, and confirms a message only
with ``?wait=true``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs
from tests.discord_receiver import TOKEN, WEBHOOK_ID, DiscordLike, limit_errors

from ftwatch_discord import (
    COLOURS,
    DiscordConfig,
    DiscordSink,
    build_embed,
    build_message,
    embed_length,
)
from watcher.diff import diff
from watcher.errors import SinkDisabled, SinkError, SinkRejected, SinkUnavailable
from watcher.events import BaseEvent, JobMessage, JobStalled
from watcher.facts import TEST_MARK
from watcher.logs import MASK, redact, reset_logging
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import register_sink_secrets, sink_plugin

T0 = 1_700_000_000
HOOK_PATH = f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

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


def _history(last: dict[str, Any]) -> list[BaseEvent]:
    """Every event of a job seen queued, then running 252 s after creation, then ``last``."""
    state, created = diff(None, _job(), source="openai", now=T0 + 10)
    state, running = diff(state, _job(status="running"), source="openai", now=T0 + 252)
    _, ended = diff(state, _job(**last), source="openai", now=T0 + 4062)
    return [*created, *running, *ended]


def _last(last: dict[str, Any]) -> BaseEvent:
    return _history(last)[-1]


def _failed(message: str = "bad row 12") -> BaseEvent:
    return _last(
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


def _succeeded(**extra: Any) -> BaseEvent:
    return _last(
        {
            "status": "succeeded",
            "finished_at": T0 + 4032,
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme:support-bot:AbC123",
            "trained_tokens": 1_234_567,
            **extra,
        }
    )


def _message(text: str, level: str = "error") -> JobMessage:
    base = _failed()
    return JobMessage(
        id="evt_msg",
        source="openai",
        observed_at=T0,
        job=base.job,
        level=level,
        message=text,
        api_event_id="ftevent-1",
    )


def _stalled() -> JobStalled:
    return JobStalled(
        id="evt_stall",
        source="openai",
        observed_at=T0 + 5 * 3600,
        job=_job(),
        reason="queued_too_long",
        since=T0,
        threshold=4 * 3600,
    )


def _assert_within_limits(event: BaseEvent) -> dict[str, Any]:
    message = build_message(event)
    assert limit_errors(json.loads(json.dumps(message))) == []
    [embed] = message["embeds"]
    assert embed_length(embed) <= 6000
    return embed


# ---------------------------------------------------------------------------------------------
# Embeds


def test_a_failure_is_a_red_embed_with_its_error_and_facts() -> None:
    """A failed job: red, the error message as description, short facts inline, the event id."""
    event = _failed().model_copy(update={"dashboard_url": "https://platform.openai.com/ft/1"})
    embed = _assert_within_limits(event)
    assert embed["title"] == "❌ Fine-tuning job failed · support-bot"
    assert embed["color"] == COLOURS["bad"] == 0xED4245
    assert embed["description"] == "**Error message**\nbad row 12"
    fields = {f["name"]: (f["value"], f["inline"]) for f in embed["fields"]}
    assert fields["Job"] == ("`ftjob-abc123`", True)
    assert fields["Error code"] == ("`invalid_training_file`", True)
    assert fields["Status"] == ("running → failed", True)
    assert fields["Ran for"] == ("1h 02m", True)
    assert embed["url"] == "https://platform.openai.com/ft/1"
    assert embed["timestamp"] == "2023-11-14T23:21:02.000+00:00"
    assert embed["footer"]["text"] == f"ftwatch · event {event.id}"
    assert embed["author"]["name"] == "ftwatch · openai"


def test_each_outcome_has_its_colour() -> None:
    """Green for success and moving again, amber for cancelled and stalls, blurple otherwise."""
    history = _history({"status": "cancelled"})
    colours = {e.type.rsplit(".", 1)[1]: build_embed(e)["color"] for e in history}
    colours["succeeded"] = build_embed(_succeeded())["color"]
    colours["stalled"] = build_embed(_stalled())["color"]
    assert colours == {
        "created": 0x5865F2,
        "status_changed": 0x5865F2,
        "cancelled": 0xFAA61A,
        "succeeded": 0x57F287,
        "stalled": 0xFAA61A,
    }
    assert build_embed(_message("x", level="warn"))["color"] == COLOURS["warning"]


def test_a_success_reads_its_summary_and_long_values_get_their_own_row() -> None:
    """Without an error the description is the one-line summary; a long value is not inline."""
    embed = _assert_within_limits(_succeeded())
    assert embed["description"].startswith("✅ Fine-tuning job succeeded: ftjob-abc123")
    [model] = [f for f in embed["fields"] if f["name"] == "Fine-tuned model"]
    assert model == {
        "name": "Fine-tuned model",
        "value": "`ft:gpt-4o-mini-2024-07-18:acme:support-bot:AbC123`",
        "inline": False,
    }
    assert "url" not in embed  # no dashboard link on this event


def test_a_test_event_says_so_in_title_and_footer() -> None:
    """`ftwatch sinks test`'s sample is marked as a test where a reader looks first."""
    embed = _assert_within_limits(_succeeded(metadata={"ftwatch_test": "true"}))
    assert embed["title"] == f"{TEST_MARK} Fine-tuning job succeeded · support-bot"
    assert "✅" not in embed["title"]
    assert "a test message, no job changed" in embed["footer"]["text"]


def test_api_text_cannot_ping_or_format() -> None:
    """Mentions are off for the whole message, and markdown in API text is shown literally."""
    message = build_message(_failed("@everyone see [here](https://evil.example) **now** <@&1>"))
    assert message["allowed_mentions"] == {"parse": []}
    description = message["embeds"][0]["description"]
    assert description == (
        "**Error message**\n\\@everyone see \\[here\\](https://evil.example) "
        "\\*\\*now\\*\\* \\<\\@&1\\>"
    )


def test_long_texts_are_cut_with_an_ellipsis_never_refused() -> None:
    """An error of 10,000 characters fills the description to 4,096 and ends with an ellipsis."""
    embed = _assert_within_limits(_failed("bad row " + "y" * 10_000))
    assert len(embed["description"]) == 4096
    assert embed["description"].endswith("y…")
    embed = _assert_within_limits(_message("x" * 7000))
    assert embed["description"].endswith("…")


def test_the_total_is_cut_to_6000_longest_texts_first() -> None:
    """Long suffix, model, source and error together pass 6,000: the longest texts are cut to
    one common length, the short facts stay whole, and the same event gives the same embed."""
    job = {"model": "m" * 3000, "user_provided_suffix": "s" * 3000}
    failed = _failed("e" * 5000)
    event = failed.model_copy(
        update={"job": failed.job.model_copy(update=job), "source": "o" * 3000}
    )
    embed = _assert_within_limits(event)
    assert 5990 <= embed_length(embed) <= 6000
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Status"] == "running → failed" and fields["Job"] == "`ftjob-abc123`"
    # Each text is first cut to its own limit (1,024 for a field value)...
    assert [len(fields[k]) for k in ("Base model", "Suffix", "Source")] == [1024] * 3
    # ...then the longest, the 4,096-character description, gives way until all fit.
    assert 2000 < len(embed["description"]) < 4096 and embed["description"].endswith("e…")
    assert build_embed(event) == embed


_SHORT = st.text(max_size=20)
#: Long hostile texts, cheaply: a short piece repeated up to 600 times.
_LONG = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=20), st.integers(1, 600))
_ANY = st.one_of(_SHORT, _LONG, st.sampled_from(["", " ", "\n\t", "`", "@everyone", "`` `"]))
_MAYBE = st.none() | _ANY


@st.composite
def _hostile_events(draw: st.DrawFn) -> list[BaseEvent]:
    start: dict[str, Any] = {
        "id": draw(_ANY.filter(bool)),
        "status": "running",
        "model": draw(_MAYBE),
        "user_provided_suffix": draw(_MAYBE),
        "created_at": draw(st.none() | st.integers(-(2**40), 2**40)),
    }
    end = {
        **start,
        "status": draw(st.sampled_from(["succeeded", "failed", "cancelled"]) | _ANY.filter(bool)),
        "error": draw(
            st.none() | st.fixed_dictionaries({"code": _MAYBE, "message": _MAYBE, "param": _MAYBE})
        ),
        "fine_tuned_model": draw(_MAYBE),
        "trained_tokens": draw(st.none() | st.integers(0, 10**18)),
        "finished_at": draw(st.none() | st.integers(-(2**40), 2**40)),
        "metadata": draw(st.none() | st.just({"ftwatch_test": "true"})),
    }
    source = draw(_ANY)
    now = draw(st.floats(-1e13, 1e13, allow_nan=False))
    state, first = diff(None, FineTuningJob.model_validate(start), source=source, now=now)
    _, second = diff(state, FineTuningJob.model_validate(end), source=source, now=now + 1)
    events = [*first, *second]
    link = draw(st.none() | st.just("https://platform.openai.com/ft/x") | _ANY)
    stall = JobStalled(
        id=draw(_ANY),
        source=source,
        observed_at=now,
        job=events[-1].job,
        reason=draw(_ANY),
        since=draw(st.floats(-1e13, 1e13, allow_nan=False)),
        threshold=draw(st.floats(0, 1e9)),
    )
    note = JobMessage(
        id=draw(_ANY),
        source=source,
        observed_at=now,
        job=events[-1].job,
        level=draw(_ANY),
        message=draw(_ANY),
        api_event_id="e",
    )
    return [e.model_copy(update={"dashboard_url": link}) for e in [*events, stall, note]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_events())
def test_hostile_jobs_always_give_an_embed_within_every_limit(events: list[BaseEvent]) -> None:
    """Whatever the API says about a job, the embed obeys every one of Discord's limits."""
    for event in events:
        embed = _assert_within_limits(event)
        assert len(embed["fields"]) <= 25
        assert build_embed(event) == embed  # deterministic


# ---------------------------------------------------------------------------------------------
# Config


def _config(base_url: str, **extra: Any) -> DiscordConfig:
    return DiscordConfig(name="ml-discord", type="discord", url=base_url + HOOK_PATH, **extra)


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert "hunter2" not in text


def test_entry_point_finds_the_discord_sink() -> None:
    """The ``discord`` entry point resolves to DiscordSink and its config model."""
    plugin = sink_plugin("discord")
    assert plugin.factory is DiscordSink
    assert plugin.config_model is DiscordConfig


@pytest.mark.parametrize(
    "url",
    [
        "discord.com/api/webhooks/1/hunter2",
        "ftp://discord.com/api/webhooks/1/hunter2",
        "https://discord.com/channels/1/hunter2",
        "https://discord.com/api/webhooks/hunter2",
        "https:///api/webhooks/1/hunter2",
    ],
)
def test_a_url_that_is_no_webhook_is_explained_without_quoting_it(url: str) -> None:
    """A URL that is not a Discord webhook URL names the key and the expected form only."""
    with pytest.raises(ValidationError) as caught:
        DiscordConfig(name="d", type="discord", url=url)
    text = str(caught.value)
    assert "url" in text
    assert (
        "expected a Discord webhook URL such as https://discord.com/api/webhooks/ID/TOKEN" in text
    )
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"username": "x" * 81}, "1 to 80 characters"),
        ({"username": "Discord alerts"}, "'discord' or 'clyde'"),
        ({"avatar_url": "not a url"}, "an http:// or https:// URL of an image"),
        ({"timeout": 0}, "greater than 0"),
    ],
)
def test_bad_optional_keys_are_explained(keys: dict[str, Any], expected: str) -> None:
    """username, avatar_url and timeout say what they expect."""
    with pytest.raises(ValidationError, match=expected):
        _config("https://discord.com", **keys)


def test_the_daemon_masks_the_webhook_url_in_any_log_line() -> None:
    """register_sink_secrets (what the daemon and `sinks test` call) masks the URL, query or not."""
    config = _config("https://discord.com")
    try:
        register_sink_secrets(config)
        text = redact(f"POST {config.url.get_secret_value()}?wait=true failed")
    finally:
        reset_logging()
    assert TOKEN not in text
    assert text == f"POST {MASK}?wait=true failed"


async def test_the_token_stays_out_of_repr_and_dumps() -> None:
    """The webhook URL's token appears in no repr, str or JSON dump of the config or the sink."""
    config = _config("https://discord.com")
    async with DiscordSink(config) as sink:
        _assert_no_secret(repr(config), str(config), config.model_dump_json(), repr(sink))
        assert "discord.com" in repr(sink) and "discord.com" in repr(config)


# ---------------------------------------------------------------------------------------------
# Delivery


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, so that one receiver serves every test."""
    return "asyncio"


@pytest.fixture(scope="module")
async def discord_server() -> AsyncIterator[tuple[DiscordLike, str]]:
    """One Discord-like receiver on loopback for the module, and its base URL."""
    app = DiscordLike()
    async with serve_asgi(app) as url:
        yield app, url


@pytest.fixture
def discord(discord_server: tuple[DiscordLike, str]) -> tuple[DiscordLike, str]:
    """The module's receiver with nothing received and nothing scripted."""
    app, url = discord_server
    app.reset()
    return app, url


async def test_a_post_waits_for_the_message_and_returns_its_id(
    discord: tuple[DiscordLike, str],
) -> None:
    """The post carries ?wait=true, the embed and the poster's look; the receipt names the id."""
    app, url = discord
    event = _failed()
    config = _config(url + "", username="ftwatch", avatar_url="https://example.com/a.png")
    async with DiscordSink(config) as sink:
        receipt = await sink.send(event)
    [request] = app.received
    assert receipt == f"HTTP 200, message {app.next_id}"
    assert request.path == HOOK_PATH
    assert request.query == {"wait": ["true"]}
    assert request.headers["content-type"].startswith("application/json")
    assert request.body == build_message(
        event, username="ftwatch", avatar_url="https://example.com/a.png"
    )


async def test_a_thread_id_in_the_url_is_kept(discord: tuple[DiscordLike, str]) -> None:
    """A webhook URL posting into a thread keeps its thread_id next to wait=true."""
    app, url = discord
    config = DiscordConfig(
        name="d", type="discord", url=f"{url}{HOOK_PATH}?thread_id=42&wait=false"
    )
    async with DiscordSink(config) as sink:
        await sink.send(_succeeded())
    assert app.received[0].query == {"thread_id": ["42"], "wait": ["true"]}


def _limited(body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[Any, ...]:
    return (429, headers or {}, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("answer", "error", "retry_after", "said"),
    [
        (_limited({"message": "You are being rate limited.", "retry_after": 2.5, "global": False},
                  {"Retry-After": "3", "X-RateLimit-Reset-After": "2.5"}),
         SinkUnavailable, 2.5, "rate limiting this webhook (HTTP 429); it asked to wait 2.5s"),
        (_limited({"retry_after": 0.75, "global": True}), SinkUnavailable, 0.75, "a global limit"),
        ((429, {"Retry-After": "7"}, b"<html>cloudflare</html>"), SinkUnavailable, 7.0, "wait 7s"),
        ((429, {"X-RateLimit-Reset-After": "1.25"}, b""), SinkUnavailable, 1.25, "wait 1.25s"),
        ((500, {}, b""), SinkUnavailable, None, "Discord is unavailable (HTTP 500)"),
        ((503, {"Retry-After": "4"}, b"down"), SinkUnavailable, 4.0, "HTTP 503"),
        ((404, {}, b'{"message": "Unknown Webhook", "code": 10015}'), SinkDisabled, None,
         "(HTTP 404, 10015 Unknown Webhook); the webhook was deleted"),
        ((401, {}, b'{"message": "Invalid Webhook Token", "code": 50027}'), SinkDisabled, None,
         "(HTTP 401, 50027 Invalid Webhook Token); the webhook's token is wrong"),
        ((403, {}, b'{"message": "Missing Permissions", "code": 50013}'), SinkDisabled, None,
         "check its permissions"),
        ((400, {}, json.dumps({"message": "Invalid Form Body", "code": 50035, "errors": {
            "embeds": {"0": {"title": {"_errors": [{"code": "X", "message": "Too long."}]}}}}
         }).encode()), SinkRejected, None,
         "rejected the message (HTTP 400, 50035 Invalid Form Body: embeds.0.title: Too long.)"),
        ((413, {}, b"<html>" + b"x" * 3000), SinkRejected, None, "(HTTP 413)"),
        ((400, {}, b"[" * 5000), SinkRejected, None, "rejected the message (HTTP 400)"),
        ((400, {}, b'{"errors": ' + b'{"a": ' * 600 + b"1" + b"}" * 601), SinkRejected, None,
         "(HTTP 400)"),
        ((429, {"Retry-After": "2"}, b'{"a": ' * 2000), SinkUnavailable, 2.0, "wait 2s"),
        ((200, {}, b"<html>captive portal</html>"), SinkRejected, None, "does not confirm"),
        ((204, {}, b""), SinkRejected, None, "HTTP 204 does not confirm a message"),
        ((301, {"Location": "/x"}, b""), SinkRejected, None, "redirect HTTP 301"),
    ],
)  # fmt: skip
async def test_answers_map_to_outcomes(
    discord: tuple[DiscordLike, str],
    answer: tuple[int, dict[str, str], bytes],
    error: type[SinkError],
    retry_after: float | None,
    said: str,
) -> None:
    """Each answer of Discord's becomes the outcome the dispatcher acts on, and says why."""
    app, url = discord
    app.script.append(answer)
    async with DiscordSink(_config(url)) as sink:
        with pytest.raises(SinkError) as caught:
            await sink.send(_failed())
    assert type(caught.value) is error
    assert caught.value.status_code == answer[0]
    assert getattr(caught.value, "retry_after", None) == retry_after
    message = str(caught.value)
    assert message.startswith("sink 'ml-discord': ")
    assert said in message
    assert "<html>" not in message and len(message) < 400
    _assert_no_secret(message, repr(caught.value))


async def test_a_wrong_token_or_a_deleted_webhook_disables_the_sink(
    discord: tuple[DiscordLike, str],
) -> None:
    """The receiver's own 401 and 404, as Discord answers them, disable the sink."""
    _, url = discord
    wrong = DiscordConfig(name="d", type="discord", url=f"{url}/api/webhooks/{WEBHOOK_ID}/nope")
    gone = DiscordConfig(name="d", type="discord", url=f"{url}/api/webhooks/1/{TOKEN}")
    for config, status in ((wrong, 401), (gone, 404)):
        async with DiscordSink(config) as sink:
            with pytest.raises(SinkDisabled) as caught:
                await sink.send(_failed())
        assert caught.value.status_code == status
        _assert_no_secret(str(caught.value))


async def test_an_echoed_token_is_not_quoted(discord: tuple[DiscordLike, str]) -> None:
    """Should Discord's message ever repeat the URL, the error still does not hold the token."""
    app, url = discord
    echo = json.dumps({"message": f"bad url {url}{HOOK_PATH}", "code": 1}).encode()
    app.script.append((400, {}, echo))
    async with DiscordSink(_config(url)) as sink:
        with pytest.raises(SinkRejected) as caught:
            await sink.send(_failed())
    assert "bad url" in str(caught.value)
    _assert_no_secret(str(caught.value))


async def test_no_answer_is_transient_and_names_no_url() -> None:
    """A refused connection and a timeout are SinkUnavailable, without the URL or its token."""
    async with serve_asgi(DiscordLike()) as url:
        pass  # the port is closed again once the server has stopped
    async with DiscordSink(_config(url)) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_failed())
    assert str(caught.value) == "sink 'ml-discord': Discord refused the connection"
    assert caught.value.__cause__ is None

    release = anyio.Event()

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await release.wait()

    async with serve_asgi(hang) as url:
        async with DiscordSink(_config(url, timeout="0.2s")) as sink:
            with (
                anyio.fail_after(5),
                pytest.raises(SinkUnavailable, match=r"timed out waiting for Discord after 0\.2s$"),
            ):
                await sink.send(_failed())
        release.set()


async def test_the_token_never_reaches_logs_or_errors(discord: tuple[DiscordLike, str]) -> None:
    """Through every kind of outcome, no log entry, error or repr holds the webhook's token."""
    app, url = discord
    app.script += [
        (200, {}, b'{"id": "1"}'),
        (429, {}, b'{"retry_after": 1}'),
        (500, {}, b"oops"),
        (400, {}, b'{"message": "Invalid Form Body", "code": 50035}'),
        (404, {}, b'{"message": "Unknown Webhook", "code": 10015}'),
        (200, {}, b"not json"),
    ]
    seen: list[str] = []
    with capture_logs() as logs:
        async with DiscordSink(_config(url)) as sink:
            seen.append(repr(sink))
            for _ in range(6):
                try:
                    seen.append(await sink.send(_failed()))
                except SinkError as exc:
                    seen += [str(exc), repr(exc)]
    assert len(seen) == 1 + 1 + 2 * 5
    _assert_no_secret(*seen, repr(logs))
    assert any(entry["event"] == "discord_unavailable" for entry in logs)
