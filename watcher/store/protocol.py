"""What the rest of ftwatch needs from a state store: the :class:`StateStore` protocol.

The poller, the dispatcher, the watcher and the CLI use only these methods, so a second
implementation (a shared PostgreSQL store for two replicas, say) can be added without touching
them. :class:`~watcher.store.sqlite.SQLiteStore` is the one implementation today.

How delivery state is kept: every sink has a **cursor** in the journal, the highest seq such
that every entry up to it is either settled for that sink (delivered, or filtered out) or has a
delivery row of its own (waiting for a retry, or dead). Entries past the cursor are the sink's
fresh queue; rows exist only for what is retried or dead (and, briefly, for an entry delivered
ahead of the cursor while an earlier one of another job is still out). A sink named for the
first time starts at the end of the journal (or at a given time, to replay); a sink no longer
named is retired: what it still had queued becomes dead letters, so nothing vanishes unseen.
A sink the store was never told of (no :meth:`StateStore.set_sinks`) reads from the start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

from ..diff import JobState
from ..events import BaseEvent, event_from_envelope
from ..models import FineTuningJob

__all__ = [
    "ActiveJobRow",
    "DeadLetter",
    "Delivery",
    "Overview",
    "RetiredSink",
    "SinkOverview",
    "SourceOverview",
    "StateStore",
    "job_key",
]

#: Separates the source from the job id in a delivery's ``job_key`` (it cannot occur in either).
_KEY_SEP: Final = "\x1f"


def job_key(source: str, job_id: str) -> str:
    """The key that orders one job's deliveries: ``source + '\\x1f' + job_id``."""
    return f"{source}{_KEY_SEP}{job_id}"


@dataclass(frozen=True)
class Delivery:
    """One pending delivery of a journal entry to one sink."""

    sink: str
    seq: int
    event_id: str
    #: ``source + '\\x1f' + job_id``: deliveries with the same key go out in seq order.
    job_key: str
    #: Attempts made so far (0 for a delivery never tried).
    attempts: int
    next_attempt_at: float
    first_attempt_at: float | None
    #: When the event was observed, for a retry policy's maximum age.
    observed_at: float
    body: str
    #: True when the delivery has a row of its own (a retry, or a dead letter put back);
    #: False for a journal entry past the sink's cursor, which holds the cursor back.
    stored: bool = False

    def event(self) -> BaseEvent:
        """Rebuild the typed event from the stored envelope."""
        return event_from_envelope(self.body)


@dataclass(frozen=True)
class DeadLetter:
    """A delivery that was given up on: the sink rejected it or its retries ran out."""

    sink: str
    seq: int
    event_id: str
    type: str
    source: str
    job_id: str
    attempts: int
    last_error: str
    died_at: float
    body: str

    def event(self) -> BaseEvent:
        """Rebuild the typed event from the stored envelope."""
        return event_from_envelope(self.body)


@dataclass(frozen=True)
class RetiredSink:
    """A sink no longer configured, retired by :meth:`StateStore.set_sinks`."""

    name: str
    #: Deliveries it still had queued (retries and entries past its cursor), now dead letters.
    queued: int
    #: Its dead letters in all, those included; they stay until retried or dropped.
    dead: int


@dataclass(frozen=True)
class SourceOverview:
    """One source as the state file knows it, for ``ftwatch status``."""

    name: str
    baselined: bool
    #: When the source last finished a poll cycle (Unix time), if it ever did.
    polled_at: float | None
    #: Its jobs by last seen status.
    jobs: dict[str, int]


@dataclass(frozen=True)
class ActiveJobRow:
    """A job not yet finished, as stored: its snapshot JSON and when it entered each status."""

    source: str
    job_id: str
    status: str
    #: The job as last seen (API JSON).
    job: str
    #: Status -> when it was first seen in that status (JSON object).
    since: str


@dataclass(frozen=True)
class SinkOverview:
    """One sink's delivery state, for ``ftwatch status``."""

    name: str
    #: Events waiting for it: retries plus the journal entries past its cursor.
    pending: int
    #: When the oldest of them was observed (Unix time), if any wait.
    oldest_pending_at: float | None
    dead: int
    #: Why the running daemon stopped delivering to it, if it did.
    disabled: str | None
    #: False for a sink no longer configured that keeps dead letters or retried ones.
    configured: bool


@dataclass(frozen=True)
class Overview:
    """What the state file says at one moment: sources, their unfinished jobs, sinks."""

    sources: list[SourceOverview]
    active: list[ActiveJobRow]
    sinks: list[SinkOverview]


class StateStore(Protocol):
    """Snapshots, the event journal and every sink's delivery state, behind one interface.

    Every method may be called from many tasks at once. Use it as an async context manager or
    call :meth:`aclose`; a closed store raises :class:`~watcher.errors.StoreError`, as does any
    failure of the storage underneath.
    """

    async def aclose(self) -> None:
        """Release the store; later calls raise StoreError."""
        ...

    async def __aenter__(self) -> Self:
        """Return the open store."""
        ...

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        """Close the store."""
        ...

    # -- the poller -------------------------------------------------------------------------------

    async def is_baselined(self, source: str) -> bool:
        """Tell whether ``source`` has recorded its silent first baseline."""
        ...

    async def gaps(self, source: str) -> list[str]:
        """The cursors ``source``'s job list is still to be read from."""
        ...

    async def load_states(self, source: str) -> dict[str, JobState]:
        """Every job remembered for ``source``: job id -> its last :class:`JobState`, lean.

        Lean: each state's job is a :class:`~watcher.known.LeanJob` (id, status, creation
        time) with the counts and status times, not the snapshot, which :meth:`snapshot`
        reads. A poller watching 100,000 jobs holds no more than that of each.
        """
        ...

    async def snapshot(self, source: str, job_id: str) -> FineTuningJob | None:
        """The last snapshot stored of one job of ``source``, or None when there is none."""
        ...

    async def commit(
        self,
        source: str,
        *,
        states: Mapping[str, JobState],
        events: Sequence[BaseEvent],
        now: float,
        baselined: bool | None = None,
        gaps: Sequence[str] | None = None,
    ) -> list[int]:
        """Record one cycle of ``source`` atomically; return the seqs of newly journaled events.

        An event whose id is journaled already is ignored (the duplicates seen again after a
        restart); the snapshots in ``states`` replace the stored ones; the baseline flag and
        the catch-up cursors are replaced when given.
        """
        ...

    async def mark_polled(self, source: str, *, now: float) -> None:
        """Record that ``source`` finished a poll cycle at ``now`` (shown by ``ftwatch status``)."""
        ...

    async def load_progress(self, source: str) -> dict[str, dict[str, Any]]:
        """Every running job's progress track of ``source``: job id -> its JSON data."""
        ...

    async def save_progress(
        self, source: str, tracks: Mapping[str, dict[str, Any] | None], *, now: float
    ) -> None:
        """Replace the tracks of the jobs in ``tracks``; None forgets that job's track."""
        ...

    # -- the dispatcher ---------------------------------------------------------------------------

    async def set_sinks(
        self, names: Sequence[str], *, now: float, replay_from: float | None = None
    ) -> list[RetiredSink]:
        """Make ``names`` the configured sinks; return the sinks retired.

        A sink new to the store starts at the end of the journal, or, with ``replay_from``,
        just before the first entry observed at or after that time. A sink known to the store
        and missing from ``names`` is retired: its queue becomes dead letters, its cursor goes.
        """
        ...

    async def pending(self, sink: str, *, limit: int = 500, after: int = 0) -> list[Delivery]:
        """The sink's pending deliveries in seq order, due or not, at most ``limit``.

        ``after`` skips those with a seq up to it (a reader that holds them already).
        """
        ...

    async def ack(self, sink: str, seqs: Sequence[int], *, cursor: int, now: float) -> None:
        """Record ``seqs`` as delivered and move the sink's cursor up to ``cursor``.

        ``cursor`` is the caller's promise: every entry up to it is delivered (``seqs`` or an
        earlier ack) or has a row (:meth:`schedule_retry`, :meth:`dead_letter`). A cursor never
        moves back. A delivered seq above the cursor (sent out of order) is remembered until
        the cursor passes it, so it is never read as pending again.
        """
        ...

    async def schedule_retry(
        self,
        sink: str,
        seq: int,
        *,
        attempts: int,
        next_attempt_at: float,
        first_attempt_at: float,
        error: str,
        now: float,
    ) -> None:
        """Keep a delivery pending with its attempt count, next due time and last error."""
        ...

    async def dead_letter(
        self, sink: str, seq: int, *, attempts: int, error: str, now: float
    ) -> None:
        """Give up on a delivery: it becomes a dead letter with its last error."""
        ...

    async def disable_sink(self, sink: str, reason: str, *, now: float) -> None:
        """Record that the daemon stopped delivering to ``sink`` and why, until it restarts.

        :meth:`set_sinks` clears it for every sink it is given.
        """
        ...

    # -- the CLI ----------------------------------------------------------------------------------

    async def overview(self) -> Overview:
        """Sources, unfinished jobs and sinks at one moment, read without writing anything."""
        ...

    async def dead_letters(self, sink: str | None = None) -> list[DeadLetter]:
        """The dead letters (of one sink, or all), ordered by sink then seq."""
        ...

    async def retry_dead_letters(
        self, *, sink: str | None = None, event_ids: Sequence[str] | None = None, now: float
    ) -> int:
        """Put dead letters back in the queue (attempts 0, due now); returns how many."""
        ...

    async def drop_dead_letters(
        self, *, sink: str | None = None, event_ids: Sequence[str] | None = None
    ) -> int:
        """Forget dead letters for good; returns how many."""
        ...

    # -- housekeeping -----------------------------------------------------------------------------

    async def prune(self, *, older_than: float) -> int:
        """Delete journal entries observed before ``older_than`` that no sink still needs."""
        ...

    async def stats(self) -> dict[str, object]:
        """Counts for a status page (``ftwatch status``): jobs, the journal, queues per sink."""
        ...
