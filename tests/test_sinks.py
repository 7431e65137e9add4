"""Routing keys every sink shares, and the registry's door for plugins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.abc import AsyncResource
from tests.helpers import events_for, job

from watcher import (
    PluginError,
    SinkBase,
    SinkConfig,
    SinkRejected,
    SinkUnavailable,
    available_sinks,
    register_sink,
    sink_plugin,
    unregister_sink,
)
from watcher.events import JobFailed
from watcher.logs import register_secret


def _failed(**fields: object) -> JobFailed:
    [_, failed] = events_for("ftjob-r", ["running", "failed"])
    assert isinstance(failed, JobFailed)
    return failed.model_copy(update={"job": job("ftjob-r", "failed", **fields)})


def _sink(**routing: object) -> SinkConfig:
    return SinkConfig.model_validate({"name": "s", "type": "x", **routing})


async def test_a_sink_base_closes_when_its_block_ends() -> None:
    """SinkBase is an anyio AsyncResource: leaving ``async with`` calls the sink's aclose."""

    class Closing(SinkBase):
        closed = 0

        async def aclose(self) -> None:
            Closing.closed += 1

    sink = Closing(_sink())
    assert isinstance(sink, AsyncResource)
    with pytest.raises(RuntimeError):  # noqa: PT012 - the block is what is under test
        async with sink as entered:
            assert entered is sink
            raise RuntimeError("boom")
    assert Closing.closed == 1


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


@pytest.fixture
def odd_plugins(tmp_path: Path) -> Iterator[None]:
    """Install a distribution with two bad entry points: a missing module, a modelless class."""
    (tmp_path / "acme_odd.py").write_text("class NoModel:\n    pass\n")
    dist = tmp_path / "acme_odd-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-odd\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text(
        "[ftwatch.sinks]\nodd-missing = acme_gone:Sink\nodd-modelless = acme_odd:NoModel\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_odd", None)


def test_broken_entry_points_are_listed_with_their_reason(odd_plugins: None) -> None:
    """available_sinks() lists broken types beside the good ones, each with why it cannot load."""
    found = available_sinks()
    assert found["webhook"].error is None
    missing = found["odd-missing"]
    assert missing.origin == "acme-odd 0.3.0"
    assert missing.target == "acme_gone:Sink"
    assert missing.error == "ModuleNotFoundError: No module named 'acme_gone'"
    assert found["odd-modelless"].error == (
        "it has no `config_model` attribute that subclasses watcher.SinkConfig"
    )
    with pytest.raises(PluginError, match="No module named 'acme_gone'"):
        missing.config_model  # noqa: B018 - the property raises
    with pytest.raises(PluginError, match="No module named 'acme_gone'"):
        missing.factory(SinkConfig(name="s", type="odd-missing"))


def test_a_broken_entry_point_is_refused_by_name_with_one_sentence(odd_plugins: None) -> None:
    """sink_plugin() on a broken type raises one sentence: entry point, origin, reason, fix."""
    with pytest.raises(PluginError) as caught:
        sink_plugin("odd-missing")
    assert str(caught.value) == (
        "sink plugin 'odd-missing' (acme_gone:Sink, from acme-odd 0.3.0) cannot be loaded: "
        "ModuleNotFoundError: No module named 'acme_gone'; reinstall the package that provides it"
    )
    with pytest.raises(PluginError, match=r"config_model.*report this to the plugin's authors"):
        sink_plugin("odd-modelless")


class _PickySink(SinkBase):
    """A sink whose constructor refuses its config, quoting a secret as careless plugins do."""

    def __init__(self, config: SinkConfig) -> None:
        raise ValueError("bad url https://hooks.example.com/T0/B0/hunter2secretpart")


@pytest.fixture
def picky_sink() -> Iterator[str]:
    """Register _PickySink in code under a type name of its own."""
    register_sink("picky", _PickySink)
    register_secret("hunter2secretpart")
    try:
        yield "picky"
    finally:
        unregister_sink("picky")


def test_build_turns_a_constructor_error_into_one_plugin_error(picky_sink: str) -> None:
    """A raising constructor becomes a PluginError naming sink, type and error, secrets masked."""
    with pytest.raises(PluginError) as caught:
        sink_plugin(picky_sink).build(SinkConfig(name="b", type=picky_sink))
    assert str(caught.value) == (
        "sink 'b' (type 'picky') could not be built: "
        "ValueError: bad url https://hooks.example.com/T0/B0/********"
    )
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_sink_error_names_its_sink_once_and_keeps_the_reason_apart() -> None:
    """The message leads with the sink's name; ``reason`` is the text without it."""
    error = SinkUnavailable("the receiver refused the connection", sink="hooks", retry_after=3)
    assert str(error) == "sink 'hooks': the receiver refused the connection"
    assert error.reason == "the receiver refused the connection"
    assert (error.sink, error.retry_after) == ("hooks", 3)
    assert str(SinkRejected("bad request")) == "bad request"
