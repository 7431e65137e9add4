"""A cycle's job objects, read cheaply: only a job whose raw object changed is validated and diffed.

A steady-state cycle re-reads many jobs that did not change (every finished job on the first
page, every active job between two updates). Validating each one into a pydantic model and
comparing it with the last snapshot cost most of a cycle, for nothing. Instead, each raw
object (the parsed JSON the API sent) gets a fingerprint; a job whose raw object has the
fingerprint it had when it was last diffed is taken as unchanged, skipping validation, the
diff and the model comparison. Anything else takes the full path, which decides as before.

The fingerprint is Python's 64-bit ``hash`` of the object's compact JSON: two different objects
share one with a chance of about 2**-64 per comparison (then a change would be seen one change
late). It lives in memory only (``hash`` is salted per process), so the first cycle after a
restart takes the full path for every job.

A fingerprint is remembered only once its cycle is committed (:meth:`Fingerprints.settle`), and
forgotten when the job's state comes from elsewhere (a retrieve): a cycle that failed before
its commit, or a state newer than the object fingerprinted, must never hide a change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, is_, not_
from typing import Any

import structlog
from pydantic import ValidationError
from pydantic_core import SchemaSerializer, core_schema

from .diff import JobState, diff
from .events import BaseEvent
from .known import lean
from .models import TERMINAL_STATUSES, FineTuningJob, validate_job
from .payload import validation_reason

__all__ = ["Fingerprints", "JobsRead", "diff_jobs", "fingerprint", "lean", "snapshot_mark"]

log = structlog.get_logger(__name__)

# The fingerprint's JSON: pydantic-core's for any value, built once (``pydantic_core.to_json``
# sets up a serializer on every call, a third of its cost for a job). "constants" keeps NaN
# apart from null: the two validate differently.
_fingerprint_json = SchemaSerializer(
    core_schema.any_schema(), core_schema.CoreConfig(ser_json_inf_nan="constants")
).to_json
_get = dict.get
_job_of = attrgetter("job")
_status_of = attrgetter("status")
_is_terminal_status = TERMINAL_STATUSES.__contains__
#: One set object for each distinct set of fields a job arrived with. Pydantic gives every model
#: its own ``__pydantic_fields_set__``: about 2.2 KB of a job's 4.3 KB, in every snapshot a
#: cycle holds. Jobs are frozen, so nothing ever adds to a shared one. Bounded, so that a
#: server inventing new fields for every job cannot grow it without end.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
_MAX_FIELDS_SETS = 256


def fingerprint(raw: Any) -> int | None:
    """A fingerprint of a raw job object: equal objects (types included) give equal ones.

    None when the object cannot be fingerprinted (a lone surrogate in a string, say): such a
    job simply takes the full path every cycle.
    """
    try:
        return hash(_fingerprint_json(raw))
    except (ValueError, TypeError, RecursionError):
        return None


def _share_fields_set(job: FineTuningJob) -> None:
    fields = job.__pydantic_fields_set__
    key = frozenset(fields)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        if len(_FIELDS_SETS) >= _MAX_FIELDS_SETS:
            return
        shared = _FIELDS_SETS[key] = fields
    object.__setattr__(job, "__pydantic_fields_set__", shared)


def snapshot_mark(job: FineTuningJob) -> int:
    """A fingerprint of a validated job: equal marks mean the stored snapshot need not change."""
    return hash(job.__pydantic_serializer__.to_json(job))


@dataclass
class JobsRead:
    """The jobs one cycle read: each id once, the unchanged ones marked, the fingerprints seen."""

    #: Each job's snapshot, first valid occurrence first (an unchanged job's is its last one).
    jobs: dict[str, FineTuningJob] = field(default_factory=dict)
    #: Ids whose raw object had its remembered fingerprint: nothing to validate, diff or store.
    unchanged: set[str] = field(default_factory=set)
    #: The fingerprints of the objects read in full, to remember once the cycle is committed.
    fingerprints: dict[str, int] = field(default_factory=dict)
    #: The snapshot marks of the jobs diffed (see :func:`snapshot_mark`), likewise; None for a
    #: job whose state changed anyway, whose mark is then not worth computing.
    marks: dict[str, int | None] = field(default_factory=dict)
    #: Items dropped as malformed (each one was logged).
    skipped: int = 0

    def clear(self) -> None:
        """Forget what was read (it is stored): the next pages start a fresh chunk."""
        self.jobs.clear()
        self.unchanged.clear()
        self.fingerprints.clear()
        self.marks.clear()


class Fingerprints:
    """The fingerprint of the raw object each known job was last diffed from."""

    def __init__(self, *, whole_active: bool = True) -> None:
        """Start with none: every job takes the full path once.

        ``whole_active``: hand an unchanged job that may still change on as a whole model
        (validated again, never diffed), because progress reading builds events that carry
        it; without progress reading it stays lean like a finished one.
        """
        self.whole_active = whole_active
        self._by_id: dict[str, int] = {}
        #: The snapshot mark of each job as stored, to tell whether a diffed job needs storing.
        self.marks: dict[str, int] = {}

    def remember(self, states: Mapping[str, JobState]) -> dict[str, JobState]:
        """Take the states loaded from the store, and return them lean.

        Loaded states are lean already, their snapshots unread, so their marks are unknown:
        a job read in full for the first time after a restart is stored again, once.
        """
        return {job_id: lean(state) for job_id, state in states.items()}

    def __len__(self) -> int:
        """How many jobs have a fingerprint."""
        return len(self._by_id)

    def read(
        self,
        items: Sequence[Any],
        states: Mapping[str, JobState],
        into: JobsRead,
        *,
        source: str,
    ) -> list[FineTuningJob]:
        """Add one page's raw items to ``into``; return the page's valid jobs, in order.

        A job already in ``into`` keeps its first snapshot, as a cycle always did. A malformed
        item is logged, counted and left out.
        """
        try:
            # Ids and fingerprints for the whole page at once, without a Python frame per job:
            # an item that is not an object or not serialisable sends the page the slow way.
            ids: list[Any] = list(map(_get, items, repeat("id")))
            prints: list[int | None] = list(map(hash, map(_fingerprint_json, items)))
        except (ValueError, TypeError, RecursionError):
            return self._read_each(items, states, into, source=source)
        page = self._read_unchanged(ids, prints, items, states, into)
        if page is not None:
            return page
        return self._read_each(items, states, into, source=source, ids=ids, prints=prints)

    def _read_unchanged(
        self,
        ids: list[Any],
        prints: list[int | None],
        items: Sequence[Any],
        states: Mapping[str, JobState],
        into: JobsRead,
    ) -> list[FineTuningJob] | None:
        """Take a page none of whose jobs changed, all at once; None when one did (or is new)."""
        try:
            if list(map(self._by_id.get, ids)) != prints:
                return None
        except TypeError:  # an unhashable id
            return None
        jobs = into.jobs
        held_states = list(map(states.get, ids))
        if any(map(is_, held_states, repeat(None))) or not jobs.keys().isdisjoint(ids):
            return None
        if len(set(ids)) != len(ids):
            return None
        held: list[FineTuningJob] = list(map(_job_of, held_states))
        if self.whole_active:
            # Not diffed, but handed on whole: a job that may still change has progress and
            # stall events, which carry the job; the few active ones cost little next to the
            # finished mass.
            # Found without a Python loop over the finished mass: only the active ones loop.
            finished = map(_is_terminal_status, map(_status_of, held))
            for index in compress(range(len(held)), map(not_, finished)):
                with contextlib.suppress(ValidationError):
                    held[index] = validate_job(items[index])
        jobs.update(zip(ids, held, strict=True))
        into.unchanged.update(ids)
        return held

    def _read_each(
        self,
        items: Sequence[Any],
        states: Mapping[str, JobState],
        into: JobsRead,
        *,
        source: str,
        ids: list[Any] | None = None,
        prints: list[int | None] | None = None,
    ) -> list[FineTuningJob]:
        """:meth:`read`, job by job: for a page where some job changed or is malformed."""
        page: list[FineTuningJob] = []
        known, whole = self._by_id, self.whole_active
        jobs, unchanged, append = into.jobs, into.unchanged, page.append
        if ids is None:
            ids = [raw.get("id") if type(raw) is dict else None for raw in items]
        for index, raw in enumerate(items):
            job_id = ids[index]
            if type(job_id) is str:
                if job_id in jobs:
                    append(jobs[job_id])
                    continue
                mark = fingerprint(raw) if prints is None else prints[index]
                if mark is not None and known.get(job_id) == mark:
                    state = states.get(job_id)
                    if state is not None:
                        held = state.job
                        if whole and not held.is_terminal:
                            with contextlib.suppress(ValidationError):
                                held = validate_job(raw)
                        jobs[job_id] = held
                        unchanged.add(job_id)
                        append(held)
                        continue
            else:
                mark = None
            try:
                job = validate_job(raw)
            except ValidationError as exc:
                into.skipped += 1
                log.warning(
                    "api_item_skipped",
                    source=source,
                    operation="list_jobs",
                    index=index,
                    reason=validation_reason(exc),
                )
                continue
            _share_fields_set(job)
            jobs[job.id] = job
            if mark is not None and job_id == job.id:
                into.fingerprints[job.id] = mark
            append(job)
        return page

    def settle(
        self,
        read: JobsRead,
        changed: Mapping[str, JobState],
        states: MutableMapping[str, JobState],
    ) -> None:
        """After the cycle's commit: keep the changed states (lean), and what each was read from.

        A job diffed from an object without a fingerprint (a retrieve) forgets its old one.
        """
        for job_id, state in changed.items():
            states[job_id] = lean(state)
        for job_id, snapshot in read.marks.items():
            if snapshot is None:
                self.marks.pop(job_id, None)
            else:
                self.marks[job_id] = snapshot
        if len(read.unchanged) == len(read.jobs):
            return  # nothing was read in full: no fingerprint to keep or forget
        for job_id in read.jobs.keys() - read.unchanged:
            mark = read.fingerprints.get(job_id)
            if mark is None:
                self._by_id.pop(job_id, None)
            else:
                self._by_id[job_id] = mark


def diff_jobs(
    states: Mapping[str, JobState],
    read: JobsRead,
    *,
    source: str,
    now: float,
    announce_new: bool,
    marks: Mapping[str, int],
    link: Callable[[str], str | None] | None = None,
) -> tuple[dict[str, JobState], list[BaseEvent]]:
    """Diff every job of ``read`` but the unchanged ones against ``states``.

    Returns the states that changed (to store) and the events, in the order of the jobs. A
    state changed when it is new, its counts moved, or its snapshot's mark differs from the
    one in ``marks`` (the states in memory are lean: their snapshots cannot be compared).
    With ``link``, each event carries the dashboard link it gives for the event's job id.
    """
    changed: dict[str, JobState] = {}
    events: list[BaseEvent] = []
    unchanged = read.unchanged
    if len(unchanged) == len(read.jobs):
        return changed, events  # a steady-state cycle: nothing to diff (unchanged <= jobs)
    for job_id, job in read.jobs.items():
        if job_id in unchanged:
            continue
        previous = states.get(job_id)
        # The link is asked for only when the job changed: most jobs of a cycle have not.
        url = link(job_id) if link is not None and _may_emit(previous, job) else None
        state, new_events = diff(
            previous, job, source=source, now=now, announce_new=announce_new, dashboard_url=url
        )
        events.extend(new_events)
        if previous is None or previous.seen != state.seen:
            # Stored anyway, so no mark is computed: the next full read of it stores it again.
            changed[job_id] = state
            read.marks[job_id] = None
            continue
        mark = read.marks[job_id] = snapshot_mark(job)
        if marks.get(job_id) != mark:
            changed[job_id] = state
    return changed, events


def _may_emit(previous: JobState | None, job: FineTuningJob) -> bool:
    return previous is None or previous.job.status != job.status
