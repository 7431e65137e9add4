"""The poller's index of known jobs: kept as jobs change, it always says what a full scan says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.diff import JobState
from watcher.known import JobIndex, LeanJob, lean, order_key
from watcher.models import FineTuningJob

IDS = tuple(f"ftjob-{n}" for n in range(6))
STATUSES = ("validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled")

changes = st.dictionaries(
    st.sampled_from(IDS),
    st.tuples(st.sampled_from(STATUSES), st.sampled_from((None, 0, 5, 9))),
    max_size=4,
)


def _state(job_id: str, status: str, created_at: int | None) -> JobState:
    job = FineTuningJob.model_validate({"id": job_id, "status": status, "created_at": created_at})
    return JobState(job, {"a>b": 1}, {status: 1.0})


def _scan_active(states: dict[str, JobState], gone: set[str]) -> list[str]:
    return [j for j, s in states.items() if not s.job.is_terminal and j not in gone]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(changes, max_size=12),
    st.sets(st.sampled_from(IDS), max_size=2),
    st.integers(0, 12),
    st.sampled_from((1, 2, 64)),
)
def test_the_kept_index_equals_a_scan_after_any_changes(
    cycles: list[dict[str, tuple[str, int | None]]], gone: set[str], restart_at: int, batch: int
) -> None:
    """Active jobs and jobs-between counts match a scan of the states, restarts included.

    ``batch`` small makes updates append their keys unsorted (as a baseline's chunks do).
    """
    states: dict[str, JobState] = {}
    index = JobIndex(batch=batch)
    for number, cycle in enumerate(cycles):
        if number == restart_at:
            # A restart indexes what was loaded from scratch.
            index = JobIndex(batch=batch)
            index.reset(states)
        changed = {j: _state(j, status, created) for j, (status, created) in cycle.items()}
        index.update(changed, states)
        states.update({j: lean(s) for j, s in changed.items()})

        active = index.active(gone)
        assert len(active) == len(set(active))
        assert set(active) == set(_scan_active(states, gone))
        keys = [order_key(s.job) for s in states.values()]
        assert len(index) == len(keys)
        for low in [*keys, (0, "")]:
            for high in [*keys, (10, "")]:
                expected = sum(1 for k in keys if low <= k < high)
                assert index.count_between(low, high) == expected


def test_a_lean_state_keeps_three_fields_and_shares_its_counts() -> None:
    """Lean states hold no snapshot, compare by value, and share equal seen/since mappings."""
    one = lean(_state("ftjob-1", "succeeded", 3))
    two = lean(_state("ftjob-2", "succeeded", 4))
    assert one.job == LeanJob("ftjob-1", "succeeded", 3)
    assert one.job.is_terminal
    assert not hasattr(one.job, "model")
    assert one.seen is two.seen and one.since is two.since
    assert lean(one) is one
