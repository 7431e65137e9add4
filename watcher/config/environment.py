"""``${VAR}`` references in string values, and the ``FTWATCH_*`` variables that override keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .wording import key_path

__all__ = ["ENV_OVERRIDES", "apply_overrides", "interpolate"]

#: Environment variables that override a key of the file: variable -> (table, key).
ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "FTWATCH_STATE_PATH": ("state", "path"),
    "FTWATCH_LOG_LEVEL": ("logging", "level"),
    "FTWATCH_LOG_FORMAT": ("logging", "format"),
}

_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})?"
)


def interpolate(
    value: Any, loc: tuple[str | int, ...], *, label: str, env: Mapping[str, str]
) -> Any:
    """``value`` (TOML data at ``loc``) with every ``${...}`` reference in its strings replaced."""
    if isinstance(value, str):
        return _substitute(value, loc, label=label, env=env) if "${" in value else value
    if isinstance(value, dict):
        return {k: interpolate(v, (*loc, k), label=label, env=env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, (*loc, i), label=label, env=env) for i, v in enumerate(value)]
    return value


def _substitute(
    text: str, loc: tuple[str | int, ...], *, label: str, env: Mapping[str, str]
) -> str:
    key = key_path(loc)

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


def apply_overrides(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
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
