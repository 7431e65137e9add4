"""The one retry policy: every caller reads a server's hint the same way and waits by one rule."""

from __future__ import annotations

import email.utils
import random

import httpx
import pytest

from watcher.retry import parse_retry_after, retry_delay

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "-5", "retry-after": "3"}, 3.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after": " 120 "}, 120.0),
        ({"retry-after": email.utils.formatdate(NOW + 42, usegmt=True)}, 42.0),
        ({"retry-after": email.utils.formatdate(NOW - 42, usegmt=True)}, 0.0),
        # HTTP dates are GMT: one without a zone is read as UTC, not dropped.
        ({"retry-after": "Tue, 14 Nov 2023 22:14:02"}, 42.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "whenever"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after_reads_each_form(headers: dict[str, str], expected: float | None) -> None:
    """Milliseconds win, then seconds or an HTTP date; nonsense and negatives are no hint."""
    assert email.utils.formatdate(NOW, usegmt=True) == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_reads_response_headers_in_any_case() -> None:
    """A real response's headers are matched whatever case the server wrote them in."""
    headers = httpx.Headers({"Retry-After": "7"})
    assert parse_retry_after(headers) == 7.0


def test_retry_delay_is_full_jitter_under_an_exponential_ceiling() -> None:
    """Waits spread over all of [0, min(maximum, initial * 2^(n-1))], averaging half of it."""
    rng = random.Random(3)
    for attempt in range(1, 12):
        ceiling = min(300.0, 1.0 * 2 ** (attempt - 1))
        delays = [retry_delay(attempt, initial=1.0, maximum=300.0, rng=rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert min(delays) < 0.05 * ceiling and max(delays) > 0.95 * ceiling
        assert 0.4 * ceiling < sum(delays) / len(delays) < 0.6 * ceiling


class _Top(random.Random):
    """A random source that always draws the top of the range."""

    def random(self) -> float:
        """The largest draw."""
        return 1.0


def test_retry_after_is_a_floor_bounded_by_the_callers_limit() -> None:
    """A server's hint is waited for at least, up to the limit; backoff still applies above it."""
    top = _Top()
    assert retry_delay(1, initial=1.0, maximum=300.0, rng=top, retry_after=42) == 42.0
    assert retry_delay(1, initial=1.0, maximum=300.0, rng=top, retry_after=900) == 900.0
    limited = retry_delay(
        1, initial=1.0, maximum=10.0, rng=top, retry_after=3600, retry_after_limit=10.0
    )
    assert limited == 10.0
    # A server answering "Retry-After: 0" every time still gets the jittered backoff.
    assert retry_delay(4, initial=1.0, maximum=300.0, rng=top, retry_after=0) == 8.0


def test_retry_delay_survives_absurd_attempt_counts() -> None:
    """A huge attempt number neither overflows nor exceeds the maximum."""
    assert retry_delay(10**6, initial=0.5, maximum=60.0, rng=_Top()) == 60.0
