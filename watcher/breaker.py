"""A sink's health: its circuit breaker, and one warning per outage instead of one per event.

Without it, a sink whose receiver refuses connections tries every due event, each attempt a
connection, a log line and a retry written to the state file, and that work slows the other
sinks sharing the process and the file. With it, after ``threshold`` attempts in a row got no
answer at all (refused, reset, timed out: no HTTP status), the sink opens its circuit: it waits
as a whole for the open interval, then lets ONE delivery through as a probe. The probe's answer
closes the circuit (any answer, even a 503, shows the receiver is reachable again; its own
retry rules take over) or opens it again for an interval twice as long, capped. The events held
back meanwhile are not attempted, so they spend no attempts and write nothing; each keeps its
place in its job's queue, so per-job order holds.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping, MutableSequence
from typing import Any, Final, Literal

import structlog

__all__ = ["BREAKER_THRESHOLD", "Admission", "CircuitBreaker", "Outage", "release"]

log = structlog.get_logger("watcher.dispatch")

#: Attempts in a row without any answer from the receiver that open a sink's circuit.
BREAKER_THRESHOLD: Final = 5
# While a sink fails, how often its state is summed up in one warning (the rest is at debug).
_SUMMARY_EVERY = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """Whether a delivery may be attempted now, and if not, until when it waits."""

    #: True: attempt it now.
    go: bool
    #: True when this attempt is the probe of an open circuit.
    probe: bool = False
    #: When not ``go``: the time to try it again (the end of the open interval).
    until: float = 0.0


class CircuitBreaker:
    """The circuit of one sink: closed, open until a time, or probing with one delivery.

    ``initial`` and ``maximum`` bound the open interval in seconds: the first opening lasts
    ``initial``, each failed probe doubles it up to ``maximum``. ``sink`` names it in the log
    lines it writes when it opens and closes. Not thread-safe; one event loop.
    """

    def __init__(
        self, sink: str, *, threshold: int = BREAKER_THRESHOLD, initial: float, maximum: float
    ) -> None:
        self.sink = sink
        self.threshold = max(1, threshold)
        self.initial = max(initial, 0.001)
        self.maximum = max(maximum, self.initial)
        #: Attempts in a row that got no answer.
        self.failures = 0
        #: How many times in a row the circuit opened (1 on the first opening).
        self.trips = 0
        self.state: Literal["closed", "open", "probing"] = "closed"
        #: When the open interval ends (meaningful while not closed).
        self.open_until = 0.0

    def interval(self) -> float:
        """The length of the current open interval."""
        return min(self.maximum, self.initial * 2.0 ** max(0, self.trips - 1))

    def holding(self, now: float) -> bool:
        """Whether the circuit is open at ``now`` and its probe not yet due: nothing may go."""
        return self.state == "open" and now < self.open_until

    def admit(self, now: float) -> Admission:
        """May a delivery be attempted at ``now``? Past the open interval, the first is a probe."""
        if self.state == "closed":
            return Admission(go=True)
        if self.state == "open" and now >= self.open_until:
            self.state = "probing"
            return Admission(go=True, probe=True)
        # Open, or a probe is out: wait. While probing, the probe's end releases them earlier.
        until = self.open_until if now < self.open_until else now + self.interval()
        return Admission(go=False, until=until)

    def answered(self) -> bool:
        """The receiver answered (any status); return True if this closed the circuit.

        An answer to an attempt sent before the circuit opened closes it as the probe's would:
        the receiver is reachable.
        """
        self.failures = 0
        if self.state == "closed":
            return False
        self.state = "closed"
        self.trips = 0
        log.info("sink_circuit_closed", sink=self.sink)
        return True

    def no_answer(self, admission: Admission, now: float, error: str) -> bool:
        """An attempt got no answer at all; return True if this opened the circuit (again)."""
        if self.state == "closed":
            self.failures += 1
            if self.failures < self.threshold:
                return False
        elif not admission.probe:
            return False  # sent before the circuit opened: the opening already counted it
        self.trips += 1
        self.state = "open"
        self.open_until = now + self.interval()
        log.warning(
            "sink_circuit_open",
            sink=self.sink,
            failures_in_a_row=self.failures,
            probe_in=round(self.interval(), 3),
            error=error,
        )
        return True


def release(
    held: set[str],
    queues: Mapping[str, MutableSequence[Any]],
    ready: list[tuple[float, int, str]],
    now: float,
) -> list[tuple[float, int, str]]:
    """Make the jobs an open circuit held back due ``now``; return the new ready heap.

    ``queues`` maps a job to its waiting deliveries (dataclasses with ``next_attempt_at``),
    ``ready`` is the heap of (due time, seq, job) the worker hands chains out from; ``held`` is
    emptied. A job not held keeps its own retry time.
    """
    for key in held & queues.keys():
        queue = queues[key]
        queue[0] = dataclasses.replace(queue[0], next_attempt_at=now)
    out = [(now if key in held else due, seq, key) for due, seq, key in ready]
    heapq.heapify(out)
    held.clear()
    return out


class Outage:
    """One warning when a sink starts failing, a summary a minute while it fails, one line when
    it recovers: an outage is a few log lines, not one per attempt."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        # When the sink started failing, how many attempts failed since, and when the next
        # summary is due.
        self.since: float | None = None
        self.failed_attempts = 0
        self._summary_at = 0.0

    def failing(self, now: float, error: str, *, queued: int, waiting_jobs: int) -> None:
        """Count a failed attempt; log when the sink starts failing, then a periodic summary."""
        self.failed_attempts += 1
        if self.since is None:
            self.since = now
            self._summary_at = now + _SUMMARY_EVERY
            log.warning("sink_failing", sink=self.sink, since=now, error=error)
        elif now >= self._summary_at:
            self._summary_at = now + _SUMMARY_EVERY
            log.warning(
                "sink_still_failing",
                sink=self.sink,
                since=self.since,
                failed_attempts=self.failed_attempts,
                queued=queued,
                waiting_jobs=waiting_jobs,
                error=error,
            )

    def recovered(self, now: float) -> None:
        """A delivery went through: end the outage, if there was one, with one line."""
        if self.since is None:
            return
        log.info(
            "sink_recovered",
            sink=self.sink,
            failed_attempts=self.failed_attempts,
            down_for=round(now - self.since, 3),
        )
        self.since = None
        self.failed_attempts = 0
