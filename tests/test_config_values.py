"""Strict values: a quoted number, a non-finite duration, a too-eager interval or an impossible
port is one clear error naming the file and the key, never a guess or a traceback later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watcher.config import MIN_POLL_INTERVAL, load_config, parse_config
from watcher.errors import ConfigError


def load_error(tmp_path: Path, text: str) -> str:
    """Write ``text`` as ftwatch.toml, load it, and return the error's message (with the file)."""
    path = tmp_path / "ftwatch.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message.removeprefix(f"{path}: ")


def parse_error(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """Parse ``data`` and return the error's message without the file name."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, path="ftwatch.toml", environ=environ or {})
    return str(info.value).removeprefix("ftwatch.toml: ")


SOURCE = '[[sources]]\nname = "openai"\n'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'emit_existing = "yes"',
            "sources[0].emit_existing: expected true or false without quotes, got 'yes'",
        ),
        (
            'emit_existing = "off"',
            "sources[0].emit_existing: expected true or false without quotes, got 'off'",
        ),
        (
            'max_attempts = "7"',
            "sources[0].max_attempts: expected a whole number without quotes, got '7'",
        ),
        ("max_attempts = 7.0", "sources[0].max_attempts: expected a whole number, got 7"),
        ("page_size = true", "sources[0].page_size: expected a whole number, got true"),
        ('jitter = "0.1"', "sources[0].jitter: expected a number without quotes, got '0.1'"),
        (
            'max_response_bytes = "1000"',
            "sources[0].max_response_bytes: expected a whole number without quotes, got '1000'",
        ),
        (
            "max_baseline_pages = 0",
            "sources[0].max_baseline_pages: expected a value of at least 1, got 0",
        ),
    ],
)
def test_source_values_are_strict(tmp_path: Path, line: str, message: str) -> None:
    """A quoted number or a yes/no word is refused, naming the file, the key and the type."""
    assert load_error(tmp_path, f"{SOURCE}{line}\n") == message


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'type = "stdout"\nconcurrency = "8"',
            "sinks[0].concurrency: expected a whole number without quotes, got '8'",
        ),
        (
            'type = "stdout"\njson = "true"',
            "sinks[0].json: expected true or false without quotes, got 'true'",
        ),
        (
            'type = "stdout"\n[sinks.retry]\nmax_attempts = "7"',
            "sinks[0].retry.max_attempts: expected a whole number without quotes, got '7'",
        ),
        (
            'type = "logfile"\npath = "e.jsonl"\nmax_bytes = "1000"',
            "sinks[0].max_bytes: expected a whole number without quotes, got '1000'",
        ),
        (
            'type = "logfile"\npath = "e.jsonl"\nbackups = 2.5',
            "sinks[0].backups: expected a whole number, got 2.5",
        ),
        (
            'type = "logfile"\npath = "e.jsonl"\nfsync = "on"',
            "sinks[0].fsync: expected true or false without quotes, got 'on'",
        ),
    ],
)
def test_sink_values_are_strict(tmp_path: Path, table: str, message: str) -> None:
    """The keys every sink has and the built-in plugins' own keys are as strict as a source's."""
    assert load_error(tmp_path, f'{SOURCE}[[sinks]]\nname = "s"\n{table}\n') == message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f'{SOURCE}timeout = "inf"\n', "sources[0].timeout"),
        (f"{SOURCE}timeout = inf\n", "sources[0].timeout"),
        (f'{SOURCE}poll_interval = "nan"\n', "sources[0].poll_interval"),
        (f'[state]\nretention = "nan"\n{SOURCE}', "state.retention"),
        (f"[state]\nretention = nan\n{SOURCE}", "state.retention"),
        (
            f'{SOURCE}[[sinks]]\nname = "s"\ntype = "stdout"\n[sinks.retry]\nmax_age = "inf"\n',
            "sinks[0].retry.max_age",
        ),
    ],
)
def test_durations_are_finite(tmp_path: Path, text: str, key: str) -> None:
    """inf and nan are not durations: a NaN retention would silently never prune."""
    message = load_error(tmp_path, text)
    assert message.startswith(f"{key}: expected a finite duration such as '30s', '2m' or '1h'")


@pytest.mark.parametrize(
    ("base_url", "interval"),
    [
        ("https://api.openai.com/v1", "0.001s"),
        ("https://api.openai.com/v1", 1e-300),
        ("https://api.openai.com/v1", "999ms"),
        ("http://10.0.0.5:8080/v1", 0.5),
    ],
)
def test_poll_interval_has_a_floor_for_remote_servers(base_url: str, interval: Any) -> None:
    """A real API is polled at most once a second; the message says where faster is allowed."""
    message = parse_error(
        {"sources": [{"name": "a", "base_url": base_url, "poll_interval": interval}]}
    )
    assert message.startswith(
        "sources[0].poll_interval: expected at least 1s between polls (only a loopback "
        "base_url, such as a local simulator's, may be polled more often), got "
    )


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8765/v1", "http://localhost:8765/v1", "http://[::1]:80/v1"]
)
def test_loopback_servers_may_be_polled_faster(base_url: str) -> None:
    """A simulator or test server on this machine may be polled down to 10 ms, not faster."""
    config = parse_config({"sources": [{"name": "a", "base_url": base_url, "poll_interval": 0.05}]})
    assert config.sources[0].poll_interval == 0.05
    message = parse_error(
        {"sources": [{"name": "a", "base_url": base_url, "poll_interval": 1e-300}]}
    )
    assert message.startswith(
        "sources[0].poll_interval: expected at least 0.01s between polls of a loopback base_url"
    )


def test_one_second_is_allowed_anywhere() -> None:
    """The documented floor itself is a valid interval."""
    config = parse_config({"sources": [{"name": "a", "poll_interval": "1s"}]})
    assert config.sources[0].poll_interval == MIN_POLL_INTERVAL


@pytest.mark.parametrize("port", ["99999", "0", "65536", "http"])
def test_impossible_ports_are_config_errors(port: str) -> None:
    """A port outside 1-65535 in base_url is refused when the config is read."""
    message = parse_error({"sources": [{"name": "a", "base_url": f"http://127.0.0.1:{port}/v1"}]})
    assert message == (
        "sources[0].base_url: expected an http:// or https:// URL such as "
        "'https://api.openai.com/v1' with a port from 1 to 65535, "
        f"got 'http://127.0.0.1:{port}/v1'"
    )


@pytest.mark.parametrize(
    "table",
    [
        {"type": "slack", "webhook_url": "https://hooks.example.test:99999/services/x"},
        {"type": "slack", "token": "xoxb-1", "channel": "#a", "api_url": "http://h:99999/api"},
        {"type": "webhook", "url": "https://hooks.example.test:99999/in"},
    ],
)
def test_impossible_ports_in_sink_urls(table: dict[str, str]) -> None:
    """The built-in sinks refuse an impossible port in their URLs too, without echoing them."""
    message = parse_error({"sources": [{"name": "a"}], "sinks": [{"name": "s", **table}]})
    assert message.startswith("sinks[0].")
    assert "99999" not in message


@pytest.mark.parametrize(
    ("written", "environ", "value"),
    [
        ("${A:-${B}}", {"B": "from-b"}, "from-b"),
        ("${A:-${B}}", {"A": "from-a"}, "from-a"),
        ("${A:-${B:-fallback}}", {}, "fallback"),
        ("x-${A:-${B:-${C:-deep}}}-y", {"C": ""}, "x-deep-y"),
        ("${A:-pre-${B:-b}-post}", {}, "pre-b-post"),
        ("${A:-$${B}}", {}, "${B}"),
    ],
)
def test_nested_defaults(written: str, environ: dict[str, str], value: str) -> None:
    """A default may be another reference, evaluated only when it is used, as in a shell."""
    config = parse_config({"sources": [{"name": "a", "project": written}]}, environ=environ)
    assert config.sources[0].project == value


def test_nested_default_names_the_missing_variable() -> None:
    """When the outer variable is unset, the inner one must be set, and the error names it."""
    message = parse_error({"sources": [{"name": "a", "project": "${A:-${B}}"}]})
    assert message == (
        "sources[0].project: environment variable B is not set; "
        "export it or write the value in the file"
    )


@pytest.mark.parametrize("written", ["${A:-${B}", "${A:-x", "${A:-${}}"])
def test_unclosed_nested_reference_is_malformed(written: str) -> None:
    """A default that never closes is a malformed reference, not literal text."""
    message = parse_error({"sources": [{"name": "a", "project": written}]})
    assert message.startswith("sources[0].project: malformed ${...} reference")


def test_new_source_limits_have_documented_defaults() -> None:
    """max_response_bytes defaults to 32 MiB and max_baseline_pages to 10,000, as the example
    config says; both take whole numbers from 1."""
    source = parse_config({"sources": [{"name": "a"}]}).sources[0]
    assert source.max_response_bytes == 32 * 1024 * 1024
    assert source.max_baseline_pages == 1_000
    tuned = parse_config(
        {"sources": [{"name": "a", "max_response_bytes": 1024, "max_baseline_pages": 3}]}
    ).sources[0]
    assert (tuned.max_response_bytes, tuned.max_baseline_pages) == (1024, 3)
