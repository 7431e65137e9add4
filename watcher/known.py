"""What the poller keeps of each known job, kept small and indexed as jobs change.

A source with a long history has mostly finished jobs that never change again; a steady-state
cycle must cost the same whether there are a thousand of them or a hundred thousand. So nothing
here is found by scanning every known job: :class:`JobIndex` keeps the ids of the jobs that
may still change, and the jobs' order keys sorted, updated job by job as their states change.

Memory is the other half: a job's state in memory is :func:`lean` (its id, status and creation
time in a :class:`LeanJob` of three slots, the change counts and status times shared between
jobs that have equal ones), never its snapshot, which lives in the store.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Set
from typing import Any, Final, cast

from .diff import JobState
from .models import FineTuningJob, is_terminal

__all__ = ["JobIndex", "LeanJob", "lean", "lean_state", "order_key"]

#: How many distinct ``seen``/``since`` mappings :func:`lean` shares before it starts afresh.
_MAX_SHARED: Final = 4096
_SHARED: dict[tuple[Any, ...], Mapping[str, Any]] = {}
#: How many jobs one update may bring before the order keys are re-sorted instead of inserted.
_RESORT_AT: Final = 64


class LeanJob:
    """The three fields of a job the poller reads from memory: ``id``, ``status``, ``created_at``.

    It stands in for a :class:`~watcher.models.FineTuningJob` in a lean :class:`JobState`: a
    pydantic model costs over a kilobyte a job, this costs 56 bytes.
    """

    __slots__ = ("created_at", "id", "status")

    def __init__(self, job_id: str, status: str, created_at: int | None) -> None:
        """Keep the three fields."""
        self.id = job_id
        self.status = status
        self.created_at = created_at

    @property
    def is_terminal(self) -> bool:
        """True once the job has succeeded, failed or been cancelled."""
        return is_terminal(self.status)

    def __eq__(self, other: object) -> bool:
        """Equal to another lean job with the same three fields."""
        if not isinstance(other, LeanJob):
            return NotImplemented
        return (self.id, self.status, self.created_at) == (
            other.id,
            other.status,
            other.created_at,
        )

    def __hash__(self) -> int:
        """Hash the three fields."""
        return hash((self.id, self.status, self.created_at))

    def __repr__(self) -> str:
        """Show the three fields."""
        return f"LeanJob({self.id!r}, {self.status!r}, {self.created_at!r})"


def _shared(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    # Safe to share: states are never changed in place (diff copies before it adds).
    key = tuple(mapping.items())
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _MAX_SHARED:
            _SHARED.clear()
        found = _SHARED[key] = dict(mapping)
    return found


def lean(state: JobState) -> JobState:
    """The state to keep in memory: the job's id, status and creation time, not its snapshot.

    A full snapshot costs kilobytes a job; the diff needs only the status (and paging the
    creation time). Snapshots live in the store, and every event carries the current one.
    """
    job = state.job
    if isinstance(cast(object, job), LeanJob):
        return state
    kept = LeanJob(job.id, job.status, job.created_at)
    # Typed as a job: a lean state is read only for the three fields a LeanJob has.
    return JobState(cast(FineTuningJob, kept), _shared(state.seen), _shared(state.since))


def lean_state(
    job_id: str,
    status: str,
    created_at: int | None,
    seen: Mapping[str, int],
    since: Mapping[str, float],
) -> JobState:
    """A lean state made from its parts (as the store keeps them), without a snapshot."""
    kept = LeanJob(job_id, status, created_at)
    return JobState(cast(FineTuningJob, kept), _shared(seen), _shared(since))


def order_key(job: FineTuningJob | LeanJob) -> tuple[int, str]:
    """Where a job stands in the list, oldest first: its creation time, then its id."""
    return (job.created_at or 0, job.id)


class JobIndex:
    """The known jobs that may still change, and every known job's order key, kept in step.

    Call :meth:`reset` with the states loaded, then :meth:`update` with each cycle's changed
    states before they replace the old ones.
    """

    def __init__(self, *, batch: int = _RESORT_AT) -> None:
        """Start empty; an update that brings ``batch`` jobs or more defers their sorting."""
        self._batch = batch
        #: Ids of the jobs not finished, in the order they became active (a dict: ordered).
        self._active: dict[str, None] = {}
        #: Every known job's :func:`order_key`, sorted unless ``_unsorted``.
        self._keys: list[tuple[int, str]] = []
        #: Set when many keys were appended at once (a baseline's chunk): sorted when next read,
        #: so a baseline of a hundred chunks is not sorted a hundred times.
        self._unsorted = False

    def reset(self, states: Mapping[str, JobState]) -> None:
        """Index ``states`` from scratch."""
        self._active = {j: None for j, st in states.items() if not st.job.is_terminal}
        self._keys = sorted(order_key(st.job) for st in states.values())
        self._unsorted = False

    def _sorted(self) -> list[tuple[int, str]]:
        if self._unsorted:
            self._keys.sort()  # sorted runs: timsort merges them in about linear time
            self._unsorted = False
        return self._keys

    def update(self, changed: Mapping[str, JobState], states: Mapping[str, JobState]) -> None:
        """Take ``changed`` into the index; ``states`` still holds the states they replace."""
        keys = self._keys
        added: list[tuple[int, str]] = []
        for job_id, state in changed.items():
            previous = states.get(job_id)
            key = order_key(state.job)
            if previous is None:
                added.append(key)
            else:
                old = order_key(previous.job)
                if old != key:
                    keys = self._sorted()
                    at = bisect.bisect_left(keys, old)
                    if at < len(keys) and keys[at] == old:
                        del keys[at]
                    added.append(key)
            if state.job.is_terminal:
                self._active.pop(job_id, None)
            else:
                self._active.setdefault(job_id, None)
        if self._unsorted or len(added) >= self._batch:
            keys.extend(added)
            self._unsorted = True
        else:
            for key in added:
                bisect.insort(keys, key)

    def active(self, gone: Set[str] = frozenset()) -> list[str]:
        """Ids of the known jobs that may still change, leaving out ``gone``."""
        if not gone:
            return list(self._active)
        return [job_id for job_id in self._active if job_id not in gone]

    def count_between(self, low: tuple[int, str], high: tuple[int, str]) -> int:
        """How many known jobs have an order key ``k`` with ``low <= k < high``."""
        if high <= low:
            return 0
        keys = self._sorted()
        return bisect.bisect_left(keys, high) - bisect.bisect_left(keys, low)

    def __len__(self) -> int:
        """How many jobs are indexed."""
        return len(self._keys)
