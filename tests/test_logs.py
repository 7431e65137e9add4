"""Logging: JSON lines or console output on one stream, and secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from watcher.logs import (
    MASK,
    configure_logging,
    is_secret_key,
    redact,
    register_secret,
    reset_logging,
)

SECRET = "zq-test-secret-0123456789"


class TTYStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Claim to be a terminal."""
        return True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON objects written to ``stream``, one a line."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def log_failure(log: Any) -> None:
    """Log an error with a traceback whose exception message holds the secret."""
    try:
        raise RuntimeError(f"request failed with key {SECRET}")
    except RuntimeError:
        log.error("call_failed", exc_info=True)


# -- output ----------------------------------------------------------------------------------


def test_json_lines_when_the_stream_is_not_a_tty() -> None:
    """auto writes one JSON object a line, with timestamp, level, logger and the fields."""
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    structlog.get_logger("watcher.poller").info("polled", source="openai", jobs=3)
    (line,) = lines(stream)
    assert line["event"] == "polled"
    assert line["level"] == "info"
    assert line["logger"] == "watcher.poller"
    assert line["source"] == "openai"
    assert line["jobs"] == 3
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None)


def test_console_output_on_a_tty() -> None:
    """auto renders for humans, not JSON, when the stream is a terminal."""
    stream = TTYStream()
    configure_logging("info", "auto", stream=stream)
    structlog.get_logger("watcher.app").info("started", sources=2)
    text = stream.getvalue()
    assert "started" in text
    assert "watcher.app" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_console_format_without_a_tty_has_no_colours() -> None:
    """fmt="console" on a plain stream renders text without terminal escape codes."""
    stream = io.StringIO()
    configure_logging("info", "console", stream=stream)
    structlog.get_logger("watcher.app").warning("slow_sink", sink="hooks")
    text = stream.getvalue()
    assert "slow_sink" in text
    assert "sink=hooks" in text
    assert "\x1b[" not in text


def test_json_format_on_a_tty() -> None:
    """fmt="json" writes JSON even to a terminal."""
    stream = TTYStream()
    configure_logging("info", "json", stream=stream)
    structlog.get_logger("watcher.app").info("started")
    assert lines(stream)[0]["event"] == "started"


def test_level_filters_structlog_events() -> None:
    """Events below the configured level are dropped."""
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    log = structlog.get_logger("watcher.app")
    log.info("hidden")
    log.warning("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_debug_level_shows_debug_events() -> None:
    """At level debug, debug events are written."""
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    structlog.get_logger("watcher.app").debug("details")
    assert lines(stream)[0]["level"] == "debug"


def test_stdlib_records_pass_at_warning_through_the_same_output() -> None:
    """Standard-library records (uvicorn's) are written as JSON too, from WARNING up."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    logging.getLogger("uvicorn.error").info("hidden")
    logging.getLogger("uvicorn.error").warning("port %d busy", 8080)
    (line,) = lines(stream)
    assert line["event"] == "port 8080 busy"
    assert line["logger"] == "uvicorn.error"
    assert line["level"] == "warning"
    assert "timestamp" in line


def test_http_libraries_stay_at_warning() -> None:
    """httpx and httpcore never log their request lines, which hold URLs."""
    configure_logging("debug", "json", stream=io.StringIO())
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


def test_configuring_twice_replaces_the_output() -> None:
    """A second configure_logging writes only to the new stream, once."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("info", "json", stream=second)
    logging.getLogger("lib").error("once")
    structlog.get_logger("watcher.app").info("again")
    assert first.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["once", "again"]


def test_unknown_level_or_format_is_rejected() -> None:
    """A level or format that does not exist raises ValueError naming the choices."""
    with pytest.raises(ValueError, match="expected one of: debug, info, warning, error"):
        configure_logging("loud")
    with pytest.raises(ValueError, match="expected one of: auto, json, console"):
        configure_logging("info", "xml")


def test_reset_logging_removes_the_handler() -> None:
    """After reset_logging, standard-library records no longer reach the old stream."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    reset_logging()
    logging.getLogger("lib").error("after reset")
    assert stream.getvalue() == ""


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secret_is_masked_in_fields(fmt: str) -> None:
    """A registered secret inside an event field is written as ********."""
    stream = io.StringIO()
    configure_logging("info", fmt, stream=stream)
    register_secret(SECRET)
    structlog.get_logger("watcher.client").error("boom", detail=f"key={SECRET}")
    text = stream.getvalue()
    assert SECRET not in text
    assert f"key={MASK}" in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secret_is_masked_in_tracebacks(fmt: str) -> None:
    """A secret in an exception's message is masked in the logged traceback."""
    stream = io.StringIO()
    configure_logging("info", fmt, stream=stream)
    register_secret(SECRET)
    log_failure(structlog.get_logger("watcher.client"))
    text = stream.getvalue()
    assert "RuntimeError: request failed with key ********" in text
    assert SECRET not in text


def test_registered_secret_is_masked_in_the_event_name() -> None:
    """A secret in the event message itself is masked."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    register_secret(SECRET)
    structlog.get_logger("watcher.client").warning(f"bad key {SECRET}")
    assert lines(stream)[0]["event"] == f"bad key {MASK}"


def test_secret_in_an_object_repr_is_masked() -> None:
    """A secret that reaches the output through an object's repr is still masked."""

    class Leaky:
        def __repr__(self) -> str:
            return f"<Leaky {SECRET}>"

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    register_secret(SECRET)
    structlog.get_logger("watcher.client").info("object", thing=Leaky())
    assert SECRET not in stream.getvalue()
    assert lines(stream)[0]["thing"] == f"<Leaky {MASK}>"


def test_secret_in_stdlib_records_and_their_tracebacks_is_masked() -> None:
    """Standard-library records get the same masking, traceback included."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    register_secret(SECRET)
    log_failure(logging.getLogger("uvicorn.error"))
    logging.getLogger("uvicorn.error").warning("client sent %s", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    first, second = lines(stream)
    assert first["exception"].endswith(f"RuntimeError: request failed with key {MASK}")
    assert second["event"] == f"client sent {MASK}"


def test_credential_keys_are_masked_without_registration() -> None:
    """Values of keys named like credentials are masked even when never registered."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    structlog.get_logger("watcher.sinks").info(
        "request",
        api_key="plain-key-value",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "X-Team": "ml"},
        trained_tokens=1200,
    )
    (line,) = lines(stream)
    assert line["api_key"] == MASK
    assert line["headers"] == {"Authorization": MASK, "X-Team": "ml"}
    assert line["trained_tokens"] == 1200


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apikey",
        "X-Api-Key",
        "Authorization",
        "secret",
        "webhook_secret",
        "token",
        "access_token",
        "password",
        "webhook_url",
    ],
)
def test_credential_key_names(name: str) -> None:
    """Names of credentials are recognised, in any case and with dashes."""
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["trained_tokens", "max_tokens", "url", "job_id", "source"])
def test_ordinary_key_names(name: str) -> None:
    """Ordinary names, token counts included, are not taken for credentials."""
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    "text",
    [
        "key sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "token xoxb-123456789012-abcdefghijkl",
        "posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "signing with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "Authorization: Bearer abc.def-ghi",
    ],
)
def test_well_known_credential_shapes_are_masked(text: str) -> None:
    """OpenAI keys, Slack tokens and URLs, webhook secrets and bearer tokens are masked."""
    masked = redact(text)
    assert MASK in masked
    assert masked.split()[-1] == MASK


def test_redact_walks_containers() -> None:
    """redact masks registered secrets in nested dicts, lists and tuples, and SecretStr values."""
    register_secret(SecretStr(SECRET))
    value = {
        "a": [f"x{SECRET}y", ("t", SECRET)],
        "b": {"c": SECRET, "n": 3},
        "s": SecretStr("anything"),
        "token": None,
    }
    assert redact(value) == {
        "a": [f"x{MASK}y", ("t", MASK)],
        "b": {"c": MASK, "n": 3},
        "s": MASK,
        "token": None,
    }


def test_short_and_empty_secrets_are_ignored() -> None:
    """Values shorter than six characters, empty strings and None are not remembered."""
    register_secret("abc")
    register_secret("")
    register_secret(None)
    assert redact("abc is a word") == "abc is a word"


def test_longest_secret_is_masked_whole() -> None:
    """A secret that contains another registered secret is masked as one."""
    register_secret("secret-part")
    register_secret("secret-part-and-more")
    assert redact("x secret-part-and-more y") == f"x {MASK} y"


def test_reset_logging_forgets_secrets() -> None:
    """After reset_logging, a previously registered secret is no longer masked."""
    register_secret(SECRET)
    assert redact(SECRET) == MASK
    reset_logging()
    assert redact(SECRET) == SECRET
