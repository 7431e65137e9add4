"""The config models: ``[state]``, ``[logging]``, ``[[sources]]`` and :class:`Config`."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..durations import Duration, parse_duration
from ..sinks import SinkConfig
from .redaction import plain

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MIN_LOOPBACK_POLL_INTERVAL",
    "MIN_POLL_INTERVAL",
    "OPENAI_DASHBOARD_URL",
    "Config",
    "LoggingConfig",
    "ServerConfig",
    "SourceConfig",
    "StateConfig",
    "is_loopback_url",
]

#: The job page on OpenAI's dashboard, used when a source talks to api.openai.com.
OPENAI_DASHBOARD_URL = "https://platform.openai.com/finetune/{job_id}"

_OPENAI_API_HOST = "api.openai.com"

#: The shortest ``poll_interval`` of a source, in seconds: a real API is not polled faster.
MIN_POLL_INTERVAL = 1.0
#: The shortest ``poll_interval`` of a source whose ``base_url`` is on this machine (a simulator
#: or a test server), where faster polls only cost this machine.
MIN_LOOPBACK_POLL_INTERVAL = 0.01
#: The default ``max_response_bytes`` of a source: 32 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine: ``localhost`` or a loopback address."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StateConfig(BaseModel):
    """``[state]``: where ftwatch keeps snapshots, the event journal and delivery progress."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The SQLite file; created when missing.
    path: Path = Path("ftwatch.db")
    #: Journal entries delivered to every sink and older than this are pruned.
    retention: Duration = 7 * 86400.0

    @field_validator("path")
    @classmethod
    def _expand_home(cls, path: Path) -> Path:
        return path.expanduser()


class LoggingConfig(BaseModel):
    """``[logging]``: how much ftwatch logs, and in which format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``auto`` is human-readable on a terminal and JSON lines otherwise.
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:9464"`` for IPv6) as ``(host, port)``; ValueError when not."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # raises ValueError for anything else in brackets
    elif not sep or not host or ":" in host or not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        raise ValueError(value)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(value)
    return host, int(port)


class ServerConfig(BaseModel):
    """``[server]``: the operations endpoint (``/metrics``, ``/healthz``, ``/readyz``).

    Off unless ``listen`` is set. Served by the daemon on its own event loop.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``host:port`` to serve on, such as ``127.0.0.1:9464`` (``[::1]:9464`` for IPv6; port 0
    #: picks a free one); None: no endpoint.
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            split_listen(value)
        except ValueError:
            raise PydanticCustomError(
                "listen",
                'expected "host:port" such as "127.0.0.1:9464" (IPv6 as "[::1]:9464", a port '
                "from 0 to 65535)",
            ) from None
        return value.strip()

    @property
    def address(self) -> tuple[str, int] | None:
        """``listen`` as ``(host, port)``, or None when the endpoint is off."""
        return None if self.listen is None else split_listen(self.listen)


class SourceConfig(BaseModel):
    """``[[sources]]``: one fine-tuning API to watch (OpenAI's, or one speaking its protocol)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Names the source in events, logs and the state; unique among sources.
    name: str = Field(min_length=1)
    #: The API root, up to and including ``/v1``; a trailing slash is dropped.
    base_url: str = "https://api.openai.com/v1"
    #: Sent as ``Authorization: Bearer``; None for a server that needs none.
    api_key: SecretStr | None = None
    #: Sent as ``OpenAI-Organization`` when given.
    organization: str | None = None
    #: Sent as ``OpenAI-Project`` when given.
    project: str | None = None
    #: Seconds between polls; at least :data:`MIN_POLL_INTERVAL`, or
    #: :data:`MIN_LOOPBACK_POLL_INTERVAL` for a loopback ``base_url`` (a simulator, a test).
    poll_interval: Duration = Field(default=30.0, gt=0)
    #: Each wait is randomised by up to this fraction of ``poll_interval``, so that replicas drift.
    jitter: float = Field(default=0.1, ge=0.0, le=0.5, strict=True, allow_inf_nan=False)
    #: Watch only these job ids; None watches every job of the account.
    jobs: list[str] | None = Field(default=None, min_length=1)
    #: Emit events for jobs that already exist at the first poll, not just for later changes.
    emit_existing: bool = Field(default=False, strict=True)
    #: Seconds before one API request times out.
    timeout: Duration = Field(default=30.0, gt=0)
    #: Attempts per API request (retries with backoff that honour ``Retry-After``).
    max_attempts: int = Field(default=5, ge=1, strict=True)
    #: Jobs per page of the list endpoint (the API allows 1 to 100).
    page_size: int = Field(default=100, ge=1, le=100, strict=True)
    #: Pages of the job list read per poll cycle at most.
    max_pages: int = Field(default=20, ge=1, strict=True)
    #: Pages of the job list read for the first baseline at most; what was read by then is the
    #: baseline (a server that always answers ``has_more`` cannot keep it going forever).
    max_baseline_pages: int = Field(default=1_000, ge=1, strict=True)
    #: Single-job retrieves per poll cycle at most.
    max_retrieves: int = Field(default=20, ge=1, strict=True)
    #: The largest API response read, in bytes, counted after decompression; a larger one is
    #: refused as malformed.
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1, strict=True)
    #: A link template with ``{job_id}``; None picks OpenAI's dashboard for api.openai.com,
    #: and ``""`` turns links off.
    dashboard_url: str | None = None
    #: Read running jobs' metrics, checkpoints and messages, and watch for stalls and ETA
    #: changes (the progress event types); false turns all of that off for this source.
    progress: bool = Field(default=True, strict=True)
    #: Seconds between two reads of one running job's ``/events`` (separate from polls).
    progress_interval: Duration = Field(default=60.0, gt=0)
    #: The progress throttle: ``"10%"`` (whenever the percent moved that much) or a duration
    #: (``"5m"``: at most one per job that often); the last before a terminal event always goes.
    progress_every: str = "10%"
    #: The lowest level of API messages sent as ``fine_tuning.job.message`` (or ``off``).
    progress_messages: Literal["info", "warn", "error", "off"] = "warn"
    #: A job ``validating_files`` this long is stalled; None (``"off"`` in the file): never.
    stall_validating: Duration | None = 3600.0
    #: A job ``queued`` this long is stalled; None (``"off"``): never.
    stall_queued: Duration | None = 4 * 3600.0
    #: A job ``running`` this long without new metrics is stalled; None (``"off"``): never.
    stall_no_progress: Duration | None = 1800.0
    #: ``estimated_finish`` must move at least this many seconds for an ``eta_changed`` ...
    eta_shift: Duration = Field(default=900.0, ge=0)
    #: ... and at least this fraction of the time that was left.
    eta_shift_ratio: float = Field(default=0.1, ge=0.0, allow_inf_nan=False)

    @field_validator("stall_validating", "stall_queued", "stall_no_progress", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
            return None
        return value

    @field_validator("progress_every")
    @classmethod
    def _every(cls, value: str) -> str:
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                percent = -1.0
            if not 0 < percent <= 100:
                raise ValueError("expected a percentage from 0 to 100 such as '10%', or '5m'")
            return text
        try:
            parse_duration(text)
        except ValueError:
            raise ValueError(
                "expected a percentage such as '10%' or a duration such as '5m'"
            ) from None
        return text

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        example = "such as 'https://api.openai.com/v1'"
        try:
            parts = urlsplit(url.strip())
            port = parts.port  # reading it checks that it is a number up to 65535
        except ValueError:
            raise ValueError(
                f"expected an http:// or https:// URL {example} with a port from 1 to 65535"
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL {example}")
        if port == 0:
            raise ValueError(
                f"expected an http:// or https:// URL {example} with a port from 1 to 65535"
            )
        return url.strip().rstrip("/")

    @field_validator("poll_interval")
    @classmethod
    def _not_too_often(cls, seconds: float, info: ValidationInfo) -> float:
        base_url = info.data.get("base_url")
        if base_url is None:
            return seconds  # base_url itself was wrong: that is the error to report
        if is_loopback_url(base_url):
            if seconds < MIN_LOOPBACK_POLL_INTERVAL:
                raise ValueError(
                    f"expected at least {MIN_LOOPBACK_POLL_INTERVAL}s between polls of a "
                    "loopback base_url"
                )
        elif seconds < MIN_POLL_INTERVAL:
            raise ValueError(
                f"expected at least {MIN_POLL_INTERVAL:g}s between polls (only a loopback "
                "base_url, such as a local simulator's, may be polled more often)"
            )
        return seconds

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is None:
            return None
        # A key pasted with a trailing newline would otherwise fail later as a puzzling 401.
        value = key.get_secret_value().strip()
        if not value:
            raise ValueError(
                "expected a non-empty API key; leave api_key out for a server that needs none"
            )
        return SecretStr(value)

    @field_validator("dashboard_url")
    @classmethod
    def _link_template(cls, template: str | None) -> str | None:
        if not template:
            return template
        if urlsplit(template).scheme not in ("http", "https") or "{job_id}" not in template:
            raise ValueError(
                "expected an http(s) URL template containing {job_id}, such as "
                f"'{OPENAI_DASHBOARD_URL}', or \"\" to turn links off"
            )
        return template

    def job_link(self, job_id: str) -> str | None:
        """The dashboard link of a job, or None when this source has no dashboard."""
        template = self.dashboard_url
        if template is None:
            if urlsplit(self.base_url).hostname != _OPENAI_API_HOST:
                return None
            template = OPENAI_DASHBOARD_URL
        if not template:
            return None
        return template.replace("{job_id}", quote(job_id, safe=""))


class Config(BaseModel):
    """The whole configuration: state, logging, sources, sinks and the operations server.

    Built by :func:`load_config` from a file, or in code. ``sinks`` holds instances of each
    plugin's own config model. ``str()`` and ``repr()`` never show a secret; :meth:`redacted`
    gives the resolved config as plain data with every secret masked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Fields that are not keys of the file (an error about an unknown key does not offer them).
    NOT_FILE_KEYS: ClassVar[frozenset[str]] = frozenset({"path"})

    state: StateConfig = Field(default_factory=StateConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    sources: list[SourceConfig] = Field(min_length=1)
    sinks: list[SerializeAsAny[SinkConfig]] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    #: The file the config came from; None when it was built in code.
    path: Path | None = None

    @field_validator("sources", "sinks")
    @classmethod
    def _unique_names(cls, items: list[Any], info: ValidationInfo) -> list[Any]:
        field = info.field_name or ""
        first_index: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.name in first_index:
                raise PydanticCustomError(
                    "duplicate_name",
                    "duplicate {kind} name {name}, already used by {field}[{first}]; "
                    "give each one a unique name",
                    {
                        "kind": field.removesuffix("s"),
                        "name": repr(item.name),
                        "field": field,
                        "first": first_index[item.name],
                        "index": index,
                    },
                )
            first_index[item.name] = index
        return items

    def redacted(self) -> dict[str, Any]:
        """The resolved config as plain data, with every secret shown as ``********``.

        Masked: ``SecretStr`` values, every value of a sink's ``headers``, the value of any key
        named like a credential (``token``, ``webhook_url``, ...), in case a plugin keeps one as
        a plain string, a URL's user:password and query values, and the path and query of every
        URL in a sink's keys (``https://hooks.example.com/********``).
        """
        return {
            "state": plain(self.state.model_dump()),
            "logging": plain(self.logging.model_dump()),
            "sources": [plain(source.model_dump()) for source in self.sources],
            # By alias: the keys as written in the file (`json`, not the attribute `json_`).
            # A sink's URLs show only scheme, host and port: receivers and Slack keep tokens in
            # the path, and the plugin's own masking (a JSON-mode serializer) is not used here.
            "sinks": [
                plain(sink.model_dump(by_alias=True), url_paths=False) for sink in self.sinks
            ],
            "server": plain(self.server.model_dump()),
            "path": None if self.path is None else str(self.path),
        }

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A plugin's config may keep secrets as plain strings (a headers dict, say): show sinks
        # redacted, whatever their own repr does.
        for name, value in super().__repr_args__():
            yield name, (self.redacted()["sinks"] if name == "sinks" else value)
