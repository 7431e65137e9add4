"""Tests for the Apprise sink (plugins/ftwatch_apprise): its notifications, config and outcomes.

Every delivery goes through the real Apprise library to its ``json://`` service, which POSTs to a
recording receiver on a real loopback socket: what arrives there is what Apprise sent.
"""

from __future__ import annotations

import io
import json
import re
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from ftwatch_apprise import AppriseConfig, AppriseSink, build_notification
from watcher.cli import main
from watcher.diff import diff
from watcher.errors import PluginError, SinkUnavailable
from watcher.events import BaseEvent
from watcher.logs import configure_logging, reset_logging
from watcher.models import FineTuningJob
from watcher.serving import serve_asgi
from watcher.sinks import register_sink_secrets, sink_plugin
from watcher.testing_receiver import RecordingReceiver

T0 = 1_700_000_000
#: Secrets inside the URLs: a password and a token in the path, both long enough to be masked.
PASSWORD = "S3cr3t-pass-9182"
PATH_TOKEN = "T0K3N-path-7733"


def _job(**fields: Any) -> FineTuningJob:
    base: dict[str, Any] = {
        "id": "ftjob-abc123",
        "status": "queued",
        "created_at": T0,
        "model": "gpt-4o-mini-2024-07-18",
        "user_provided_suffix": "support-bot",
    }
    return FineTuningJob.model_validate({**base, **fields})


def _ended(**last: Any) -> BaseEvent:
    """The final event of a job seen queued, then running, then ``last``."""
    state, _ = diff(None, _job(), source="openai", now=T0 + 10)
    state, _ = diff(state, _job(status="running"), source="openai", now=T0 + 252)
    _, ended = diff(state, _job(**last), source="openai", now=T0 + 4000)
    return ended[-1]


def _failed(message: str = "The training file has 3 lines <b>*bold*</b>.") -> BaseEvent:
    error = {"code": "invalid_training_file", "message": message, "param": "training_file"}
    return _ended(status="failed", finished_at=T0 + 3990, error=error)


def _succeeded() -> BaseEvent:
    return _ended(status="succeeded", finished_at=T0 + 3990, fine_tuned_model="ft:gpt-4o:acme:x")


def _json_url(base_url: str, path: str = "/notify", *, secret: bool = False) -> str:
    """Apprise's ``json://`` form of the receiver's ``http://`` URL, at ``path``."""
    netloc = base_url.removeprefix("http://")
    auth = f"ftwatch:{PASSWORD}@" if secret else ""
    return f"json://{auth}{netloc}{path}"


def _config(*urls: str, **keys: Any) -> AppriseConfig:
    return AppriseConfig.model_validate(
        {"name": "phone", "type": "apprise", "urls": list(urls), **keys}
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[RecordingReceiver, str]]:
    """A RecordingReceiver listening on a real loopback socket, and its base URL."""
    receiver = RecordingReceiver()
    async with serve_asgi(receiver) as base_url:
        yield receiver, base_url


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert PATH_TOKEN not in text


# ---------------------------------------------------------------------------------------------
# Notifications


def test_the_notification_type_follows_the_outcome() -> None:
    """success, failure, warning and info: a service that colours by type reads it at a glance."""
    created = diff(None, _job(), source="openai", now=T0)[1][0]
    assert build_notification(_succeeded()).notify_type == "success"
    assert build_notification(_failed()).notify_type == "failure"
    assert build_notification(_ended(status="cancelled")).notify_type == "warning"
    assert build_notification(created).notify_type == "info"


def test_a_failure_reads_whole_in_plain_text() -> None:
    """Title with emoji and suffix; summary, labelled facts, the error message and the event id."""
    event = _failed().model_copy(update={"dashboard_url": "https://platform.openai.com/ft/1"})
    note = build_notification(event)
    assert note.title == "❌ Fine-tuning job failed · support-bot"
    lines = note.body.splitlines()
    assert lines[0].startswith("❌ Fine-tuning job failed: ftjob-abc123 (support-bot): ")
    for line in (
        "Job: ftjob-abc123",
        "Base model: gpt-4o-mini-2024-07-18",
        "Status: running → failed",
        "Error code: invalid_training_file",
        "Error message:",
        "The training file has 3 lines <b>*bold*</b>.",
        "Dashboard: https://platform.openai.com/ft/1",
        f"ftwatch · event {event.id}",
    ):
        assert line in lines
    assert note.body_format == "text"


def test_markdown_escapes_what_the_api_wrote() -> None:
    """In Markdown an error message can neither format text nor inject HTML."""
    note = build_notification(_failed(), "markdown")
    assert "**Job:** `ftjob-abc123`" in note.body
    assert "> The training file has 3 lines &lt;b&gt;\\*bold\\*&lt;/b&gt;\\." in note.body
    assert "<b>" not in note.body
    assert note.body_format == "markdown"


def test_a_long_message_is_cut_with_an_ellipsis() -> None:
    """A 5000-character error message is cut to 2000 characters, never refused."""
    note = build_notification(_failed("x" * 5000))
    assert ("x" * 1999 + "…") in note.body.splitlines()
    assert len(note.body) < 3000


# ---------------------------------------------------------------------------------------------
# Config


def test_entry_point_finds_the_apprise_sink() -> None:
    """`type = "apprise"` resolves to this plugin through the entry point."""
    plugin = sink_plugin("apprise")
    assert plugin.factory is AppriseSink
    assert plugin.config_model is AppriseConfig


def test_one_url_or_a_list() -> None:
    """`urls` takes one string or a list; each becomes a secret."""
    one = AppriseConfig.model_validate(
        {"name": "p", "type": "apprise", "urls": "ntfy://ntfy.sh/topic"}
    )
    assert [u.get_secret_value() for u in one.urls] == ["ntfy://ntfy.sh/topic"]
    assert one.body_format == "text" and one.timeout == 10.0
    many = _config("ntfy://ntfy.sh/topic", f"tgram://123456789:{PATH_TOKEN}/12345")
    assert len(many.urls) == 2
    assert all(isinstance(u, SecretStr) for u in many.urls)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (f"nosuchservice://{PATH_TOKEN}@host/x", "a nosuchservice:// URL that Apprise cannot use"),
        (f"{PATH_TOKEN}", "a URL without a scheme such as ntfy://"),
        (f"tgram://{PATH_TOKEN}", "a tgram:// URL that Apprise cannot use"),
    ],
)
def test_a_url_apprise_cannot_use_is_explained_without_quoting_it(url: str, said: str) -> None:
    """One sentence naming which URL and what to check; the URL itself never shown."""
    with pytest.raises(ValidationError) as caught:
        _config("ntfy://ntfy.sh/ok", url)
    text = str(caught.value)
    assert f"urls[1] is {said}" in text
    assert "https://github.com/caronc/apprise/wiki" in text
    assert PATH_TOKEN not in text and url not in text


def test_without_apprise_building_the_sink_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The entry point is always there; without the library, building names the extra."""
    # None in sys.modules makes `import apprise` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "apprise", None)
    config = _config(f"json://127.0.0.1:9/{PATH_TOKEN}")  # not checked: Apprise is missing
    with pytest.raises(PluginError) as caught:
        sink_plugin("apprise").build(config)
    message = str(caught.value)
    assert message == (
        "the apprise sink needs the Apprise library, which is not installed; "
        "install it with: pip install 'ftwatch[apprise]'"
    )
    assert PATH_TOKEN not in message


def _write_config(tmp_path: Path, sink: str) -> Path:
    path = tmp_path / "ftwatch.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [state]
            path = "{tmp_path / "state.db"}"

            [[sources]]
            name = "openai"
            api_key = "sk-test-0000000000000000"

            [[sinks]]
            name = "phone"
            type = "apprise"
            """
        )
        + textwrap.dedent(sink)
    )
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_masks_every_url(tmp_path: Path) -> None:
    """`ftwatch check` shows each URL as the mask, never a token."""
    path = _write_config(
        tmp_path, f'urls = ["json://ftwatch:{PASSWORD}@127.0.0.1:9/{PATH_TOKEN}", "ntfy://t"]\n'
    )
    code, out, err = _run("check", "--config", str(path))
    assert code == 0, err
    _assert_no_secret(out, err)
    (sink,) = json.loads(out)["sinks"]
    assert sink["urls"] == ["********", "********"]
    assert sink["body_format"] == "text"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("", r"sinks\[0\]: missing required key 'urls'"),
        ("urls = []\n", r"sinks\[0\]\.urls: .*at least 1"),
        (
            f'urls = "bogus://{PATH_TOKEN}"\n',
            r"sinks\[0\]\.urls: .*urls\[0\] is a bogus:// URL that Apprise cannot use",
        ),
        ('urls = "ntfy://t"\nbody_format = "html"\n', r"sinks\[0\]\.body_format: "),
    ],
)
def test_config_errors_are_one_sentence_through_check(
    tmp_path: Path, keys: str, expected: str
) -> None:
    """A missing, empty or unusable `urls` (or a bad key) stops `check` with exit 2, one line."""
    path = _write_config(tmp_path, keys)
    code, out, err = _run("check", "--config", str(path))
    assert code == 2, (out, err)
    assert re.search(expected, err), err
    assert err.count("\n") == 1 and "Traceback" not in err
    _assert_no_secret(err)


# ---------------------------------------------------------------------------------------------
# Deliveries through Apprise's json:// service


async def test_the_json_that_arrives_has_our_title_body_and_type(
    served: tuple[RecordingReceiver, str],
) -> None:
    """Apprise POSTs {title, message, type} built from our notification; receipt names it."""
    receiver, base_url = served
    event = _failed()
    async with AppriseSink(_config(_json_url(base_url))) as sink:
        receipt = await sink.send(event)
    assert receipt == "notified JSON"
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/notify"
    body = request.json()
    note = build_notification(event)
    assert body["title"] == note.title == "❌ Fine-tuning job failed · support-bot"
    assert body["type"] == "failure"
    assert body["message"] == note.body


async def test_markdown_reaches_a_markdown_service_as_markdown(
    served: tuple[RecordingReceiver, str],
) -> None:
    """With body_format markdown, a service that takes Markdown gets our Markdown as is."""
    receiver, base_url = served
    url = _json_url(base_url, "/md?format=markdown")
    async with AppriseSink(_config(url, body_format="markdown")) as sink:
        await sink.send(_succeeded())
    (request,) = receiver.requests
    body = request.json()
    assert body["type"] == "success"
    assert body["message"] == build_notification(_succeeded(), "markdown").body


async def test_a_500_is_unavailable_with_apprises_reason_and_is_retried(
    served: tuple[RecordingReceiver, str],
) -> None:
    """A receiver answering 500: SinkUnavailable (the daemon retries) with Apprise's reason."""
    receiver, base_url = served
    receiver.fail_first(1, 500)
    async with AppriseSink(_config(_json_url(base_url, f"/{PATH_TOKEN}", secret=True))) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_failed())
        assert await sink.send(_failed()) == "notified JSON"
    reason = caught.value.reason
    assert reason.startswith("Apprise could not notify JSON (URL 1 of 1): ")
    assert "error=500" in reason
    _assert_no_secret(reason, str(caught.value), repr(caught.value))
    assert [status for _, status in receiver.answered] == [500, 200]


async def test_a_retry_goes_only_to_the_urls_that_failed(
    served: tuple[RecordingReceiver, str],
) -> None:
    """Two URLs, one failing: the retry does not notify the one that already has it."""
    good, base_url = served
    bad = RecordingReceiver()
    bad.fail_first(1, 503)
    async with serve_asgi(bad) as bad_url:
        config = _config(_json_url(base_url, "/good"), _json_url(bad_url, "/bad"))
        async with AppriseSink(config) as sink:
            with pytest.raises(SinkUnavailable, match=r"could not notify JSON \(URL 2 of 2\)"):
                await sink.send(_failed())
            assert await sink.send(_failed()) == "notified JSON, JSON"
            # A different event goes to both again.
            await sink.send(_succeeded())
    assert [r.path for r in good.requests] == ["/good", "/good"]
    assert [status for _, status in bad.answered] == [503, 200, 200]


async def test_concurrent_sends_each_get_their_own_outcome(
    served: tuple[RecordingReceiver, str],
) -> None:
    """Eight jobs' events at once (a sink's default concurrency), three answered 500: exactly
    three fail, each with Apprise's reason for its own call, and the rest are delivered."""
    receiver, base_url = served
    receiver.fail_first(3, 500)
    events = [
        _failed().model_copy(update={"id": f"evt_{n}", "job_id": f"ftjob-{n}"}) for n in range(8)
    ]
    outcomes: list[str] = []

    async def send(sink: AppriseSink, event: BaseEvent) -> None:
        try:
            outcomes.append(await sink.send(event))
        except SinkUnavailable as exc:
            outcomes.append(exc.reason)

    async with AppriseSink(_config(_json_url(base_url))) as sink, anyio.create_task_group() as tg:
        for event in events:
            tg.start_soon(send, sink, event)
    assert sorted(outcomes) == sorted(
        ["notified JSON"] * 5
        + [
            "Apprise could not notify JSON (URL 1 of 1): "
            "Failed to send JSON POST notification: Internal server error., error=500."
        ]
        * 3
    )
    assert len(receiver.requests) == 8


async def test_a_refused_connection_is_unavailable_without_the_url() -> None:
    """Nothing listening: retried later; the reason names the service, not its URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"json://ftwatch:{PASSWORD}@127.0.0.1:{port}/{PATH_TOKEN}"
    async with AppriseSink(_config(url, timeout=5)) as sink:
        with pytest.raises(SinkUnavailable) as caught:
            await sink.send(_failed())
    assert caught.value.reason == (
        "Apprise could not notify JSON (URL 1 of 1): "
        "A Connection error occurred sending JSON notification to ********."
    )
    _assert_no_secret(str(caught.value))


async def test_a_receiver_that_never_answers_is_a_timeout_retried_later(
    served: tuple[RecordingReceiver, str],
) -> None:
    """`timeout` bounds the call: Apprise gives up, and the daemon would retry."""
    receiver, base_url = served
    receiver.hang()
    try:
        async with AppriseSink(_config(_json_url(base_url), timeout=0.3)) as sink:
            with anyio.fail_after(5), pytest.raises(SinkUnavailable) as caught:
                await sink.send(_failed())
    finally:
        receiver.respond(200)  # lets Apprise's worker thread finish its request
    assert re.fullmatch(
        r"Apprise could not notify JSON \(URL 1 of 1\): "
        r"Service 'JSON' did not finish within [0-9.]+s\.",
        caught.value.reason,
    )


async def test_the_urls_never_reach_logs_repr_or_errors(
    served: tuple[RecordingReceiver, str],
) -> None:
    """Through a failure and an unusable URL: neither our log, nor Apprise's, shows a URL."""
    receiver, base_url = served
    receiver.fail_first(1, 500, body=f"denied {PATH_TOKEN}".encode())
    url = _json_url(base_url, f"/{PATH_TOKEN}", secret=True)
    config = _config(url)
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    seen: list[str] = [repr(config), str(config), config.model_dump_json()]
    try:
        register_sink_secrets(config)
        # A careless line quoting the whole URL is masked too: every URL in `urls` is registered.
        structlog.get_logger("careless").error("leak", detail=url)
        with capture_logs() as logs:
            async with AppriseSink(config) as sink:
                seen.append(repr(sink))
                with pytest.raises(SinkUnavailable) as caught:
                    await sink.send(_failed())
                seen += [str(caught.value), repr(caught.value)]
                await sink.send(_failed())
        # Apprise logs an unusable URL whole, at ERROR: it must not reach our log.
        with pytest.raises(ValidationError):
            _config(f"bogus://{PASSWORD}/{PATH_TOKEN}")
    finally:
        reset_logging()
    assert any(entry["event"] == "apprise_unavailable" for entry in logs)
    assert '"leak"' in out.getvalue()
    _assert_no_secret(*seen, repr(logs), out.getvalue())


# ---------------------------------------------------------------------------------------------
# `ftwatch sinks test`


async def test_sinks_test_sends_a_marked_sample(
    served: tuple[RecordingReceiver, str], tmp_path: Path
) -> None:
    """The sample arrives marked as a test in its title and body; the command exits 0."""
    receiver, base_url = served
    path = _write_config(tmp_path, f'urls = "{_json_url(base_url, "/t")}"\n')
    code, out, err = await anyio.to_thread.run_sync(
        _run, "sinks", "test", "phone", "--config", str(path)
    )
    assert code == 0, err
    assert re.fullmatch(
        r"ok: sample event \S+ delivered to sink 'phone' in \d+ ms \(notified JSON\)\n", out
    )
    (request,) = receiver.requests
    body = request.json()
    assert body["title"].startswith("🧪 Test from ftwatch: ")
    assert "a test message, no job changed" in body["message"]
    assert body["type"] == "success"
