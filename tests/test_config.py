"""The TOML config: defaults, environment, overrides, and one clear error for every mistake."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from watcher.config import (
    Config,
    LoggingConfig,
    SourceConfig,
    StateConfig,
    load_config,
    parse_config,
)
from watcher.durations import Duration
from watcher.errors import ConfigError, PluginError
from watcher.sinks import (
    ENTRY_POINT_GROUP,
    RetryPolicy,
    SinkBase,
    SinkConfig,
    SinkType,
    register_sink,
    sink_plugin,
    unregister_sink,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"

API_KEY = "sk-test-0123456789abcdefghij"
HOOK_SECRET = "hook-secret-value-42"
HEADER_TOKEN = "header-token-value-77"


class HookConfig(SinkConfig):
    """A test sink's keys: a URL, a secret, headers and a timeout, like a webhook."""

    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return url


class HookSink(SinkBase):
    """A test sink that accepts a webhook-like table."""

    config_model: ClassVar[type[SinkConfig]] = HookConfig


class FileConfig(SinkConfig):
    """A test sink's keys: one required path."""

    path: str


class FileSink(SinkBase):
    """A test sink that needs a path."""

    config_model: ClassVar[type[SinkConfig]] = FileConfig


@pytest.fixture(autouse=True)
def test_sinks() -> Iterator[None]:
    """Register the test sink types for one test, and forget them afterwards."""
    # SinkType declares config_model as a ClassVar, which mypy never matches with a class.
    register_sink("testhook", cast(SinkType, HookSink))
    register_sink("testfile", cast(SinkType, FileSink))
    yield
    unregister_sink("testhook")
    unregister_sink("testfile")


def write(tmp_path: Path, text: str, name: str = "ftwatch.toml") -> Path:
    """Write a config file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    """Parse ``data`` as ftwatch.toml and return the ConfigError it must raise."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, path="ftwatch.toml", **kwargs)
    return info.value


def source(**keys: Any) -> dict[str, Any]:
    """A minimal source table with extra keys."""
    return {"name": "openai", **keys}


# -- defaults and values ---------------------------------------------------------------------


def test_minimal_config_takes_every_default() -> None:
    """A config with one named source gets the documented defaults everywhere else."""
    config = parse_config({"sources": [{"name": "openai"}]}, environ={})
    assert config.state == StateConfig(path=Path("ftwatch.db"), retention=7 * 86400)
    assert config.logging == LoggingConfig(level="info", format="auto")
    src = config.sources[0]
    assert src.base_url == "https://api.openai.com/v1"
    assert src.api_key is None
    assert (src.poll_interval, src.jitter, src.timeout) == (30, 0.1, 30)
    assert (src.max_attempts, src.page_size, src.max_pages, src.max_retrieves) == (5, 100, 20, 20)
    assert src.jobs is None
    assert src.emit_existing is False
    assert config.sinks == []
    assert config.path is None


def test_load_config_reads_the_contract_example(tmp_path: Path) -> None:
    """The file from the config contract loads, with sinks built by their plugin's model."""
    path = write(
        tmp_path,
        """
        [state]
        path = "ftwatch.db"
        [[sources]]
        name = "openai"
        base_url = "https://api.openai.com/v1/"
        api_key = "${OPENAI_API_KEY}"
        poll_interval = 30
        [[sinks]]
        name = "audit"
        type = "testfile"
        path = "events.jsonl"
        [[sinks]]
        name = "hooks"
        type = "testhook"
        url = "https://example.test/hook"
        retry = { max_attempts = 3, max_age = "1h" }
        """,
    )
    config = load_config(path, environ={"OPENAI_API_KEY": API_KEY})
    assert config.path == path
    assert config.sources[0].base_url == "https://api.openai.com/v1"
    assert config.sources[0].api_key is not None
    assert config.sources[0].api_key.get_secret_value() == API_KEY
    audit, hooks = config.sinks
    assert isinstance(audit, FileConfig)
    assert audit.path == "events.jsonl"
    assert isinstance(hooks, HookConfig)
    assert hooks.retry == RetryPolicy(max_attempts=3, max_age=3600)


@pytest.mark.parametrize(
    ("written", "seconds"), [("30s", 30), ("2m", 120), (30, 30), ("1h30m", 5400)]
)
def test_durations_take_seconds_or_units(written: Any, seconds: float) -> None:
    """A duration is a number of seconds or a string such as "30s", "2m" or "1h30m"."""
    config = parse_config({"sources": [source(poll_interval=written, timeout=written)]})
    assert config.sources[0].poll_interval == seconds
    assert config.sources[0].timeout == seconds


def test_state_retention_takes_a_duration() -> None:
    """state.retention takes a duration string."""
    config = parse_config({"state": {"retention": "2d"}, "sources": [source()]})
    assert config.state.retention == 2 * 86400


def test_log_level_is_case_insensitive() -> None:
    """logging.level accepts "DEBUG" as well as "debug"."""
    config = parse_config({"logging": {"level": "DEBUG"}, "sources": [source()]})
    assert config.logging.level == "debug"


# -- environment -----------------------------------------------------------------------------


def test_variables_are_replaced_in_every_string() -> None:
    """${VAR} is replaced in nested tables, arrays and sink keys alike."""
    config = parse_config(
        {
            "sources": [source(api_key="${KEY}", jobs=["ftjob-${JOB}"], poll_interval="${POLL}")],
            "sinks": [
                {
                    "name": "hooks",
                    "type": "testhook",
                    "url": "https://${HOST}/hook",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                }
            ],
        },
        environ={"KEY": API_KEY, "JOB": "abc", "POLL": "2m", "HOST": "example.test", "TOKEN": "t"},
    )
    src = config.sources[0]
    assert src.api_key is not None
    assert src.api_key.get_secret_value() == API_KEY
    assert src.jobs == ["ftjob-abc"]
    assert src.poll_interval == 120
    sink = config.sinks[0]
    assert isinstance(sink, HookConfig)
    assert sink.url == "https://example.test/hook"
    assert sink.headers == {"Authorization": "Bearer t"}


def test_default_applies_when_the_variable_is_unset_or_empty() -> None:
    """${VAR:-default} falls back to the default when VAR is unset or empty, else uses VAR."""
    data = {"sources": [source(base_url="${URL:-http://127.0.0.1:8765/v1}")]}
    assert parse_config(data, environ={}).sources[0].base_url == "http://127.0.0.1:8765/v1"
    assert parse_config(data, environ={"URL": ""}).sources[0].base_url == (
        "http://127.0.0.1:8765/v1"
    )
    set_url = parse_config(data, environ={"URL": "https://x.test/v1"})
    assert set_url.sources[0].base_url == "https://x.test/v1"


def test_double_dollar_escapes_a_literal_reference() -> None:
    """$${ stands for a literal ${, which is not looked up."""
    config = parse_config({"sources": [source(organization="$${NOT_A_VAR}")]}, environ={})
    assert config.sources[0].organization == "${NOT_A_VAR}"


def test_a_variable_value_is_not_expanded_again() -> None:
    """A variable whose value contains ${...} is used as it is."""
    config = parse_config({"sources": [source(project="${P}")]}, environ={"P": "${OTHER}"})
    assert config.sources[0].project == "${OTHER}"


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without environ, variables come from os.environ."""
    monkeypatch.setenv("FTWATCH_TEST_ORG", "org-123")
    config = parse_config({"sources": [source(organization="${FTWATCH_TEST_ORG}")]})
    assert config.sources[0].organization == "org-123"


def test_missing_variable_names_file_key_and_variable(tmp_path: Path) -> None:
    """An unset variable is an error naming the file, the key path and the variable."""
    path = write(tmp_path, '[[sources]]\nname = "openai"\napi_key = "${OPENAI_API_KEY}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == (
        f"{path}: sources[0].api_key: environment variable OPENAI_API_KEY is not set; "
        "export it or write the value in the file"
    )
    assert info.value.path == str(path)
    assert info.value.key == "sources[0].api_key"


def test_malformed_reference_is_an_error() -> None:
    """An unterminated ${ is an error that shows the accepted forms."""
    error = config_error({"sources": [source(project="${BROKEN")]}, environ={})
    assert str(error) == (
        "ftwatch.toml: sources[0].project: malformed ${...} reference; "
        "write ${VAR}, ${VAR:-default}, or $${ for a literal ${"
    )


def test_environment_overrides_state_and_logging() -> None:
    """FTWATCH_STATE_PATH, FTWATCH_LOG_LEVEL and FTWATCH_LOG_FORMAT override the file."""
    config = parse_config(
        {
            "state": {"path": "file.db"},
            "logging": {"level": "info", "format": "console"},
            "sources": [source()],
        },
        environ={
            "FTWATCH_STATE_PATH": "/var/lib/ftwatch/state.db",
            "FTWATCH_LOG_LEVEL": "WARNING",
            "FTWATCH_LOG_FORMAT": "json",
        },
    )
    assert config.state.path == Path("/var/lib/ftwatch/state.db")
    assert config.logging == LoggingConfig(level="warning", format="json")


def test_empty_override_is_ignored() -> None:
    """An override variable set to the empty string leaves the file's value."""
    config = parse_config(
        {"logging": {"level": "error"}, "sources": [source()]}, environ={"FTWATCH_LOG_LEVEL": ""}
    )
    assert config.logging.level == "error"


def test_bad_override_names_the_variable() -> None:
    """A wrong value from an override variable names the key and the variable."""
    error = config_error({"sources": [source()]}, environ={"FTWATCH_LOG_FORMAT": "xml"})
    assert str(error) == (
        "ftwatch.toml: logging.format: expected one of 'auto', 'json' or 'console', got 'xml' "
        "(from the environment variable FTWATCH_LOG_FORMAT)"
    )
    assert error.key == "logging.format"


# -- file errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A missing file says how to point at one or where to start."""
    path = tmp_path / "ftwatch.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: file not found; pass --config PATH, or run `ftwatch init` to write a"
        " starter ftwatch.toml in the current directory"
    )
    assert info.value.path == str(path)
    assert info.value.key is None


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory given as the config file is a clear error."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: is a directory, not a config file; pass --config PATH naming a TOML file"
    )


def test_invalid_toml_gives_line_and_column(tmp_path: Path) -> None:
    """Invalid TOML names the file, the problem, the line and the column."""
    path = write(tmp_path, '[[sources]]\nname = "openai"\npoll_interval 30\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3, column 15" in message


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 says so, with the offset of the bad byte."""
    path = tmp_path / "ftwatch.toml"
    path.write_bytes(b'[[sources]]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not UTF-8 text (invalid byte at offset 23); save it as UTF-8"
    )


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark left by an editor is not an error."""
    path = tmp_path / "ftwatch.toml"
    path.write_bytes(b'\xef\xbb\xbf[[sources]]\nname = "openai"\n')
    assert load_config(path).sources[0].name == "openai"


# -- validation errors -----------------------------------------------------------------------


def test_unknown_source_key_lists_the_expected_ones() -> None:
    """A misspelt key is caught, and the message lists the keys that table takes."""
    error = config_error({"sources": [source(poll_intervall=30)]})
    assert str(error) == (
        "ftwatch.toml: sources[0]: unknown key 'poll_intervall'; expected one of: name, "
        "base_url, api_key, organization, project, poll_interval, jitter, jobs, emit_existing, "
        "timeout, max_attempts, page_size, max_pages, max_baseline_pages, max_retrieves, "
        "max_response_bytes, dashboard_url, progress, progress_interval, progress_every, "
        "progress_messages, stall_validating, stall_queued, stall_no_progress, eta_shift, "
        "eta_shift_ratio"
    )
    assert error.key == "sources[0].poll_intervall"
    assert error.path == "ftwatch.toml"


def test_unknown_top_level_key_explains_the_missing_table() -> None:
    """A misspelt table name is reported as unknown rather than as a missing sources table."""
    error = config_error({"source": [source()]})
    assert str(error).startswith(
        "ftwatch.toml: unknown key 'source'; expected one of: state, logging, sources, sinks"
    )
    assert error.key == "source"


def test_path_is_not_a_key_of_the_file() -> None:
    """Config.path is where the file came from; writing it in the file is an unknown key."""
    error = config_error({"path": "x.toml", "sources": [source()]})
    assert str(error) == (
        "ftwatch.toml: unknown key 'path'; expected one of: state, logging, sources, sinks, server"
    )


def test_unknown_key_in_state_and_logging() -> None:
    """Typos in [state] and [logging] are caught as well."""
    error = config_error({"state": {"pth": "x.db"}, "sources": [source()]})
    assert str(error) == "ftwatch.toml: state: unknown key 'pth'; expected one of: path, retention"
    error = config_error({"logging": {"levle": "debug"}, "sources": [source()]})
    assert str(error) == (
        "ftwatch.toml: logging: unknown key 'levle'; expected one of: level, format"
    )


def test_wrong_duration_is_explained() -> None:
    """A value that is not a duration names the key path and the accepted forms."""
    error = config_error({"sources": [source(), source(name="b", poll_interval="soon")]})
    assert str(error) == (
        "ftwatch.toml: sources[1].poll_interval: "
        "expected a duration like '30s', '2m' or '1h30m', got 'soon'"
    )
    assert error.key == "sources[1].poll_interval"


def test_poll_interval_must_be_positive() -> None:
    """poll_interval = 0 is rejected."""
    error = config_error({"sources": [source(poll_interval=0)]})
    assert str(error) == (
        "ftwatch.toml: sources[0].poll_interval: expected a value greater than 0, got 0"
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"page_size": "many"}, "sources[0].page_size: expected a whole number, got 'many'"),
        ({"page_size": 500}, "sources[0].page_size: expected a value of at most 100, got 500"),
        ({"jitter": 0.9}, "sources[0].jitter: expected a value of at most 0.5, got 0.9"),
        (
            {"emit_existing": "maybe"},
            "sources[0].emit_existing: expected true or false, got 'maybe'",
        ),
        ({"jobs": "ftjob-1"}, "sources[0].jobs: expected an array, got 'ftjob-1'"),
        ({"jobs": [1]}, "sources[0].jobs[0]: expected a string, got 1"),
        (
            {"jobs": []},
            "sources[0].jobs: expected at least 1 item(s); leave the key out instead",
        ),
        (
            {"base_url": "ftp://example.test"},
            "sources[0].base_url: expected an http:// or https:// URL such as "
            "'https://api.openai.com/v1', got 'ftp://example.test'",
        ),
        (
            {"dashboard_url": "https://example.test/jobs"},
            "sources[0].dashboard_url: expected an http(s) URL template containing {job_id}, "
            "such as 'https://platform.openai.com/finetune/{job_id}', or \"\" to turn links "
            "off, got 'https://example.test/jobs'",
        ),
        ({"name": ""}, "sources[0].name: expected a non-empty string, got ''"),
    ],
)
def test_wrong_source_values(keys: dict[str, Any], message: str) -> None:
    """Each wrong value names its key path and what was expected."""
    error = config_error({"sources": [source(**keys)]})
    assert str(error) == f"ftwatch.toml: {message}"


def test_wrong_literal_lists_the_choices() -> None:
    """A log level that does not exist lists the ones that do."""
    error = config_error({"logging": {"level": "loud"}, "sources": [source()]})
    assert str(error) == (
        "ftwatch.toml: logging.level: expected one of 'debug', 'info', 'warning' or 'error', "
        "got 'loud'"
    )


def test_table_expected() -> None:
    """[state] written as a plain value says a table is expected."""
    error = config_error({"state": "ftwatch.db", "sources": [source()]})
    assert str(error) == "ftwatch.toml: state: expected a table, got 'ftwatch.db'"


def test_missing_required_key() -> None:
    """A source without a name says which key is missing, and where."""
    error = config_error({"sources": [{"base_url": "https://api.openai.com/v1"}]})
    assert str(error) == "ftwatch.toml: sources[0]: missing required key 'name'"
    assert error.key == "sources[0].name"


@pytest.mark.parametrize("data", [{}, {"sources": []}, {"state": {"path": "x.db"}}])
def test_no_sources(data: dict[str, Any]) -> None:
    """A config without a source says to add a [[sources]] table."""
    error = config_error(data)
    assert str(error) == (
        "ftwatch.toml: no source configured; add a [[sources]] table with at least a name, "
        'such as name = "openai"'
    )
    assert error.key == "sources"


def test_sources_written_as_a_single_table() -> None:
    """[sources] instead of [[sources]] says to write an array of tables."""
    error = config_error({"sources": {"name": "openai"}})
    assert str(error) == (
        "ftwatch.toml: sources: expected an array of tables; write each one as a [[sources]] table"
    )


def test_duplicate_source_names() -> None:
    """Two sources with one name point at the second one's name."""
    error = config_error({"sources": [source(), source(name="b"), source()]})
    assert str(error) == (
        "ftwatch.toml: sources[2].name: duplicate source name 'openai', already used by "
        "sources[0]; give each one a unique name"
    )
    assert error.key == "sources[2].name"


def test_duplicate_sink_names() -> None:
    """Two sinks with one name point at the second one's name."""
    sink = {"name": "audit", "type": "testfile", "path": "a.jsonl"}
    error = config_error({"sources": [source()], "sinks": [sink, sink]})
    assert str(error) == (
        "ftwatch.toml: sinks[1].name: duplicate sink name 'audit', already used by sinks[0]; "
        "give each one a unique name"
    )
    assert error.key == "sinks[1].name"


def test_unknown_sink_type_lists_the_known_ones() -> None:
    """An unknown sink type repeats the registry's message, which lists the known types."""
    error = config_error(
        {"sources": [source()], "sinks": [{"name": "x", "type": "carrier-pigeon"}]}
    )
    message = str(error)
    assert message.startswith(
        "ftwatch.toml: sinks[0].type: unknown sink type 'carrier-pigeon'; known types: "
    )
    assert "testfile" in message
    assert "testhook" in message
    assert error.key == "sinks[0].type"


def test_sink_without_type() -> None:
    """A sink table without type says so and lists the known types."""
    error = config_error({"sources": [source()], "sinks": [{"name": "x"}]})
    message = str(error)
    assert message.startswith("ftwatch.toml: sinks[0]: missing required key 'type'; known types:")
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        assert entry_point.name in message
    assert error.key == "sinks[0].type"


def test_sinks_written_as_a_single_table() -> None:
    """[sinks] instead of [[sinks]] says to write an array of tables."""
    error = config_error({"sources": [source()], "sinks": {"name": "x", "type": "testfile"}})
    assert str(error) == (
        "ftwatch.toml: sinks: expected an array of tables; write each sink as a [[sinks]] table"
    )


def test_plugin_validation_error_is_prefixed_with_the_sink_key() -> None:
    """A plugin's own validator's message comes after the sink's key path."""
    sink = {"name": "hooks", "type": "testhook", "url": "example.test"}
    error = config_error({"sources": [source()], "sinks": [sink]})
    assert str(error) == (
        "ftwatch.toml: sinks[0].url: expected an http:// or https:// URL, got 'example.test'"
    )
    assert error.key == "sinks[0].url"


def test_unknown_sink_key_lists_the_plugin_and_common_keys() -> None:
    """A typo in a sink lists the plugin's keys along with the keys every sink has."""
    sink = {"name": "a", "type": "testfile", "path": "a.jsonl", "evnets": ["*"]}
    error = config_error({"sources": [source()], "sinks": [sink]})
    assert str(error) == (
        "ftwatch.toml: sinks[0]: unknown key 'evnets'; expected one of: name, type, events, "
        "sources, models, suffixes, metadata, retry, concurrency, path"
    )
    assert error.key == "sinks[0].evnets"


def test_unknown_retry_key() -> None:
    """A typo inside a sink's retry table names the nested path and RetryPolicy's keys."""
    sink = {"name": "a", "type": "testfile", "path": "a", "retry": {"max_attempt": 3}}
    error = config_error({"sources": [source()], "sinks": [sink]})
    assert str(error) == (
        "ftwatch.toml: sinks[0].retry: unknown key 'max_attempt'; expected one of: "
        "max_attempts, max_age, initial_backoff, max_backoff"
    )
    assert error.key == "sinks[0].retry.max_attempt"


def test_missing_plugin_key() -> None:
    """A plugin's required key is reported with the sink's key path."""
    error = config_error({"sources": [source()], "sinks": [{"name": "a", "type": "testfile"}]})
    assert str(error) == "ftwatch.toml: sinks[0]: missing required key 'path'"


def test_several_errors_report_the_first_and_count_the_rest() -> None:
    """When several keys are wrong, the first is explained and the rest are counted."""
    error = config_error({"sources": [source(page_size=0, max_pages=0, jitter=1)]})
    assert str(error) == (
        "ftwatch.toml: sources[0].jitter: expected a value of at most 0.5, got 1 "
        "(and 2 more problems)"
    )


def test_errors_never_echo_a_secret() -> None:
    """A wrong value under a credential key is never repeated in the message."""
    error = config_error({"sources": [source(api_key=12345678)]})
    assert str(error) == "ftwatch.toml: sources[0].api_key: expected a string"
    sink = {"name": "h", "type": "testhook", "url": "https://x.test", "headers": {"X": 12345678}}
    error = config_error({"sources": [source()], "sinks": [sink]})
    assert "12345678" not in str(error)
    assert str(error) == "ftwatch.toml: sinks[0].headers.X: expected a string"


def test_empty_api_key_is_an_error() -> None:
    """An API key that is empty (an exported but empty variable, say) is rejected."""
    error = config_error({"sources": [source(api_key="${KEY}")]}, environ={"KEY": ""})
    assert str(error) == (
        "ftwatch.toml: sources[0].api_key: expected a non-empty API key; "
        "leave api_key out for a server that needs none"
    )


def test_config_errors_are_single_lines() -> None:
    """Every message is one line: the CLI prints it as it is."""
    for data in ({}, {"sources": [source(poll_interval="x", page_size=0)]}):
        assert "\n" not in str(config_error(data))


# -- sources ---------------------------------------------------------------------------------


def test_job_link_on_openai_defaults_to_the_dashboard() -> None:
    """A source on api.openai.com links jobs to OpenAI's dashboard."""
    src = SourceConfig(name="openai")
    assert src.job_link("ftjob-abc") == "https://platform.openai.com/finetune/ftjob-abc"


def test_job_link_uses_the_template_and_is_none_elsewhere() -> None:
    """A custom template is filled in; another host without one has no link; "" turns it off."""
    custom = SourceConfig(name="x", dashboard_url="https://dash.test/jobs/{job_id}/view")
    assert custom.job_link("ftjob-1") == "https://dash.test/jobs/ftjob-1/view"
    assert SourceConfig(name="x", base_url="http://127.0.0.1:8765/v1").job_link("j") is None
    assert SourceConfig(name="x", dashboard_url="").job_link("ftjob-1") is None


def test_job_link_escapes_the_job_id() -> None:
    """A job id with URL characters cannot change the link's path."""
    src = SourceConfig(name="openai")
    assert src.job_link("a/b?c") == "https://platform.openai.com/finetune/a%2Fb%3Fc"


# -- Config in code, redaction ---------------------------------------------------------------


def test_config_built_in_code() -> None:
    """Config can be built from objects; path is None and sinks keep their plugin class."""
    sink = HookConfig(name="h", type="testhook", url="https://x.test")
    config = Config(sources=[SourceConfig(name="a")], sinks=[sink])
    assert config.path is None
    assert config.sinks[0] is sink
    assert config.model_dump()["sinks"][0]["url"] == "https://x.test"


def test_config_in_code_still_checks_sources_and_names() -> None:
    """Code gets the same checks: at least one source, unique names."""
    with pytest.raises(ValidationError):
        Config(sources=[])
    with pytest.raises(ValidationError, match="duplicate source name 'a'"):
        Config(sources=[SourceConfig(name="a"), SourceConfig(name="a")])


def test_models_forbid_unknown_keys_in_code() -> None:
    """A typo in code is as much an error as a typo in the file."""
    with pytest.raises(ValidationError):
        SourceConfig.model_validate({"name": "a", "poll_intervall": 3})


def secret_config() -> Config:
    """A config holding a secret in every place one can be."""
    return parse_config(
        {
            "sources": [source(api_key="${KEY}")],
            "sinks": [
                {
                    "name": "hooks",
                    "type": "testhook",
                    "url": "https://user:pass-word@example.test/hook?token=tok-value-9",
                    "secret": HOOK_SECRET,
                    "headers": {"Authorization": f"Bearer {HEADER_TOKEN}", "X-Team": "ml"},
                }
            ],
        },
        environ={"KEY": API_KEY},
    )


SECRETS = (API_KEY, HOOK_SECRET, HEADER_TOKEN, "pass-word", "tok-value-9")


def test_redacted_masks_every_secret() -> None:
    """redacted() is plain data with API keys, sink secrets and header values masked."""
    data = secret_config().redacted()
    text = json.dumps(data)
    for secret in SECRETS:
        assert secret not in text
    assert data["sources"][0]["api_key"] == "********"
    sink = data["sinks"][0]
    assert sink["secret"] == "********"
    assert sink["headers"] == {"Authorization": "********", "X-Team": "********"}
    assert sink["url"] == "https://********@example.test/********"


def test_redacted_keeps_everything_else() -> None:
    """redacted() shows the resolved, non-secret values as they are."""
    data = secret_config().redacted()
    assert data["state"] == {"path": "ftwatch.db", "retention": 604800.0}
    assert data["logging"] == {"level": "info", "format": "auto"}
    assert data["sources"][0]["poll_interval"] == 30
    assert data["sinks"][0]["retry"]["max_attempts"] == 12
    assert data["path"] is None


def test_str_and_repr_never_show_a_secret() -> None:
    """No secret appears in str() or repr() of the config, even from a plugin's plain headers."""
    config = secret_config()
    for text in (str(config), repr(config), repr(config.sources[0])):
        for secret in SECRETS:
            assert secret not in text


# -- config.example.toml ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [StateConfig, LoggingConfig, SourceConfig, SinkConfig, RetryPolicy]
)
def test_every_key_is_documented_in_the_example(model: type[BaseModel]) -> None:
    """config.example.toml shows every key of state, logging, sources, sinks and retry."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for field in model.model_fields:
        # A key is written `key = ...`, or as a sub-table `[sinks.key]`.
        pattern = rf"^[#\s]*(?:{field}\s*=|\[sinks\.{field}\])"
        assert re.search(pattern, text, re.MULTILINE), (
            f"{model.__name__}.{field} is not in config.example.toml"
        )


def test_example_documents_the_environment_overrides() -> None:
    """config.example.toml names every environment override."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for variable in ("FTWATCH_STATE_PATH", "FTWATCH_LOG_LEVEL", "FTWATCH_LOG_FORMAT"):
        assert variable in text


def test_example_core_is_valid() -> None:
    """The shipped example's state, logging and sources validate, reading OPENAI_API_KEY."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert [(s["name"], s["type"]) for s in data["sinks"]] == [
        ("audit", "logfile"),
        ("console", "stdout"),
    ]
    del data["sinks"]
    config = parse_config(data, path="config.example.toml", environ={"OPENAI_API_KEY": API_KEY})
    assert [s.name for s in config.sources] == ["openai"]
    assert config.sources[0].api_key is not None
    assert config.sources[0].api_key.get_secret_value() == API_KEY
    assert config.state.path == Path("ftwatch.db")


def test_example_without_the_key_names_the_variable() -> None:
    """Loading the example without OPENAI_API_KEY says exactly what to export."""
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, environ={})
    assert str(info.value) == (
        f"{EXAMPLE}: sources[0].api_key: environment variable OPENAI_API_KEY is not set; "
        "export it or write the value in the file"
    )


def _commented_sink_examples(text: str) -> list[str]:
    """The commented-out ``[[sinks]]`` examples of the example file, uncommented."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("# [[sinks]]"):
            current = []
            blocks.append("")
        if current is not None:
            if not line.startswith("#"):
                blocks[-1] = "\n".join(current)
                current = None
                continue
            current.append(line.removeprefix("#").removeprefix(" "))
    if current is not None:
        blocks[-1] = "\n".join(current)
    return blocks


def test_example_is_valid_with_the_built_in_sinks() -> None:
    """With the built-in plugins installed, the example and its commented sinks all validate."""
    declared = tomllib.loads((EXAMPLE.parent / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"
    ]["entry-points"]["ftwatch.sinks"]
    for name in declared:
        try:
            sink_plugin(name)
        except PluginError:
            pytest.skip(f"the built-in {name} sink is not available yet")
    environ = {
        "OPENAI_API_KEY": API_KEY,
        "FTWATCH_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "HOOKS_TOKEN": HEADER_TOKEN,
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
        "SLACK_BOT_TOKEN": "xoxb-0000-test",
        "SMTP_PASSWORD": "smtp-password",
        "TEAMS_WORKFLOW_URL": "https://prod-00.westus.logic.azure.com/workflows/x?sig=s",
        "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/t0ken",
        "PAGERDUTY_ROUTING_KEY": "R0" + "0" * 30,
        "TELEGRAM_BOT_TOKEN": "123456789:ABCdefGhIJKlmnOPqrstUVwxyz123456789",
    }
    text = EXAMPLE.read_text(encoding="utf-8")
    config = load_config(EXAMPLE, environ=environ)
    assert [s.name for s in config.sinks] == ["audit", "console"]
    examples = _commented_sink_examples(text)
    # Every built-in sink type is shown: switched on, or as a commented example.
    shown = {tomllib.loads(b)["sinks"][0]["type"] for b in examples}
    assert shown | {s.type for s in config.sinks} == set(declared)
    for block in examples:
        extra = tomllib.loads(block)["sinks"]
        data = tomllib.loads(text)
        parse_config({**data, "sinks": data["sinks"] + extra}, environ=environ)


def test_parse_config_leaves_its_input_alone() -> None:
    """Resolving variables and overrides never changes the caller's data."""
    data: dict[str, Any] = {"logging": {"level": "info"}, "sources": [source(project="${P}")]}
    parse_config(data, environ={"P": "proj", "FTWATCH_LOG_LEVEL": "debug"})
    assert data == {"logging": {"level": "info"}, "sources": [source(project="${P}")]}
