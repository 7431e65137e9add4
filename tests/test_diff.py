"""The pure diff, tried on every sequence of statuses hypothesis can think of, plus examples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.diff import JobState, diff
from watcher.events import (
    BaseEvent,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
)
from watcher.models import KNOWN_STATUSES, FineTuningJob, is_terminal

KNOWN = sorted(KNOWN_STATUSES)
UNKNOWN = ["paused", "pending", "weird_new_status"]
STATUSES = KNOWN + UNKNOWN
NON_TERMINAL = [status for status in STATUSES if not is_terminal(status)]
TERMINAL = [status for status in STATUSES if is_terminal(status)]

CREATED = "fine_tuning.job.created"
CHANGED = "fine_tuning.job.status_changed"
TERMINAL_TYPE = {status: f"fine_tuning.job.{status}" for status in TERMINAL}

JOB_ID = "ftjob-Df7Hj2Kl6Mn0Pq4Rs8Tu1Vw"
SOURCE = "openai"

statuses = st.sampled_from(STATUSES)
sequences = st.lists(statuses, min_size=1, max_size=12)
modest = settings(max_examples=200, deadline=None)


def job(status: str, job_id: str = JOB_ID, **fields: object) -> FineTuningJob:
    """A snapshot of the job in ``status``."""
    return FineTuningJob.model_validate({"id": job_id, "status": status, **fields})


@dataclass
class Run:
    """What diffing a sequence of snapshots produced: the events of each step and the states."""

    steps: list[list[BaseEvent]]
    states: list[JobState]

    @property
    def events(self) -> list[BaseEvent]:
        """Every event, in the order emitted."""
        return [event for step in self.steps for event in step]

    @property
    def ids(self) -> list[str]:
        """Every event id, in the order emitted."""
        return [event.id for event in self.events]

    def terminal_ids(self) -> list[str]:
        """The ids of the succeeded, failed and cancelled events."""
        return [e.id for e in self.events if isinstance(e, JobSucceeded | JobFailed | JobCancelled)]


def run(
    sequence: Sequence[str],
    *,
    announce_new: bool = True,
    source: str = SOURCE,
    job_id: str = JOB_ID,
    start: float = 1_733_836_800.0,
    step: float = 60.0,
) -> Run:
    """Diff the snapshots of ``sequence`` one after another, as a poller would."""
    state: JobState | None = None
    steps: list[list[BaseEvent]] = []
    states: list[JobState] = []
    for index, status in enumerate(sequence):
        state, events = diff(
            state,
            job(status, job_id),
            source=source,
            now=start + index * step,
            announce_new=announce_new,
        )
        steps.append(events)
        states.append(state)
    return Run(steps, states)


def collapse(sequence: Sequence[str]) -> list[str]:
    """The sequence with consecutive repeats folded into one."""
    out: list[str] = []
    for status in sequence:
        if not out or out[-1] != status:
            out.append(status)
    return out


def types(events: Sequence[BaseEvent]) -> list[str]:
    """The wire names of ``events``, in order."""
    return [event.type for event in events]


# --- properties -------------------------------------------------------------------------------


@modest
@given(sequence=sequences, announce_new=st.booleans())
def test_each_step_emits_exactly_the_events_its_change_means(
    sequence: list[str], announce_new: bool
) -> None:
    """No change gives nothing; a change gives status_changed, then the terminal event if any."""
    result = run(sequence, announce_new=announce_new)
    for index, (status, events) in enumerate(zip(sequence, result.steps, strict=True)):
        terminal = [TERMINAL_TYPE[status]] if is_terminal(status) else []
        if index == 0:
            expected = [CREATED, *terminal] if announce_new else []
        elif sequence[index - 1] == status:
            expected = []
        else:
            expected = [CHANGED, *terminal]
        assert types(events) == expected
        assert all(event.job.status == status for event in events)


@modest
@given(sequence=sequences, announce_new=st.booleans())
def test_replaying_the_events_reproduces_the_status_history(
    sequence: list[str], announce_new: bool
) -> None:
    """Applying created and status_changed events in order rebuilds the collapsed status history."""
    history = [] if announce_new else [sequence[0]]
    for event in run(sequence, announce_new=announce_new).events:
        if isinstance(event, JobCreated):
            assert history == []
            history.append(event.status)
        elif isinstance(event, JobStatusChanged):
            assert event.previous_status == history[-1]
            history.append(event.status)
    assert history == collapse(sequence)


@modest
@given(
    prefix=st.lists(st.sampled_from(NON_TERMINAL), max_size=8),
    terminal=st.sampled_from(TERMINAL),
    repeats=st.integers(min_value=1, max_value=4),
    announce_new=st.booleans(),
)
def test_a_terminal_event_is_emitted_once_for_a_job_that_settles(
    prefix: list[str], terminal: str, repeats: int, announce_new: bool
) -> None:
    """A job that settles in a terminal status gets its terminal event once (none if baseline)."""
    result = run([*prefix, *[terminal] * repeats], announce_new=announce_new)
    terminal_events = [e for e in result.events if e.type in TERMINAL_TYPE.values()]
    expected = 0 if (not prefix and not announce_new) else 1
    assert len(terminal_events) == expected
    if expected:
        assert terminal_events[0].type == TERMINAL_TYPE[terminal]
        assert result.steps[len(prefix)][-1] is terminal_events[0]


@modest
@given(sequence=sequences, announce_new=st.booleans(), shift=st.floats(-1e6, 1e6))
def test_ids_are_deterministic_and_unique_within_a_sequence(
    sequence: list[str], announce_new: bool, shift: float
) -> None:
    """The same sequence seen at other times gives the same ids, and no id repeats in it."""
    first = run(sequence, announce_new=announce_new)
    again = run(sequence, announce_new=announce_new, start=1_800_000_000.0 + shift, step=7.5)
    assert first.ids == again.ids
    assert len(set(first.ids)) == len(first.ids)


@modest
@given(sequence=sequences)
def test_ids_depend_on_the_job_and_the_source(sequence: list[str]) -> None:
    """The same history on another job or another source shares no event id."""
    ids = set(run(sequence).ids)
    assert ids.isdisjoint(run(sequence, job_id="ftjob-other").ids)
    assert ids.isdisjoint(run(sequence, source="azure").ids)


@modest
@given(
    prefix=st.lists(st.sampled_from(NON_TERMINAL), min_size=1, max_size=8),
    seen_by_second=st.lists(st.booleans(), min_size=8, max_size=8),
    terminal=st.sampled_from(TERMINAL),
)
def test_replicas_that_missed_statuses_agree_on_the_terminal_event_id(
    prefix: list[str], seen_by_second: list[bool], terminal: str
) -> None:
    """A replica that missed any intermediate statuses computes the same terminal event id."""
    second = [status for status, seen in zip(prefix, seen_by_second, strict=False) if seen]
    full = run([*prefix, terminal]).terminal_ids()
    partial = run([*second, terminal], start=1_900_000_000.0).terminal_ids()
    assert len(full) == 1
    assert partial == full


@modest
@given(sequence=sequences, announce_new=st.booleans())
def test_since_records_when_each_status_was_first_seen(
    sequence: list[str], announce_new: bool
) -> None:
    """``since`` maps each status the job has been in to the time it was first seen in it."""
    result = run(sequence, announce_new=announce_new, start=0.0, step=10.0)
    for index, state in enumerate(result.states):
        expected: dict[str, float] = {}
        for seen_at, status in enumerate(sequence[: index + 1]):
            expected.setdefault(status, seen_at * 10.0)
        assert dict(state.since) == expected
        for event in result.steps[index]:
            assert event.timeline == expected


@modest
@given(sequence=sequences, announce_new=st.booleans())
def test_the_state_always_holds_the_latest_snapshot(
    sequence: list[str], announce_new: bool
) -> None:
    """After every step the state holds the snapshot just diffed, event or not."""
    result = run(sequence, announce_new=announce_new)
    assert [state.job.status for state in result.states] == sequence


# --- examples ---------------------------------------------------------------------------------


def test_no_change_gives_no_event() -> None:
    """A snapshot with the same status as before gives no event but is remembered."""
    state, _ = diff(None, job("running"), source=SOURCE, now=1.0)
    newer = job("running", trained_tokens=1200)
    after, events = diff(state, newer, source=SOURCE, now=2.0)
    assert events == []
    assert after.job is newer
    assert after.seen == state.seen
    assert after.since == {"running": 1.0}


@pytest.mark.parametrize("status", STATUSES)
def test_a_silent_baseline_gives_no_event(status: str) -> None:
    """A first sighting with ``announce_new=False`` gives no event, finished or not."""
    state, events = diff(None, job(status), source=SOURCE, now=5.0, announce_new=False)
    assert events == []
    assert state.job.status == status
    assert state.since == {status: 5.0}


@pytest.mark.parametrize("status", NON_TERMINAL)
def test_a_new_unfinished_job_gives_created(status: str) -> None:
    """A first sighting with ``announce_new=True`` of an unfinished job gives just created."""
    _, events = diff(None, job(status), source=SOURCE, now=5.0)
    assert types(events) == [CREATED]
    assert events[0].previous_status is None
    assert events[0].observed_at == 5.0
    assert events[0].timeline == {status: 5.0}


@pytest.mark.parametrize(
    ("status", "cls"),
    [("succeeded", JobSucceeded), ("failed", JobFailed), ("cancelled", JobCancelled)],
)
def test_a_new_finished_job_gives_created_then_its_terminal_event(
    status: str, cls: type[BaseEvent]
) -> None:
    """A job already finished when first announced gives created, then its terminal event."""
    _, events = diff(None, job(status), source=SOURCE, now=5.0)
    assert types(events) == [CREATED, TERMINAL_TYPE[status]]
    assert isinstance(events[1], cls)
    assert events[1].previous_status is None


def test_a_change_gives_status_changed_then_the_terminal_event() -> None:
    """A change into succeeded gives status_changed first, then succeeded, both with the job."""
    state, _ = diff(None, job("running"), source=SOURCE, now=1.0, announce_new=False)
    done = job("succeeded", fine_tuned_model="ft:gpt-4o-mini:acme::x1", trained_tokens=99)
    _, events = diff(state, done, source=SOURCE, now=2.0)
    assert types(events) == [CHANGED, TERMINAL_TYPE["succeeded"]]
    assert [e.previous_status for e in events] == ["running", "running"]
    succeeded = events[1]
    assert isinstance(succeeded, JobSucceeded)
    assert succeeded.fine_tuned_model == "ft:gpt-4o-mini:acme::x1"
    assert succeeded.trained_tokens == 99


def test_a_repeated_transition_gets_a_distinct_id_each_time() -> None:
    """running -> paused twice gives two status_changed events with different ids."""
    result = run(["running", "paused", "running", "paused"], announce_new=False)
    to_paused = [e for e in result.events if (e.previous_status, e.status) == ("running", "paused")]
    assert len(to_paused) == 2
    assert to_paused[0].id != to_paused[1].id


def test_a_job_finished_again_gets_a_fresh_terminal_id() -> None:
    """A job that fails, is retried and fails again gets two failed events with different ids."""
    result = run(["running", "failed", "running", "failed"], announce_new=False)
    assert types(result.events).count(TERMINAL_TYPE["failed"]) == 2
    assert len(set(result.terminal_ids())) == 2


def test_a_baseline_replica_and_an_announcing_replica_agree_after_a_rerun() -> None:
    """Whether a finished job was announced or taken as baseline, its next terminal id agrees."""
    sequence = ["succeeded", "running", "succeeded"]
    announced = run(sequence, announce_new=True).terminal_ids()
    baseline = run(sequence, announce_new=False).terminal_ids()
    assert len(announced) == 2
    assert baseline == announced[1:]


def test_a_replica_that_missed_running_agrees_on_the_terminal_id() -> None:
    """One replica saw queued -> running -> succeeded, the other queued -> succeeded: same id."""
    full = run(["queued", "running", "succeeded"], announce_new=False)
    missed = run(["queued", "succeeded"], announce_new=False, start=2_000_000_000.0)
    assert full.terminal_ids() == missed.terminal_ids()
    assert len(full.terminal_ids()) == 1


def test_unknown_statuses_are_diffed_like_any_other() -> None:
    """paused, pending and a status nobody has heard of each give a plain status_changed."""
    sequence = ["queued", "pending", "running", "paused", "weird_new_status", "running"]
    result = run(sequence, announce_new=False)
    assert types(result.events) == [CHANGED] * 5
    pairs = [(e.previous_status, e.status) for e in result.events]
    assert pairs == list(itertools.pairwise(sequence))


def test_diffing_a_different_job_raises_value_error() -> None:
    """Handing the diff another job's snapshot is a programming error, reported as ValueError."""
    state, _ = diff(None, job("running"), source=SOURCE, now=1.0)
    with pytest.raises(ValueError, match="ftjob-someone-else"):
        diff(state, job("running", "ftjob-someone-else"), source=SOURCE, now=2.0)


def test_since_keeps_the_first_time_a_status_was_entered() -> None:
    """A job that resumes running keeps the time it first ran, and gains each new status."""
    result = run(["queued", "running", "paused", "running", "succeeded"], start=0.0, step=10.0)
    assert result.states[-1].since == {
        "queued": 0.0,
        "running": 10.0,
        "paused": 20.0,
        "succeeded": 40.0,
    }
    assert result.events[-1].timeline == result.states[-1].since


def test_event_ids_ignore_when_the_change_was_seen() -> None:
    """The same change observed at different times has the same id (a restart re-sees it)."""
    early = run(["running", "failed"], announce_new=False, start=100.0)
    late = run(["running", "failed"], announce_new=False, start=9_999.0)
    assert early.ids == late.ids
    assert [e.observed_at for e in early.events] != [e.observed_at for e in late.events]
