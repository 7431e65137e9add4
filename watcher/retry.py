"""The one retry policy of every outbound HTTP call: reading a server's hint, choosing a wait.

The API client, the dispatcher and the built-in sinks all use these two functions, so a
``Retry-After`` means the same thing everywhere and every wait follows one rule:

* **Backoff** is full jitter under an exponential ceiling: after ``attempt`` failed attempts the
  wait is drawn uniformly from ``[0, min(maximum, initial * 2 ** (attempt - 1))]``, so retries
  of many callers do not fall due together.
* **A server's hint is a floor**, never a replacement: the wait is at least its ``Retry-After``
  (waiting less would only be refused again), and still at least the jittered backoff (so a
  server answering ``Retry-After: 0`` to every request is not hammered). The caller bounds the
  hint with ``retry_after_limit``: the API client by its ``max_backoff`` (it waits inside one
  request of a poll cycle), the dispatcher by ``retry.max_age`` (a later attempt would be a
  dead letter anyway).

The random draw comes from an injected :class:`random.Random`, so tests pin it.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from datetime import UTC

__all__ = ["parse_retry_after", "retry_delay"]

# 2 ** 60 times any sane initial wait is far beyond any maximum; the bound keeps the float finite.
_MAX_EXPONENT = 60


def _seconds(text: str) -> float | None:
    """A finite, non-negative number of seconds from ``text``, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Read a server's wait hint from response ``headers``, in seconds; None when it gave none.

    ``retry-after-ms`` (OpenAI's, in milliseconds) wins over ``Retry-After``. ``Retry-After`` is
    either delay-seconds or an HTTP date; a date without a time zone is read as UTC (HTTP dates
    are always GMT), and a date in the past means "now" (0). Negative, non-finite and
    unreadable values are no hint (None). ``now`` is the wall-clock time a date is measured
    from (default: :func:`time.time`). Header names are matched as given: pass the response's
    case-insensitive headers, or a dict with lowercase names.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        millis = _seconds(raw_ms.strip())
        if millis is not None:
            return millis / 1000.0
    raw = headers.get("retry-after")
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    seconds = _seconds(text)
    if seconds is not None:
        return seconds
    if text[:1] in "+-0123456789.":
        return None  # a number, but negative or not finite: no hint
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rng: random.Random,
    retry_after: float | None = None,
    retry_after_limit: float = math.inf,
) -> float:
    """Seconds to wait after ``attempt`` failed attempts (1 after the first failure).

    Full jitter drawn from ``rng`` under ``min(maximum, initial * 2 ** (attempt - 1))``; a
    server's ``retry_after`` is a floor on that wait, itself bounded by ``retry_after_limit``.
    """
    exponent = min(max(0, attempt - 1), _MAX_EXPONENT)
    ceiling = min(maximum, initial * 2.0**exponent)
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_limit))
    return delay
