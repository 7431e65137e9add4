"""Tests for the email sink (plugins/ftwatch_email) against a real SMTP server.

The server is aiosmtpd, run by each test on a free loopback port in its own thread (its
Controller), with a handler that keeps every message it accepted. STARTTLS and implicit TLS use
a certificate from a CA the test makes (trustme) and trusts through ``ca_file``; logins go
through aiosmtpd's authenticator, which refuses them without TLS. What the tests check is what a
reader's mail client would get: the bytes the server received, parsed with the stdlib ``email``
package.
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import structlog
from click.testing import CliRunner
from pydantic import ValidationError
from structlog.testing import capture_logs

from ftwatch_email import EmailConfig, EmailSink, message_id, thread_root
from helpers import free_port
from watcher.diff import diff
from watcher.errors import (
    ConfigError,
    SinkDisabled,
    SinkError,
    SinkRejected,
    SinkUnavailable,
)
from watcher.events import BaseEvent
from watcher.facts import TEST_MARK
from watcher.models import FineTuningJob
from watcher.sinks import sink_plugin

pytest.importorskip("aiosmtpd", reason="the real SMTP server comes from PyPI's aiosmtpd package")

from smtp_server import PASSWORD, USER, Tls, make_tls, parts, smtp_server

T0 = 1_700_000_000
HOSTILE_SUFFIX = "bot\r\nBcc: victim@evil.test\r\n<b>x</b>"
HOSTILE_ERROR = '<script>alert("x")</script>\r\nBcc: victim@evil.test\n<img src=x onerror=y>'


@pytest.fixture
def anyio_backend() -> str:
    """aiosmtplib speaks asyncio."""
    return "asyncio"


# ---------------------------------------------------------------------------------------------
# Events


def _job(job_id: str = "ftjob-abc123", **fields: Any) -> FineTuningJob:
    base: dict[str, Any] = {
        "id": job_id,
        "status": "queued",
        "created_at": T0,
        "model": "gpt-4o-mini-2024-07-18",
        "user_provided_suffix": "support-bot",
    }
    return FineTuningJob.model_validate({**base, **fields})


def _events(job_id: str = "ftjob-abc123", **last: Any) -> list[BaseEvent]:
    """A job seen queued, then running, then ending as ``last`` says (failed by default)."""
    end: dict[str, Any] = {
        "status": "failed",
        "finished_at": T0 + 4000,
        "error": {"code": "invalid_training_file", "message": "bad line 3", "param": None},
        **last,
    }
    state, created = diff(None, _job(job_id), source="openai", now=T0 + 10)
    state, running = diff(state, _job(job_id, status="running"), source="openai", now=T0 + 252)
    _, ended = diff(state, _job(job_id, **end), source="openai", now=T0 + 4030)
    return [*created, *running, *ended]


def _failed(**last: Any) -> BaseEvent:
    return next(e for e in _events(**last) if e.type == "fine_tuning.job.failed")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A private CA, trusted through ca_file, and the server's certificate from it."""
    return make_tls(tmp_path_factory.mktemp("ca"))


def _config(port: int, **keys: Any) -> EmailConfig:
    base: dict[str, Any] = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "from": "ftwatch <ftwatch@example.test>",
        "to": ["ml-team@example.test"],
        "timeout": 5,
    }
    return EmailConfig.model_validate({**base, **keys})


def _login(tls: Tls) -> dict[str, Any]:
    return {"ca_file": tls.ca_file, "username": USER, "password": PASSWORD}


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert "Sekrit" not in text


# ---------------------------------------------------------------------------------------------
# Delivery over STARTTLS and implicit TLS


async def test_a_failed_job_arrives_over_starttls_with_login(tls: Tls) -> None:
    """Over STARTTLS with a certificate from a private CA (ca_file) and a login: one message
    with a text and an HTML part, the headers a mail client threads and filters on, and the
    envelope going to every to and cc address."""
    event = _failed()
    with smtp_server(starttls=tls.server) as (box, port):
        config = _config(port, cc=["Boss <boss@example.test>"], **_login(tls))
        async with EmailSink(config) as sink:
            receipt = await sink.send(event)
        session, message = box.take()
    assert receipt.startswith(f"127.0.0.1:{port} accepted it for 2 of 2 recipients: ")
    assert session.ssl is not None and session.authenticated
    assert message["Subject"] == f"[ftwatch] {_summary_of(event)}"
    assert message["From"] == "ftwatch <ftwatch@example.test>"
    assert message["To"] == "ml-team@example.test"
    assert message["Cc"] == "Boss <boss@example.test>"
    assert message["Message-ID"] == f"<{event.id}@ftwatch>"
    assert (
        message["In-Reply-To"] == message["References"] == "<ftwatch.openai.ftjob-abc123@ftwatch>"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime.timestamp() == int(event.observed_at)
    text, html = parts(message)
    assert "Job:" in text and "ftjob-abc123" in text and "invalid_training_file" in text
    assert "Error message:\nbad line 3" in text
    assert "<code>ftjob-abc123</code>" in html and "<pre" in html and "bad line 3" in html
    assert TEST_MARK not in text + html + message["Subject"]


def _summary_of(event: BaseEvent) -> str:
    from watcher.facts import summary

    return summary(event)


async def test_two_events_of_one_job_thread_under_the_job_root(tls: Tls) -> None:
    """The running and failed events of one job are two messages with their own ids, both
    answering the same thread root derived from the job: no state is needed to thread."""
    events = [e for e in _events() if e.type != "fine_tuning.job.created"]
    other = _failed()  # the same job seen again: same event ids, same message ids
    with smtp_server(starttls=tls.server) as (box, port):
        async with EmailSink(_config(port, ca_file=tls.ca_file)) as sink:
            for event in events:
                await sink.send(event)
        messages = [box.take()[1] for _ in events]
    ids = [m["Message-ID"] for m in messages]
    assert ids == [message_id(e) for e in events] and len(set(ids)) == len(events) >= 2
    root = thread_root(other)
    assert root == "<ftwatch.openai.ftjob-abc123@ftwatch>"
    for message in messages:
        assert message["In-Reply-To"] == root
        assert message["References"] == root
    assert message_id(other) == ids[-1]


async def test_implicit_tls_delivers_on_its_own_port(tls: Tls) -> None:
    """tls = "implicit" speaks TLS from the first byte (SMTPS) and logs in there."""
    with smtp_server(implicit=tls.server) as (box, port):
        async with EmailSink(_config(port, tls="implicit", **_login(tls))) as sink:
            await sink.send(_failed())
        session, message = box.take()
    assert session.authenticated
    assert message["Message-ID"].endswith("@ftwatch>")


async def test_a_hostile_job_can_add_no_header_and_no_markup(tls: Tls) -> None:
    """Line breaks and HTML in the suffix and the error message neither add a header (no Bcc,
    one subject line) nor reach the HTML unescaped."""
    event = _failed(
        user_provided_suffix=HOSTILE_SUFFIX,
        error={"code": "bad\r\nX-Injected: 1", "message": HOSTILE_ERROR, "param": None},
    )
    with smtp_server(starttls=tls.server) as (box, port):
        async with EmailSink(_config(port, ca_file=tls.ca_file)) as sink:
            await sink.send(event)
        _, message = box.take()
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert len(message["Subject"]) <= 200
    text, html = parts(message)
    for raw in ("<script>", "<b>x</b>", "<img"):
        assert raw not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    # The text part keeps the words, harmless there.
    assert '<script>alert("x")</script>' in text


async def test_a_long_summary_makes_a_bounded_subject(tls: Tls) -> None:
    """An error message of 5000 characters gives a subject cut with an ellipsis."""
    with smtp_server(starttls=tls.server) as (box, port):
        async with EmailSink(_config(port, ca_file=tls.ca_file)) as sink:
            await sink.send(_failed(error={"code": "e", "message": "word " * 1000}))
        _, message = box.take()
    # CPython folds the header before its last encoded word leaving one extra space on the
    # wire; a client shows the same words.
    shown = " ".join(message["Subject"].split())
    assert len(shown) <= 200 and shown.endswith("…")
    assert ("word " * 999).strip() in parts(message)[0]


# ---------------------------------------------------------------------------------------------
# What the server's answers mean


async def test_a_wrong_password_is_a_clear_permanent_error(tls: Tls) -> None:
    """535 on login disables the sink (the queue is kept) with a sentence saying the username
    or password was refused; the password is in neither the error nor the logs."""
    with smtp_server(starttls=tls.server) as (box, port):
        config = _config(port, **{**_login(tls), "password": "wrong-" + PASSWORD})
        with capture_logs() as logs:
            async with EmailSink(config) as sink:
                with pytest.raises(SinkDisabled) as caught:
                    await sink.send(_failed())
    reason = caught.value.reason
    assert reason.startswith(f"the SMTP server 127.0.0.1:{port} refused the login (reply 535)")
    assert f"the username '{USER}' or its password is wrong" in reason
    assert caught.value.status_code == 535
    assert box.received.empty()
    _assert_no_secret(str(caught.value), repr(caught.value), repr(logs))


async def test_an_untrusted_certificate_disables_the_sink_and_names_ca_file(tls: Tls) -> None:
    """Without ca_file the private CA's certificate is not trusted: nothing is sent, and the
    error says to set ca_file."""
    with smtp_server(starttls=tls.server) as (box, port):
        async with EmailSink(_config(port)) as sink:
            with pytest.raises(SinkDisabled, match=r"not trusted .*set ca_file"):
                await sink.send(_failed())
    assert box.received.empty()


async def test_a_server_without_starttls_is_not_used_in_the_clear(tls: Tls) -> None:
    """tls = "starttls" against a server that offers no STARTTLS: disabled, never plain text."""
    with smtp_server() as (box, port):
        async with EmailSink(_config(port, **_login(tls))) as sink:
            with pytest.raises(SinkDisabled, match='does not offer STARTTLS; use tls = "implicit"'):
                await sink.send(_failed())
    assert box.received.empty()


async def test_plain_smtp_to_a_loopback_relay_needs_no_tls() -> None:
    """tls = "none" to 127.0.0.1 (a local relay) delivers without TLS and without a login."""
    with smtp_server() as (box, port):
        async with EmailSink(_config(port, tls="none")) as sink:
            await sink.send(_failed())
        session, _ = box.take()
    assert session.ssl is None


async def test_recipients_refused_by_the_server(tls: Tls) -> None:
    """Every recipient refused with 550: rejected, quoting the reply bounded. Some refused:
    delivered to the others (a retry would send them a second copy), the refusal logged.
    Every recipient refused for now (450): retried."""
    with smtp_server(starttls=tls.server) as (box, port):
        refused = _config(port, ca_file=tls.ca_file, to=["refused@example.test"])
        async with EmailSink(refused) as sink:
            with pytest.raises(SinkRejected) as caught:
                await sink.send(_failed())
        reason = caught.value.reason
        assert "refused every recipient (refused@example.test: 550 5.1.1" in reason
        assert len(reason) < 500 and "\n" not in reason
        assert caught.value.status_code == 550

        some = _config(port, ca_file=tls.ca_file, to=["ok@example.test", "refused@example.test"])
        with capture_logs() as logs:
            async with EmailSink(some) as sink:
                receipt = await sink.send(_failed())
        assert "for 1 of 2 recipients" in receipt
        assert box.take()[1]["To"] == "ok@example.test, refused@example.test"
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "email_recipients_refused"
        ]

        later = _config(port, ca_file=tls.ca_file, to=["later@example.test"])
        async with EmailSink(later) as sink:
            with pytest.raises(SinkUnavailable, match=r"450 4\.2\.1 mailbox busy"):
                await sink.send(_failed())


@pytest.mark.parametrize(
    ("answer", "outcome", "code"),
    [
        ("451 4.3.0 local problem, try again", SinkUnavailable, 451),
        ("554 5.6.0 message refused as spam", SinkRejected, 554),
    ],
)
async def test_a_reply_to_the_message_maps_by_its_class(
    tls: Tls, answer: str, outcome: type[SinkError], code: int
) -> None:
    """A 4xx answer to the message is transient, a 5xx permanent; the reply code is kept."""
    with smtp_server(starttls=tls.server) as (box, port):
        box.data_answer = answer
        async with EmailSink(_config(port, ca_file=tls.ca_file)) as sink:
            with pytest.raises(outcome, match=answer.split(" ", 1)[1]) as caught:
                await sink.send(_failed())
    assert caught.value.status_code == code


async def test_no_server_and_a_silent_server_are_transient() -> None:
    """A refused connection, and a server that accepts but never greets (a timeout), are
    retried; neither carries a reply code (the circuit breaker counts them)."""
    async with EmailSink(_config(free_port(), tls="none")) as sink:
        with pytest.raises(SinkUnavailable, match="refused the connection") as caught:
            await sink.send(_failed())
    assert caught.value.status_code is None
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _never_greet)
            async with EmailSink(_config(port, tls="none", timeout=0.3)) as sink:
                with pytest.raises(SinkUnavailable, match=r"timed out after 0\.3s$"):
                    await sink.send(_failed())
            tg.cancel_scope.cancel()


async def _never_greet(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()


# ---------------------------------------------------------------------------------------------
# Config


def test_entry_point_finds_the_email_sink() -> None:
    """The ``email`` entry point resolves to EmailSink and its config model."""
    plugin = sink_plugin("email")
    assert plugin.factory is EmailSink
    assert plugin.config_model is EmailConfig


@pytest.mark.parametrize(("tls_mode", "port"), [("starttls", 587), ("implicit", 465), ("none", 25)])
def test_the_port_defaults_by_tls_mode(tls_mode: str, port: int) -> None:
    """Without a port, each TLS mode uses its usual one."""
    config = EmailConfig.model_validate(
        {
            "name": "m",
            "type": "email",
            "host": "localhost",
            "tls": tls_mode,
            "from": "a@b.c",
            "to": ["d@e.f"],
        }
    )
    assert config.port == port


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"tls": "none", "host": "smtp.example.com"}, "sends every message and the password"),
        ({"username": USER}, "give username and password together"),
        ({"password": PASSWORD}, "give username and password together"),
        ({"to": []}, "to"),
        ({"to": ["nobody"]}, "expected an address such as"),
        ({"from": "a@b.c\r\nBcc: x@y.z"}, "on one line"),
        ({"host": "smtp://smtp.example.com:587"}, "without a scheme or port"),
        ({"tls": "ssl"}, "tls"),
        ({"timeout": 0}, "positive duration"),
    ],
)
def test_config_mistakes_are_explained(keys: dict[str, Any], expected: str) -> None:
    """Each mistake gets an error naming what is expected, never quoting the password."""
    base = {"name": "m", "type": "email", "host": "127.0.0.1", "from": "a@b.c", "to": ["d@e.f"]}
    with pytest.raises(ValidationError) as caught:
        EmailConfig.model_validate({**base, **keys})
    assert expected in str(caught.value)
    _assert_no_secret(str(caught.value))


def test_plain_smtp_elsewhere_is_an_explicit_opt_in() -> None:
    """tls = "none" to a remote host is allowed with allow_plaintext, and to loopback without."""
    base = {"name": "m", "type": "email", "tls": "none", "from": "a@b.c", "to": ["d@e.f"]}
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.5"):
        assert EmailConfig.model_validate({**base, "host": host}).port == 25
    remote = EmailConfig.model_validate({**base, "host": "relay.lan", "allow_plaintext": True})
    assert remote.tls == "none"


async def test_secrets_stay_out_of_repr_and_dumps(tls: Tls) -> None:
    """The password appears in no repr, str or JSON dump of the config or the sink."""
    config = _config(1, **_login(tls))
    async with EmailSink(config) as sink:
        _assert_no_secret(repr(config), str(config), config.model_dump_json(), repr(sink))


def test_a_missing_ca_file_is_a_config_error_at_startup(tmp_path: Path) -> None:
    """A ca_file that is not there, or not PEM, stops the sink from being built."""
    with pytest.raises(ConfigError, match=r"ca_file .*missing\.pem does not exist"):
        EmailSink(_config(1, ca_file=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"holds no readable PEM certificate"):
        EmailSink(_config(1, ca_file=tmp_path / "junk.pem"))


# ---------------------------------------------------------------------------------------------
# Through the command line


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    from watcher.cli import main

    result = CliRunner().invoke(main, list(args), env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def _config_file(tmp_path: Path, sink: str) -> Path:
    path = tmp_path / "ftwatch.toml"
    head = '[state]\npath = "state.db"\n\n[[sources]]\nname = "sim"\nbase_url = "http://127.0.0.1:9/v1"\n\n'
    path.write_text(head + textwrap.dedent(sink), encoding="utf-8")
    return path


def test_check_masks_the_password_and_resolves_ca_file(tmp_path: Path, tls: Tls) -> None:
    """`ftwatch check` shows the sink with its port resolved, ca_file next to the config file,
    and the password masked."""
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(tls.ca_file.read_bytes())
    path = _config_file(
        tmp_path,
        f"""
        [[sinks]]
        name = "mail"
        type = "email"
        host = "smtp.example.com"
        ca_file = "certs/ca.pem"
        username = "{USER}"
        password = "${{SMTP_PASSWORD}}"
        from = "ftwatch@example.com"
        to = ["ml@example.com"]
        """,
    )
    code, out, err = _cli("check", "--config", str(path), env={"SMTP_PASSWORD": PASSWORD})
    assert code == 0, err
    _assert_no_secret(out, err)
    sink = json.loads(out)["sinks"][0]
    assert sink["password"] == "********"
    assert sink["port"] == 587 and sink["from"] == "ftwatch@example.com"
    assert sink["ca_file"] == str(tmp_path / "certs" / "ca.pem")


@pytest.mark.parametrize("missing", ["host", "from", "to"])
def test_check_names_a_missing_required_key(tmp_path: Path, missing: str) -> None:
    """Without host, from or to, `check` exits 2 with one sentence naming the key."""
    keys = {"host": '"smtp.example.com"', "from": '"a@example.com"', "to": '["b@example.com"]'}
    lines = "".join(f"{k} = {v}\n" for k, v in keys.items() if k != missing)
    path = _config_file(tmp_path, f'[[sinks]]\nname = "mail"\ntype = "email"\n{lines}')
    code, _, out = _cli("check", "--config", str(path))
    assert code == 2, out
    assert f"sinks[0]: missing required key '{missing}'" in out, out
    assert len(out.strip().splitlines()) == 1, out


def _login_config_file(tmp_path: Path, port: int, tls: Tls) -> Path:
    """A config file with one email sink logging in to the test server, password from the env."""
    return _config_file(
        tmp_path,
        f"""
        [[sinks]]
        name = "mail"
        type = "email"
        host = "127.0.0.1"
        port = {port}
        ca_file = "{tls.ca_file}"
        username = "{USER}"
        password = "${{SMTP_PASSWORD}}"
        from = "ftwatch@example.com"
        to = ["ml@example.com"]
        """,
    )


def test_sinks_test_sends_a_marked_sample(tmp_path: Path, tls: Tls) -> None:
    """`ftwatch sinks test mail` delivers a sample a reader cannot take for a real job."""
    with smtp_server(starttls=tls.server) as (box, port):
        path = _login_config_file(tmp_path, port, tls)
        code, out, err = _cli(
            "sinks", "test", "mail", "--config", str(path), env={"SMTP_PASSWORD": PASSWORD}
        )
        assert code == 0, err
        _, message = box.take()
    assert "delivered to sink 'mail'" in out
    _assert_no_secret(out)
    assert message["Subject"].startswith(f"[ftwatch] {TEST_MARK}")
    text, html = parts(message)
    assert "This is a test message sent by `ftwatch sinks test`: no job changed." in text
    assert "This is a test message" in html


def test_sinks_test_says_the_login_was_refused(tmp_path: Path, tls: Tls) -> None:
    """A wrong password through `sinks test`: exit 1, the sentence, no password."""
    with smtp_server(starttls=tls.server) as (_, port):
        path = _login_config_file(tmp_path, port, tls)
        code, out, err = _cli(
            "sinks",
            "test",
            "mail",
            "--config",
            str(path),
            env={"SMTP_PASSWORD": "wrong-" + PASSWORD},
        )
    assert code == 1
    assert "refused the login (reply 535)" in err
    assert "stop this sink until restarted" in err
    _assert_no_secret(out, err)


async def test_the_password_never_reaches_logs_or_errors(tls: Tls) -> None:
    """Through every kind of outcome, with the daemon's log pipeline at debug level and the
    sink's secrets registered as the daemon does, no log line and no error holds the password.
    """
    from watcher.logs import MASK, configure_logging, redact, reset_logging
    from watcher.sinks import register_sink_secrets

    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    seen: list[str] = []
    try:
        with smtp_server(starttls=tls.server) as (box, port):
            right = _config(port, **_login(tls))
            register_sink_secrets(right)
            assert redact(f"pw={PASSWORD}") == f"pw={MASK}"
            configs = [
                right,
                _config(port, **{**_login(tls), "to": ["refused@example.test"]}),
                _config(port, **{**_login(tls), "to": ["later@example.test"]}),
                _config(free_port(), **_login(tls)),
            ]
            for config in configs:
                async with EmailSink(config) as sink:
                    seen.append(repr(sink))
                    try:
                        seen.append(await sink.send(_failed()))
                    except SinkError as exc:
                        seen += [str(exc), repr(exc)]
                        structlog.get_logger("watcher.dispatch").error(
                            "delivery_failed", reason=exc.reason
                        )
            wrong = _config(port, **{**_login(tls), "password": PASSWORD + "-not"})
            register_sink_secrets(wrong)
            async with EmailSink(wrong) as sink:
                with pytest.raises(SinkDisabled) as caught:
                    await sink.send(_failed())
            seen += [str(caught.value), repr(caught.value)]
            assert box.take()[1]["To"] == "ml-team@example.test"
    finally:
        reset_logging()
    assert len(seen) == 4 + 1 + 2 * 3 + 2
    _assert_no_secret(*seen, stream.getvalue())
    assert "email_unavailable" in stream.getvalue()


def test_ids_from_hostile_event_and_job_ids_stay_one_safe_word() -> None:
    """An event or job id holding brackets, spaces, @ or a line break still gives a valid
    message id; two ids that read alike once made safe stay different."""
    event = _failed()
    odd = event.model_copy(update={"id": "evt <x>@y\r\nBcc: z", "source": "my source"})
    alike = event.model_copy(update={"id": "evt _x__y__Bcc__z", "source": "my source"})
    mid, other = message_id(odd), message_id(alike)
    for made in (mid, other, thread_root(odd)):
        assert made.startswith("<") and made.endswith("@ftwatch>")
        assert all(c.isalnum() or c in "<>@._-" for c in made), made
    assert mid != other
    assert thread_root(odd).startswith("<ftwatch.my_source-")
    long = event.model_copy(update={"id": "e" * 1000})
    assert len(message_id(long)) < 130


def test_one_recipient_may_be_written_as_a_string() -> None:
    """``to = "ml@example.com"`` is one recipient, as ``to = ["ml@example.com"]`` is."""
    config = _config(25, to="ml@example.test", cc="boss@example.test")
    assert config.to == ["ml@example.test"] and config.recipients == [
        "ml@example.test",
        "boss@example.test",
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            'ca_file = "certs/missing.pem"',
            "ca_file {dir}/certs/missing.pem does not exist or is not a file; give the PEM file",
        ),
        ('host = "relay.lan"\ntls = "none"', "set allow_plaintext = true to accept that"),
    ],
)
def test_check_refuses_what_the_sink_could_not_use(
    tmp_path: Path, keys: str, expected: str
) -> None:
    """A ca_file that is not there (resolved next to the config file) and plain SMTP to a
    remote host are one sentence each from `check`, exit 2, the password not in it."""
    body = "\n".join(
        line
        for line in [
            '[[sinks]]\nname = "mail"\ntype = "email"',
            'host = "smtp.example.com"' if "host" not in keys else "",
            keys,
            f'username = "{USER}"\npassword = "{PASSWORD}"',
            'from = "a@example.com"\nto = "b@example.com"',
        ]
        if line
    )
    path = _config_file(tmp_path, body + "\n")
    code, _, err = _cli("check", "--config", str(path))
    assert code == 2, err
    assert expected.format(dir=tmp_path) in err
    assert len(err.strip().splitlines()) == 1
    _assert_no_secret(err)
