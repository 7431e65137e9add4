"""Reading a cycle's job objects: skipping unchanged ones never changes what a cycle emits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from watcher.diff import JobState
from watcher.events import BaseEvent
from watcher.models import FineTuningJob
from watcher.snapshots import Fingerprints, JobsRead, diff_jobs, fingerprint

IDS = ("ftjob-a", "ftjob-b", "ftjob-c")
STATUSES = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
# Values that compare equal in Python but validate or serialise differently, and some wrong types.
ODD_VALUES = (None, 0, 1, True, 1.0, "1", math.nan, [], {}, {"code": "x"})

raw_jobs = st.builds(
    lambda job_id, status, tokens, extra, error: {
        "id": job_id,
        "object": "fine_tuning.job",
        "status": status,
        "trained_tokens": tokens,
        "extra": extra,
        "error": error,
    },
    st.sampled_from(IDS),
    st.sampled_from(STATUSES),
    st.sampled_from(ODD_VALUES),
    st.sampled_from(ODD_VALUES),
    st.sampled_from(ODD_VALUES),
)
# Malformed items too: a wrong status type, no id, not an object at all.
items = st.one_of(
    raw_jobs,
    raw_jobs,
    raw_jobs,
    st.builds(lambda job_id: {"id": job_id, "status": 5}, st.sampled_from(IDS)),
    st.just({"status": "running"}),
    st.just("ftjob-a"),
)


@dataclass
class Cycle:
    """One cycle's input: the listed objects, the retrieved ones, and whether its commit fails."""

    listed: list[Any]
    retrieved: list[dict[str, Any]]
    commit_fails: bool


cycles = st.lists(
    st.builds(
        Cycle,
        st.lists(items, max_size=6),
        st.lists(raw_jobs, max_size=2),
        st.sampled_from((False, False, False, True)),
    ),
    max_size=8,
)


class Run:
    """A poller's memory across cycles, reading with fingerprints or (``full``) without."""

    def __init__(self, *, full: bool) -> None:
        self.full = full
        self.states: dict[str, JobState] = {}
        #: What the store would hold: every state a committed cycle wrote.
        self.stored: dict[str, JobState] = {}
        self.fingerprints = Fingerprints()

    def cycle(self, cycle: Cycle, now: float, announce: bool) -> tuple[list[BaseEvent], int]:
        """Run one cycle as the poller does; return what it would emit and skip."""
        prints = self.fingerprints
        read = JobsRead()
        # The full path: no known state to skip to, so every object is validated and diffed.
        prints.read(cycle.listed, {} if self.full else self.states, read, source="s")
        for raw in cycle.retrieved:
            # A retrieve: validated whole, no fingerprint, and only for a job not listed.
            read.jobs.setdefault(raw["id"], FineTuningJob.model_validate(raw))
        changed, events = diff_jobs(
            self.states, read, source="s", now=now, announce_new=announce, marks=prints.marks
        )
        if not cycle.commit_fails:
            self.stored.update(changed)
            prints.settle(read, changed, self.states)
        return events, read.skipped


@settings(max_examples=300, deadline=None)
@given(history=cycles, announce_first=st.booleans())
def test_skipping_unchanged_objects_gives_the_events_and_states_of_the_full_path(
    history: list[Cycle], announce_first: bool
) -> None:
    """Cycle after cycle, the fingerprint path emits, skips and stores what the full path does.

    (The full path may write a snapshot again unchanged; what the store holds is the same.)
    """
    full, fast = Run(full=True), Run(full=False)
    for index, cycle in enumerate(history):
        announce = announce_first or index > 0
        now = 1000.0 + index
        assert fast.cycle(cycle, now, announce) == full.cycle(cycle, now, announce)
        assert fast.stored == full.stored
        assert fast.states == full.states


def test_an_unchanged_active_job_is_handed_on_whole_without_events() -> None:
    """A job that may still change is validated again (its progress and stall events carry
    the whole job), and an unchanged one still gives no event and no state to store."""
    raw = {"id": "ftjob-a", "status": "running", "trained_tokens": 5, "created_at": 7}
    prints = Fingerprints()
    states: dict[str, JobState] = {}
    first = JobsRead()
    prints.read([raw], states, first, source="s")
    changed, _ = diff_jobs(
        states, first, source="s", now=1.0, announce_new=False, marks=prints.marks
    )
    prints.settle(first, changed, states)
    again = JobsRead()
    [job] = prints.read([dict(raw)], states, again, source="s")
    assert isinstance(job, FineTuningJob) and job.trained_tokens == 5
    # Without progress reading nothing needs the whole job: it stays lean, like a finished one.
    prints.whole_active = False
    [lean_again] = prints.read([dict(raw)], states, JobsRead(), source="s")
    assert lean_again is states["ftjob-a"].job and not hasattr(lean_again, "trained_tokens")
    prints.whole_active = True
    assert diff_jobs(states, again, source="s", now=2.0, announce_new=True, marks=prints.marks) == (
        {},
        [],
    )


def test_an_unchanged_object_is_not_validated_again() -> None:
    """A finished job read again from the same object is marked unchanged, keeps its lean state."""
    raw = {"id": "ftjob-a", "status": "succeeded", "trained_tokens": 5, "created_at": 7}
    prints = Fingerprints()
    states: dict[str, JobState] = {}
    first = JobsRead()
    prints.read([raw], states, first, source="s")
    changed, _ = diff_jobs(
        states, first, source="s", now=1.0, announce_new=False, marks=prints.marks
    )
    prints.settle(first, changed, states)
    kept = states["ftjob-a"].job
    assert (kept.id, kept.status, kept.created_at) == ("ftjob-a", "succeeded", 7)
    # The full snapshot is the store's, not memory's.
    assert not hasattr(kept, "trained_tokens")

    again = JobsRead()
    [job] = prints.read([dict(raw)], states, again, source="s")
    assert again.unchanged == {"ftjob-a"}
    assert job is kept
    assert diff_jobs(states, again, source="s", now=2.0, announce_new=True, marks=prints.marks) == (
        {},
        [],
    )

    moved = JobsRead()
    prints.read([{**raw, "trained_tokens": 6}], states, moved, source="s")
    assert moved.unchanged == set()
    changed, events = diff_jobs(
        states, moved, source="s", now=3.0, announce_new=True, marks=prints.marks
    )
    assert list(changed) == ["ftjob-a"]
    assert changed["ftjob-a"].job.trained_tokens == 6
    assert events == []


def test_fingerprints_tell_types_apart() -> None:
    """Objects Python calls equal (1, True, 1.0; NaN and null) get different fingerprints."""
    marks = {fingerprint({"x": value}) for value in (1, True, 1.0, None, math.nan)}
    assert len(marks) == 5
    assert fingerprint({"x": "\ud800"}) is None


def test_a_malformed_item_is_logged_counted_and_left_out_without_its_body() -> None:
    """A page's bad item costs only itself: one warning naming where, never the value."""
    prints = Fingerprints()
    read = JobsRead()
    items = [
        {"id": "ftjob-a", "status": "running"},
        {"id": "ftjob-b", "status": 5, "secret": "sk-do-not-log"},
        "not an object",
        {"id": "ftjob-c", "status": "queued"},
    ]
    with capture_logs() as logs:
        page = prints.read(items, {}, read, source="s")
    assert [job.id for job in page] == ["ftjob-a", "ftjob-c"]
    assert read.skipped == 2
    skipped = [e for e in logs if e["event"] == "api_item_skipped"]
    assert [(e["index"], e["log_level"], e["source"]) for e in skipped] == [
        (1, "warning", "s"),
        (2, "warning", "s"),
    ]
    assert skipped[0]["reason"] == "status: string_type"
    assert "sk-do-not-log" not in repr(logs)
