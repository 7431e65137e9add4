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

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    # A first pass reads the syntax only, so that a malformed reference is reported as such
    # even when a variable before it is missing.
    _expand(text, 0, env=env, label=label, key=key, inside=False, active=False)
    out, end = _expand(text, 0, env=env, label=label, key=key, inside=False, active=True)
    assert end == len(text)
    return out


def _expand(
    text: str,
    pos: int,
    *,
    env: Mapping[str, str],
    label: str,
    key: str,
    inside: bool,
    active: bool,
) -> tuple[str, int]:
    """Expand ``text`` from ``pos``; return the result and where it stopped.

    ``inside`` a default, the text ends at its closing ``}`` (consumed). A default may itself
    hold references (``${A:-${B:-x}}``); it is only evaluated when used (``active``), as in a
    shell, so an unset ``B`` is no error while ``A`` is set.
    """
    out: list[str] = []
    while pos < len(text):
        if text.startswith("$${", pos):
            out.append("${")
            pos += 3
        elif text.startswith("${", pos):
            name = _NAME.match(text, pos + 2)
            if name is None:
                raise _malformed(label, key)
            value = env.get(name.group())
            pos = name.end()
            if text.startswith("}", pos):
                pos += 1
                if value is None and active:
                    raise ConfigError(
                        f"{label}: {key}: environment variable {name.group()} is not set; "
                        "export it or write the value in the file",
                        path=label,
                        key=key,
                    )
                out.append(value or "")
            elif text.startswith(":-", pos):
                use_default = active and not value
                default, pos = _expand(
                    text, pos + 2, env=env, label=label, key=key, inside=True, active=use_default
                )
                out.append(default if use_default else value or "")
            else:
                raise _malformed(label, key)
        elif inside and text[pos] == "}":
            return "".join(out), pos + 1
        else:
            out.append(text[pos])
            pos += 1
    if inside:
        raise _malformed(label, key)  # a default that never closes
    return "".join(out), pos


def _malformed(label: str, key: str) -> ConfigError:
    return ConfigError(
        f"{label}: {key}: malformed ${{...}} reference; write ${{VAR}}, "
        f"${{VAR:-default}}, or $${{ for a literal ${{",
        path=label,
        key=key,
    )


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
