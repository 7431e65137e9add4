"""The journal's bytes for a cycle of changes are pinned: making the burst path cheaper never
changes one byte of what a sink is sent, nor of the snapshot the store keeps.

``fixtures/journal_bytes.json`` was written by the code before the burst was made cheaper
(events validated one by one, each envelope serialised whole); regenerate it only for a change
of the wire format that is meant: ``python tests/test_journal_bytes.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from watcher import known
from watcher.diff import _CHANGE_FIELDS, _CREATED_FIELDS, JobState
from watcher.events import (
    BaseEvent,
    JobCancelled,
    JobCreated,
    JobFailed,
    JobStatusChanged,
    JobSucceeded,
    event_from_envelope,
    lifecycle_event,
)
from watcher.models import validate_job
from watcher.snapshots import Fingerprints, JobsRead, diff_jobs
from watcher.store import journal

FIXTURES = Path(__file__).parent / "fixtures"
PINNED = FIXTURES / "journal_bytes.json"


def _jobs(status: str) -> list[dict[str, Any]]:
    """Jobs of many shapes, all in ``status``: the API's examples and some odd ones."""
    jobs = []
    for name in ("job_succeeded", "job_failed", "job_running", "job_dpo", "job_paused"):
        raw = json.loads((FIXTURES / f"{name}.json").read_text())
        jobs.append({**raw, "status": status})
    base = jobs[0]
    jobs += [
        # Unknown fields of every JSON type, floats spelt both ways, text that is not ASCII.
        {
            **base,
            "id": "ftjob-extra",
            "x_float": 1e-07,
            "x_big": 1.5e300,
            "x_int": 10**20,
            "x_list": [1, "two", None, {"three": 3.25}],
            "user_provided_suffix": "équipe-✓",
            "metadata": {"team": "ünïcode", "quote": 'say "hi"\n'},
        },
        # Wrong types in optional fields, read as missing; an error that says nothing.
        {**base, "id": "ftjob-odd", "seed": "not a number", "error": {}, "hyperparameters": None},
        {
            **base,
            "id": "ftjob-err",
            "error": {"code": "x", "message": "went wrong", "param": None},
            "finished_at": None,
        },
        # Only what is required.
        {"id": "ftjob-bare", "status": status},
    ]
    return jobs


def journal_rows() -> list[list[Any]]:
    """The rows one baseline and three cycles of changes write, through the poller's path."""
    # The lean states' shared mappings are process-wide, and equal counts and times share one
    # (1750000000 and 1750000000.0 alike): start afresh, so other tests' times do not leak in.
    known._SHARED.clear()
    prints = Fingerprints()
    states: dict[str, JobState] = {}
    out: list[list[Any]] = []
    cycles: list[tuple[str, float, bool]] = [
        ("running", 1_750_000_000, False),  # the silent baseline, at an int time
        ("succeeded", 1_750_000_060.25, True),
        ("running", 1_750_000_120.5, True),
        ("failed", 1_750_000_180, True),
    ]
    extra_new = {"id": "ftjob-new", "status": "cancelled", "created_at": 1_750_000_100}
    for number, (status, now, announce) in enumerate(cycles):
        items: list[Any] = _jobs(status)
        if number == 2:
            items.append(extra_new)  # a job not seen before, already finished
        read = JobsRead()
        prints.read(items, states, read, source="src")
        changed, events = diff_jobs(
            states,
            read,
            source="src",
            now=now,
            announce_new=announce,
            marks=prints.marks,
            link=lambda job_id: None if job_id.endswith("odd") else f"https://x.test/{job_id}",
        )
        snapshots, entries = journal.serialise_cycle("src", list(changed.items()), events, now)
        out += [["snapshot", *row] for row in snapshots]
        out += [["event", *row] for row in entries]
        prints.settle(read, changed, states)
    return out


def test_a_cycle_journals_the_pinned_bytes() -> None:
    """Every event's journal text and every snapshot row are the bytes pinned."""
    rows = journal_rows()
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert len(rows) == len(pinned)
    for row, want in zip(rows, pinned, strict=True):
        assert row == want


def test_the_journaled_text_reads_back_to_the_same_text() -> None:
    """An event rebuilt from its journal text (as delivery does it) serialises to that text."""
    for row in journal_rows():
        if row[0] == "event":
            text = row[-1]
            event = event_from_envelope(text)
            assert event.model_copy(update={"source": event.source}).to_json() == text


@pytest.mark.parametrize(
    "cls", [JobCreated, JobStatusChanged, JobSucceeded, JobFailed, JobCancelled]
)
@pytest.mark.parametrize("given", [_CREATED_FIELDS, _CHANGE_FIELDS])
def test_an_event_built_without_validation_is_the_validated_one(
    cls: type[BaseEvent], given: frozenset[str]
) -> None:
    """The diff's unvalidated events equal, dump and serialise as the validated ones would.

    Integer times included: validation makes them floats, and so does the fast path.
    """
    job = validate_job(json.loads((FIXTURES / "job_failed.json").read_text()))
    values: dict[str, Any] = {
        "id": "evt_1",
        "source": "src",
        "observed_at": 1_750_000_000,
        "previous_status": None if "previous_status" not in given else "running",
        "job": job,
        "timeline": {"running": 1_749_999_000, "failed": 1_750_000_000.5},
        "dashboard_url": "https://x.test/j",
    }
    validated = cls(**{name: values[name] for name in given})
    fast = lifecycle_event(cls, given, event_id=values.pop("id"), **values)
    assert type(fast) is cls
    assert fast == validated
    assert fast.model_dump() == validated.model_dump()
    assert fast.__pydantic_fields_set__ == validated.__pydantic_fields_set__
    assert fast.to_json() == validated.to_json()
    assert fast.to_json(job_json=job.model_dump_json(by_alias=True)) == validated.to_json()
    assert fast.timeline is not values["timeline"]  # its own, as validation makes it


if __name__ == "__main__":  # regenerate the pinned bytes (see the module's docstring)
    PINNED.write_text(json.dumps(journal_rows(), indent=1, ensure_ascii=False) + "\n")
    sys.exit(0)
