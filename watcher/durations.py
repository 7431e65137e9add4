"""Durations in config: a number of seconds, or a string like ``"30s"``, ``"2m"``, ``"1h30m"``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Read seconds from a number or a string such as ``"90"``, ``"30s"``, ``"2m"``, ``"1h30m"``.

    Raises ValueError with the accepted forms when the value is none of them, and for a negative
    or non-finite (``inf``, ``nan``) value.
    """
    if isinstance(value, bool):
        raise ValueError("expected seconds as a number or a string like '30s', '2m', '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"expected a duration like '30s', '2m' or '1h30m', got {value!r}"
                ) from None
    else:
        raise ValueError("expected seconds as a number or a string like '30s', '2m', '1h'")
    if not math.isfinite(seconds):
        # inf would wait forever and nan compares false with everything (a NaN retention never
        # prunes): neither is a duration anyone means.
        raise ValueError("expected a finite duration such as '30s', '2m' or '1h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


#: A config field holding seconds, written as a number or as ``"30s"``, ``"2m"``, ``"1h"``.
Duration = Annotated[float, BeforeValidator(parse_duration)]
