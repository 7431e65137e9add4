"""The TOML config: read with tomllib, environment applied, validated by pydantic.

A config file has four parts (``config.example.toml`` shows and explains every key)::

    [state]        where the state lives and how long delivered events are kept
    [logging]      log level and format
    [[sources]]    fine-tuning APIs to watch (at least one)
    [[sinks]]      where events go; each table's ``type`` picks a sink plugin, whose own
                   config model validates the table

Environment
-----------
Any string value may use ``${VAR}``, replaced by the environment variable ``VAR`` (an error
when it is not set), ``${VAR:-default}``, which falls back to ``default`` when ``VAR`` is unset
or empty, and ``$${``, which stands for a literal ``${``. Substitution happens once: a variable's
value is never itself expanded.

These variables override the file, when set and not empty:

=====================  ==================
``FTWATCH_STATE_PATH``  ``state.path``
``FTWATCH_LOG_LEVEL``   ``logging.level``
``FTWATCH_LOG_FORMAT``  ``logging.format``
=====================  ==================

Errors
------
Every problem is one :class:`~watcher.errors.ConfigError` whose message is a single sentence
naming the file, the key path (``sources[1].poll_interval``, ``sinks[0].type``) and what was
expected, with ``.path`` and ``.key`` set. A message never holds a secret: the value of a key
named like a credential is never echoed.

Relative paths (``state.path``, a logfile sink's ``path``) are relative to the working
directory, not to the config file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .durations import Duration
from .errors import ConfigError, PluginError
from .logs import MASK, is_secret_key
from .sinks import ENTRY_POINT_GROUP, SinkConfig, available_sinks, sink_plugin

__all__ = [
    "ENV_OVERRIDES",
    "OPENAI_DASHBOARD_URL",
    "Config",
    "LoggingConfig",
    "SourceConfig",
    "StateConfig",
    "load_config",
    "parse_config",
]

#: Environment variables that override a key of the file: variable -> (table, key).
ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "FTWATCH_STATE_PATH": ("state", "path"),
    "FTWATCH_LOG_LEVEL": ("logging", "level"),
    "FTWATCH_LOG_FORMAT": ("logging", "format"),
}

#: The job page on OpenAI's dashboard, used when a source talks to api.openai.com.
OPENAI_DASHBOARD_URL = "https://platform.openai.com/finetune/{job_id}"

_OPENAI_API_HOST = "api.openai.com"


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
    #: Seconds between polls.
    poll_interval: Duration = Field(default=30.0, gt=0)
    #: Each wait is randomised by up to this fraction of ``poll_interval``, so that replicas drift.
    jitter: float = Field(default=0.1, ge=0.0, le=0.5)
    #: Watch only these job ids; None watches every job of the account.
    jobs: list[str] | None = Field(default=None, min_length=1)
    #: Emit events for jobs that already exist at the first poll, not just for later changes.
    emit_existing: bool = False
    #: Seconds before one API request times out.
    timeout: Duration = Field(default=30.0, gt=0)
    #: Attempts per API request (retries with backoff that honour ``Retry-After``).
    max_attempts: int = Field(default=5, ge=1)
    #: Jobs per page of the list endpoint (the API allows 1 to 100).
    page_size: int = Field(default=100, ge=1, le=100)
    #: Pages of the job list read per poll cycle at most.
    max_pages: int = Field(default=20, ge=1)
    #: Single-job retrieves per poll cycle at most.
    max_retrieves: int = Field(default=20, ge=1)
    #: A link template with ``{job_id}``; None picks OpenAI's dashboard for api.openai.com,
    #: and ``""`` turns links off.
    dashboard_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "expected an http:// or https:// URL such as 'https://api.openai.com/v1'"
            )
        return url.strip().rstrip("/")

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
    """The whole configuration: state, logging, sources and sinks.

    Built by :func:`load_config` from a file, or in code. ``sinks`` holds instances of each
    plugin's own config model. ``str()`` and ``repr()`` never show a secret; :meth:`redacted`
    gives the resolved config as plain data with every secret masked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: StateConfig = Field(default_factory=StateConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    sources: list[SourceConfig] = Field(min_length=1)
    sinks: list[SerializeAsAny[SinkConfig]] = Field(default_factory=list)
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

        Masked: ``SecretStr`` values, every value of a sink's ``headers``, and the value of any
        key named like a credential (``token``, ``webhook_url``, ...), in case a plugin keeps one
        as a plain string.
        """
        return {
            "state": _plain(self.state.model_dump()),
            "logging": _plain(self.logging.model_dump()),
            "sources": [_plain(source.model_dump()) for source in self.sources],
            # By alias: the keys as written in the file (`json`, not the attribute `json_`).
            "sinks": [_plain(sink.model_dump(by_alias=True)) for sink in self.sinks],
            "path": None if self.path is None else str(self.path),
        }

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A plugin's config may keep secrets as plain strings (a headers dict, say): show sinks
        # redacted, whatever their own repr does.
        for name, value in super().__repr_args__():
            yield name, (self.redacted()["sinks"] if name == "sinks" else value)


def _plain(value: Any, *, mask_all: bool = False) -> Any:
    """Turn dumped model data into JSON-ready values, masking secrets."""
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            secret = mask_all or (isinstance(key, str) and is_secret_key(key))
            if secret and item is not None and not isinstance(item, bool | Mapping | list):
                out[str(key)] = MASK
            else:
                out[str(key)] = _plain(item, mask_all=mask_all or key == "headers")
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item, mask_all=mask_all) for item in value]
    if isinstance(value, Path):
        return str(value)
    if mask_all and value is not None:
        return MASK
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return _mask_url(value)
    return value


def _mask_url(url: str) -> str:
    """Mask the parts of a URL that commonly carry credentials: user:password and query values."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{pair.partition('=')[0]}={MASK}" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, resolve and validate a TOML config file.

    ``environ`` (default ``os.environ``) feeds ``${VAR}`` references and the ``FTWATCH_*``
    overrides. Raises :class:`~watcher.errors.ConfigError` for any problem, including a missing
    or unreadable file and invalid TOML.
    """
    label = os.fspath(path)
    file = Path(label)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: file not found; pass --config PATH, or copy config.example.toml",
            path=label,
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{label}: is a directory, not a config file; pass --config PATH naming a TOML file",
            path=label,
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{label}: permission denied; make the file readable by the user running ftwatch",
            path=label,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{label}: cannot read the file ({exc.strerror or type(exc).__name__})", path=label
        ) from None
    try:
        # utf-8-sig: a byte-order mark left by an editor is not a TOML error.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8",
            path=label,
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        reason = reason[:1].lower() + reason[1:]
        raise ConfigError(f"{label}: invalid TOML: {reason}", path=label) from None
    return _build(data, label=label, file=file, environ=environ)


def parse_config(
    data: Mapping[str, Any], *, path: str = "<config>", environ: Mapping[str, str] | None = None
) -> Config:
    """Resolve and validate config data already read (a dict shaped like the TOML file).

    ``path`` only names the origin in error messages; the result's ``path`` is None. Raises
    :class:`~watcher.errors.ConfigError` exactly as :func:`load_config` does.
    """
    return _build(data, label=path, file=None, environ=environ)


def _build(
    data: Mapping[str, Any], *, label: str, file: Path | None, environ: Mapping[str, str] | None
) -> Config:
    env = os.environ if environ is None else environ
    resolved: dict[str, Any] = _interpolate(dict(data), (), label=label, env=env)
    overridden = _apply_overrides(resolved, env)

    if "path" in resolved:
        # `path` is a field of Config (where the file came from), never a key of the file.
        raise _unknown_key(label, (), "path", Config)

    # Everything but the sinks first, so that errors come in the order of the file's parts.
    try:
        base = Config.model_validate({**resolved, "sinks": [], "path": file})
    except ValidationError as exc:
        raise _translate(exc, label=label, prefix=(), model=Config, overridden=overridden) from None

    sinks = _build_sinks(resolved.get("sinks", []), label=label)
    try:
        return Config.model_validate(
            {
                "state": base.state,
                "logging": base.logging,
                "sources": base.sources,
                "sinks": sinks,
                "path": file,
            }
        )
    except ValidationError as exc:
        raise _translate(exc, label=label, prefix=(), model=Config, overridden=overridden) from None


def _build_sinks(raw: Any, *, label: str) -> list[SinkConfig]:
    if not isinstance(raw, list):
        raise ConfigError(
            f"{label}: sinks: expected an array of tables; write each sink as a [[sinks]] table",
            path=label,
            key="sinks",
        )
    sinks: list[SinkConfig] = []
    for index, table in enumerate(raw):
        key = f"sinks[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(
                f"{label}: {key}: expected a table; write each sink as a [[sinks]] table",
                path=label,
                key=key,
            )
        type_name = table.get("type")
        if type_name is None:
            raise ConfigError(
                f"{label}: {key}: missing required key 'type'; known types: {_known_types()}",
                path=label,
                key=f"{key}.type",
            )
        if not isinstance(type_name, str) or not type_name:
            raise ConfigError(
                f"{label}: {key}.type: expected the name of a sink type; "
                f"known types: {_known_types()}",
                path=label,
                key=f"{key}.type",
            )
        try:
            model = sink_plugin(type_name).config_model
        except PluginError as exc:
            raise ConfigError(
                f"{label}: {key}.type: {exc}", path=label, key=f"{key}.type"
            ) from None
        try:
            sinks.append(model.model_validate(table))
        except ValidationError as exc:
            raise _translate(exc, label=label, prefix=("sinks", index), model=model) from None
        except Exception as exc:
            # A plugin's validator that raises something pydantic does not wrap; its message
            # might hold a value from the table, so only the type is shown.
            raise ConfigError(
                f"{label}: {key}: the {type_name!r} sink plugin failed while validating its "
                f"config ({type(exc).__name__}); report this to the plugin's authors",
                path=label,
                key=key,
            ) from None
    return sinks


def _known_types() -> str:
    try:
        names = list(available_sinks())
    except PluginError:
        # One broken plugin should not hide the names of the others.
        names = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
    return ", ".join(names) or "none installed"


# ---------------------------------------------------------------------------------------------
# ${VAR} references and overrides

_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?"
)


def _interpolate(
    value: Any, loc: tuple[str | int, ...], *, label: str, env: Mapping[str, str]
) -> Any:
    if isinstance(value, str):
        return _substitute(value, loc, label=label, env=env) if "${" in value else value
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), label=label, env=env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), label=label, env=env) for i, v in enumerate(value)]
    return value


def _substitute(
    text: str, loc: tuple[str | int, ...], *, label: str, env: Mapping[str, str]
) -> str:
    key = _key_path(loc)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise ConfigError(
                f"{label}: {key}: malformed ${{...}} reference; write ${{VAR}}, "
                f"${{VAR:-default}}, or $${{ for a literal ${{",
                path=label,
                key=key,
            )
        value = env.get(name)
        default = match.group("default")
        if default is not None:
            return value if value else default
        if value is None:
            raise ConfigError(
                f"{label}: {key}: environment variable {name} is not set; "
                "export it or write the value in the file",
                path=label,
                key=key,
            )
        return value

    return _REFERENCE.sub(replace, text)


def _apply_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Apply the ``FTWATCH_*`` variables to ``data``; return key path -> variable applied."""
    applied: dict[str, str] = {}
    for variable, (table, key) in ENV_OVERRIDES.items():
        value = env.get(variable)
        if not value:
            continue
        section = data.setdefault(table, {})
        if isinstance(section, dict):  # otherwise validation reports the table's wrong type
            section[key] = value
            applied[f"{table}.{key}"] = variable
    return applied


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into one sentence

_EXPECTED_BY_TYPE = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected an array",
    "tuple_type": "expected an array",
    "set_type": "expected an array",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "path_type": "expected a file path",
}

_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _translate(
    exc: ValidationError,
    *,
    label: str,
    prefix: tuple[str | int, ...],
    model: type[BaseModel],
    overridden: Mapping[str, str] | None = None,
) -> ConfigError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    if err["type"] in ("missing", "too_short"):
        # A misspelt key shows up as a missing one plus an unknown one: the unknown one explains.
        err = next(
            (
                e
                for e in errors
                if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == tuple(err["loc"][:-1])
            ),
            err,
        )
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}

    if kind == "extra_forbidden":
        error = _unknown_key(label, prefix + loc[:-1], loc[-1], _model_at(model, loc[:-1]))
    elif kind in ("missing", "too_short") and loc == ("sources",):
        error = ConfigError(
            f"{label}: no source configured; add a [[sources]] table with at least a name, "
            'such as name = "openai"',
            path=label,
            key="sources",
        )
    elif kind == "missing":
        parent, name = prefix + loc[:-1], loc[-1]
        where = f"{label}: {_key_path(parent)}" if parent else label
        error = ConfigError(
            f"{where}: missing required key {name!r}",
            path=label,
            key=_key_path(prefix + loc),
        )
    else:
        if kind == "duplicate_name":
            loc = (*loc, ctx["index"], "name")
        elif kind == "list_type" and loc in (("sources",), ("sinks",)):
            kind = "array_of_tables"
        key = _key_path(prefix + loc)
        hide_input = bool(model.model_config.get("hide_input_in_errors", False))
        message = _expectation(err, kind, loc, hide_input=hide_input)
        variable = (overridden or {}).get(key)
        if variable:
            message += f" (from the environment variable {variable})"
        error = ConfigError(f"{label}: {key}: {message}", path=label, key=key)

    if len(errors) > 1:
        more = len(errors) - 1
        message = f"{error} (and {more} more {'problem' if more == 1 else 'problems'})"
        error = ConfigError(message, path=error.path, key=error.key)
    return error


def _unknown_key(
    label: str, parent: tuple[str | int, ...], name: str | int, model: type[BaseModel] | None
) -> ConfigError:
    where = f"{label}: {_key_path(parent)}" if parent else label
    message = f"{where}: unknown key {str(name)!r}"
    if model is not None:
        keys = [k for k in model.model_fields if not (model is Config and k == "path")]
        message += f"; expected one of: {', '.join(keys)}"
    return ConfigError(message, path=label, key=_key_path((*parent, name)))


def _expectation(
    err: ErrorDetails, kind: str, loc: tuple[str | int, ...], *, hide_input: bool
) -> str:
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "array_of_tables":
        return f"expected an array of tables; write each one as a [[{loc[0]}]] table"
    if kind in _EXPECTED_BY_TYPE:
        message = _EXPECTED_BY_TYPE[kind]
    elif kind == "literal_error":
        message = f"expected one of {ctx.get('expected')}"
    elif kind == "greater_than":
        message = f"expected a value greater than {_number(ctx.get('gt'))}"
    elif kind == "greater_than_equal":
        message = f"expected a value of at least {_number(ctx.get('ge'))}"
    elif kind == "less_than":
        message = f"expected a value less than {_number(ctx.get('lt'))}"
    elif kind == "less_than_equal":
        message = f"expected a value of at most {_number(ctx.get('le'))}"
    elif kind == "string_too_short":
        message = "expected a non-empty string"
    elif kind == "too_short":
        message = f"expected at least {ctx.get('min_length')} item(s); leave the key out instead"
    elif kind in ("value_error", "assertion_error") and "error" in ctx:
        message = str(ctx["error"])
    else:
        message = err["msg"]
        if message.startswith("Input should be "):
            message = "expected " + message.removeprefix("Input should be ")
        elif message[:1].isupper():
            message = message[:1].lower() + message[1:]

    secret = any(isinstance(p, str) and (is_secret_key(p) or p == "headers") for p in loc)
    if secret or hide_input:
        # Never repeat a credential, even a malformed one, even inside a plugin's own message.
        if isinstance(value, str) and value:
            message = message.replace(value, MASK)
        return message
    if kind not in ("duplicate_name", "too_short") and " got " not in message:
        shown = _show(value)
        if shown is not None:
            message += f", got {shown}"
    return message


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def _show(value: Any) -> str | None:
    """How an offending value appears in a message: as written in TOML, and short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(_number(value))
    if isinstance(value, str):
        # A URL's user:password part is a credential.
        text = _USERINFO.sub(f"{MASK}@", value)
        return repr(text if len(text) <= 80 else text[:77] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return None


def _number(value: Any) -> Any:
    """Show ``0.0`` as ``0``: durations are floats, but people write whole seconds."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that validates the table at ``loc`` under ``model``, when there is one."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an array's index: its item type was unwrapped with the field
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None``, ``list[X]`` and ``SerializeAsAny[X]`` down to ``X``."""
    for _ in range(5):
        origin = get_origin(annotation)
        args = [a for a in get_args(annotation) if a is not type(None)]
        # Annotated (which SerializeAsAny builds) keeps its type first, as unions and lists do.
        container = origin in (Union, UnionType, list, tuple, set, frozenset)
        if not args or not (container or hasattr(annotation, "__metadata__")):
            break
        annotation = args[0]
    return annotation
