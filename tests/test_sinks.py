"""Routing keys every sink shares, and the registry's door for plugins."""

from __future__ import annotations

import pytest
from tests.helpers import events_for, job

from watcher import PluginError, SinkConfig, available_sinks, sink_plugin
from watcher.events import JobFailed


def _failed(**fields: object) -> JobFailed:
    [_, failed] = events_for("ftjob-r", ["running", "failed"])
    assert isinstance(failed, JobFailed)
    return failed.model_copy(update={"job": job("ftjob-r", "failed", **fields)})


def _sink(**routing: object) -> SinkConfig:
    return SinkConfig.model_validate({"name": "s", "type": "x", **routing})


def test_event_globs_route_by_type() -> None:
    """`events` takes exact names and globs."""
    event = _failed()
    assert _sink().wants(event)
    assert _sink(events=["fine_tuning.job.*"]).wants(event)
    assert _sink(events=["fine_tuning.job.failed"]).wants(event)
    assert not _sink(events=["fine_tuning.job.succeeded"]).wants(event)


def test_job_filters_all_have_to_match() -> None:
    """models, suffixes, metadata and sources each filter; together they all must match."""
    event = _failed(
        model="gpt-4o-mini-2024-07-18", user_provided_suffix="bot", metadata={"team": "ml"}
    )
    assert _sink(models=["gpt-4o-mini*"], suffixes=["b*"], metadata={"team": "ml"}).wants(event)
    assert not _sink(models=["gpt-4.1*"]).wants(event)
    assert not _sink(suffixes=["other"]).wants(event)
    assert not _sink(metadata={"team": "infra"}).wants(event)
    assert _sink(sources=["test"]).wants(event)
    assert _sink(sources=["prod", "te*"]).wants(event)  # globs, as for models and suffixes
    assert not _sink(sources=["prod"]).wants(event)
    assert not _sink(sources=["tes"]).wants(event)
    assert not _sink(suffixes=["*"]).wants(_failed(user_provided_suffix=None))


def test_an_events_pattern_that_matches_nothing_is_refused() -> None:
    """A typo in `events` is caught at load time, with the known types listed."""
    with pytest.raises(ValueError, match="matches no event type"):
        _sink(events=["fine_tuning.jobs.failed"])


def test_the_built_in_sinks_enter_through_the_entry_point_group() -> None:
    """Every built-in sink is found as an installed plugin of the ftwatch distribution."""
    found = available_sinks()
    for name in ("logfile", "slack", "stdout", "webhook"):
        assert found[name].origin.startswith("ftwatch ")
    with pytest.raises(PluginError, match=r"known types: .*webhook"):
        sink_plugin("pagerduty-typo")
