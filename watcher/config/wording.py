"""Turning pydantic's validation errors into one sentence naming the file, the key and the fix.

A message never holds a secret: the value of a key named like a credential (or of a model that
hides its input in errors) is never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigError
from ..logs import MASK, is_secret_key

__all__ = ["key_path", "translate", "unknown_key"]

_EXPECTED_BY_TYPE = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
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


def key_path(loc: tuple[str | int, ...]) -> str:
    """Show a location as written in the file: ``sources[1].poll_interval``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def translate(
    exc: ValidationError,
    *,
    label: str,
    prefix: tuple[str | int, ...],
    model: type[BaseModel],
    overridden: Mapping[str, str] | None = None,
) -> ConfigError:
    """The first of ``exc``'s errors as one :class:`ConfigError` (with a count of the others).

    ``label`` names the file, ``prefix`` is where ``model``'s table sits in it, and
    ``overridden`` maps key paths to the environment variable that set them.
    """
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
        error = unknown_key(label, prefix + loc[:-1], loc[-1], _model_at(model, loc[:-1]))
    elif kind in ("missing", "too_short") and loc == ("sources",):
        error = ConfigError(
            f"{label}: no source configured; add a [[sources]] table with at least a name, "
            'such as name = "openai"',
            path=label,
            key="sources",
        )
    elif kind == "missing":
        parent, name = prefix + loc[:-1], loc[-1]
        where = f"{label}: {key_path(parent)}" if parent else label
        error = ConfigError(
            f"{where}: missing required key {name!r}",
            path=label,
            key=key_path(prefix + loc),
        )
    else:
        if kind == "duplicate_name":
            loc = (*loc, ctx["index"], "name")
        elif kind == "list_type" and loc in (("sources",), ("sinks",)):
            kind = "array_of_tables"
        key = key_path(prefix + loc)
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


def unknown_key(
    label: str, parent: tuple[str | int, ...], name: str | int, model: type[BaseModel] | None
) -> ConfigError:
    """The error for a key ``model`` does not have, listing the keys it does have.

    A model's fields named in its ``NOT_FILE_KEYS`` class attribute are not offered.
    """
    where = f"{label}: {key_path(parent)}" if parent else label
    message = f"{where}: unknown key {str(name)!r}"
    if model is not None:
        hidden: frozenset[str] = getattr(model, "NOT_FILE_KEYS", frozenset())
        keys = [k for k in model.model_fields if k not in hidden]
        message += f"; expected one of: {', '.join(keys)}"
    return ConfigError(message, path=label, key=key_path((*parent, name)))


def _expectation(
    err: ErrorDetails, kind: str, loc: tuple[str | int, ...], *, hide_input: bool
) -> str:
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "array_of_tables":
        return f"expected an array of tables; write each one as a [[{loc[0]}]] table"
    if kind in _EXPECTED_BY_TYPE:
        message = _EXPECTED_BY_TYPE[kind]
        if _quoted(kind, value):
            # A strict key given its value in quotes ("7", "yes"): say that the quotes are wrong.
            message += " without quotes"
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


def _quoted(kind: str, value: Any) -> bool:
    """Whether ``value`` is a string that a lax parser would have read as ``kind`` expects."""
    if not isinstance(value, str) or kind not in ("int_type", "float_type", "bool_type"):
        return False
    text = value.strip().lower()
    if kind == "bool_type":
        return text in ("true", "false", "yes", "no", "on", "off", "1", "0")
    try:
        float(text) if kind == "float_type" else int(text)
    except ValueError:
        return False
    return True


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
