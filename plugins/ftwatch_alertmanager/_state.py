"""The sink's state file: the alerts it holds firing, kept across daemon restarts.

One small JSON file, ``alerts.json``, in the sink's private state directory. It is replaced
whole at each change (written to a temporary file, flushed, then renamed over the old one), so a
crash leaves the old file or the new one, never half of one; it is readable by the user only.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Final

import structlog

from ._payload import Held

__all__ = ["STATE_FILE", "read_state", "write_state"]

log = structlog.get_logger(__name__)

STATE_FILE: Final = "alerts.json"
_VERSION: Final = 1


def read_state(directory: Path) -> dict[str, Held]:
    """The alerts held firing, by key; empty when there is no file yet.

    A damaged file or record is logged and skipped rather than stopping the sink: the alerts it
    held then resolve in Alertmanager by themselves once their ``endsAt`` passes.
    """
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("alertmanager_state_unreadable", path=str(path), error=type(exc).__name__)
        return {}
    found: dict[str, Held] = {}
    records = data.get("alerts") if isinstance(data, dict) else None
    for record in records if isinstance(records, list) else []:
        try:
            held = Held.from_json(record)
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("alertmanager_state_record_skipped", path=str(path))
            continue
        found[held.key] = held
    return found


def write_state(directory: Path, alerts: dict[str, Held]) -> None:
    """Replace the state file with ``alerts``, atomically and private to the user."""
    path = directory / STATE_FILE
    temporary = directory / f".{STATE_FILE}.{os.getpid()}.tmp"
    body = {"version": _VERSION, "alerts": [held.to_json() for held in alerts.values()]}
    data = json.dumps(body, ensure_ascii=False, indent=1).encode()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
