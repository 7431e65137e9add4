"""Reading a config: the TOML file, its ``${VAR}`` references and overrides, then validation."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError, PluginError
from ..sinks import ENTRY_POINT_GROUP, SinkConfig, available_sinks, sink_plugin
from .environment import apply_overrides, interpolate
from .models import Config
from .wording import translate, unknown_key

__all__ = ["load_config", "parse_config"]


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
            f"{label}: file not found; pass --config PATH, or run `ftwatch init` to write a"
            " starter ftwatch.toml in the current directory",
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
    resolved: dict[str, Any] = interpolate(dict(data), (), label=label, env=env)
    overridden = apply_overrides(resolved, env)

    if "path" in resolved:
        # `path` is a field of Config (where the file came from), never a key of the file.
        raise unknown_key(label, (), "path", Config)

    # Everything but the sinks first, so that errors come in the order of the file's parts.
    try:
        base = Config.model_validate({**resolved, "sinks": [], "path": file})
    except ValidationError as exc:
        raise translate(exc, label=label, prefix=(), model=Config, overridden=overridden) from None

    sinks = _build_sinks(resolved.get("sinks", []), label=label)
    state = base.state
    if file is not None:
        # Paths written in the file mean what they say wherever `run` starts: relative to the
        # file's directory. One from FTWATCH_STATE_PATH was typed in a shell, so it keeps the
        # shell's meaning (the working directory).
        folder = Path(os.path.abspath(file)).parent
        if "state.path" not in overridden:
            state = state.model_copy(update={"path": _under(folder, state.path)})
        sinks = [_paths_under(folder, sink) for sink in sinks]
    try:
        return Config.model_validate(
            {
                "state": state,
                "logging": base.logging,
                "sources": base.sources,
                "sinks": sinks,
                "server": base.server,
                "path": file,
            }
        )
    except ValidationError as exc:
        raise translate(exc, label=label, prefix=(), model=Config, overridden=overridden) from None


def _under(folder: Path, path: Path) -> Path:
    return path if path.is_absolute() else folder / path


def _paths_under(folder: Path, sink: SinkConfig) -> SinkConfig:
    """``sink`` with each relative path among its keys made relative to ``folder``.

    Any plugin's key whose value is a :class:`~pathlib.Path` counts, so a third-party sink that
    declares its file as a ``Path`` gets the same rule as the logfile sink.
    """
    update = {
        name: _under(folder, value)
        for name, value in sink
        if isinstance(value, Path) and not value.is_absolute()
    }
    return sink.model_copy(update=update) if update else sink


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
            raise translate(exc, label=label, prefix=("sinks", index), model=model) from None
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
