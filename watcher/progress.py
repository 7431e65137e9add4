"""Beyond status flips: a source's progress, checkpoints, API messages, stalls and ETA changes.

The poller calls :meth:`ProgressWatch.observe` once a cycle with the jobs it read. The cost is
bounded: a job's ``/events`` is read only while it runs, at most once per
``progress_interval`` (and once more when it ends, for its last entries), newest first and
only down to the newest entry seen before; ``/checkpoints`` only when the event stream
announces a checkpoint, or at the end. Stalls and ETA changes come from what the cycle already
read. What each job's reads reached is kept in the state (:class:`~watcher.tracking.JobTrack`),
so a restart announces nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from .client import APIClient
from .config import SourceConfig
from .durations import parse_duration
from .errors import APIError, AuthenticationError, NotFoundError
from .events import BaseEvent, JobCheckpointCreated, JobMessage, event_id
from .models import FineTuningJob, JobEventRecord
from .store import StateStore
from .tracking import (
    JobTrack,
    Rules,
    check_eta,
    check_stall,
    mark_sent,
    note_metrics,
    note_status,
    parse_metrics,
    progress_event,
    throttle_allows,
)

__all__ = ["ProgressWatch", "in_job_order", "read_new_records", "rules_of"]

log = structlog.get_logger(__name__)

#: Pages of a job's events read at most per visit (100 entries each); older ones are skipped.
MAX_EVENT_PAGES = 3
_LEVELS = {"info": 0, "warn": 1, "warning": 1, "error": 2}
#: Statuses whose clock starts at the job's ``created_at`` when ftwatch first sees the job.
_FROM_CREATION = frozenset({"validating_files", "queued"})


def in_job_order(
    early: Sequence[BaseEvent], lifecycle: Sequence[BaseEvent], late: Sequence[BaseEvent]
) -> list[BaseEvent]:
    """One cycle's events with each job's in the order they happened.

    A job's metrics, checkpoints and messages came before the status change the cycle saw,
    but after its creation: a job new this cycle gets its ``created`` first. Stalls,
    unstalls and ETA changes follow everything else.
    """
    if not early:
        return [*lifecycle, *late]
    first = [e for e in lifecycle if e.type == "fine_tuning.job.created"]
    rest = [e for e in lifecycle if e.type != "fine_tuning.job.created"]
    return [*first, *early, *rest, *late]


def rules_of(config: SourceConfig) -> Rules:
    """The progress rules of a source's config."""
    every = config.progress_every
    percent = every.endswith("%")
    return Rules(
        stall_validating=config.stall_validating,
        stall_queued=config.stall_queued,
        stall_no_progress=config.stall_no_progress,
        every_percent=float(every[:-1]) if percent else None,
        every_seconds=None if percent else parse_duration(every),
        eta_shift=config.eta_shift,
        eta_shift_ratio=config.eta_shift_ratio,
    )


async def read_new_records(
    client: APIClient, job_id: str, last_seen: str | None
) -> tuple[list[JobEventRecord], int]:
    """A job's events newer than ``last_seen``, oldest first, and how many pages that took.

    Read newest first down to ``last_seen`` (at most :data:`MAX_EVENT_PAGES` pages); with no
    ``last_seen``, only the first page: a job's history is never read whole. The daemon and
    ``ftwatch watch`` both read the stream this way.
    """
    found: list[JobEventRecord] = []
    after: str | None = None
    pages = 0
    while pages < MAX_EVENT_PAGES:
        pages += 1
        page = await client.list_job_events(job_id, limit=100, after=after)
        reached = False
        for record in page.items:
            if record.id == last_seen:
                reached = True
                break
            found.append(record)
        if reached or not page.has_more or last_seen is None:
            break
        after = page.last_id
    found.reverse()
    return found, pages


class ProgressWatch:
    """One source's progress tracking: call :meth:`load` once, then :meth:`observe` each cycle."""

    def __init__(self, config: SourceConfig, client: APIClient, store: StateStore) -> None:
        """Set up for ``config``'s source; nothing is read until :meth:`load`."""
        self.config = config
        self.client = client
        self.store = store
        self.rules = rules_of(config)
        self.tracks: dict[str, JobTrack] = {}
        self._dirty: dict[str, JobTrack | None] = {}
        #: Requests made, for the bench and tests.
        self.requests = 0

    @property
    def source(self) -> str:
        """The source's name."""
        return self.config.name

    async def load(self) -> None:
        """Read the tracks the state remembers."""
        stored = await self.store.load_progress(self.source)
        self.tracks = {job_id: JobTrack.from_json(data) for job_id, data in stored.items()}

    async def observe(
        self,
        jobs: Iterable[FineTuningJob],
        *,
        known: Mapping[str, Any],
        now: float,
        baselined: bool,
        announce_new: bool,
    ) -> tuple[list[BaseEvent], list[BaseEvent]]:
        """Read what is due for ``jobs`` (this cycle's non-terminal or just-ended ones).

        ``known`` holds the ids the source knew before this cycle; ``baselined`` says whether
        the source's baseline is recorded by the end of this cycle (stalls wait for it);
        ``announce_new`` whether a job new this cycle has its history announced (after the
        baseline, or with ``emit_existing``) or only marked as read.
        Returns the events that happened before the cycle's status changes (metrics,
        checkpoints, messages) and those that follow them (stalls, unstalls, ETA changes).
        """
        if not self.config.progress:
            return [], []
        try:
            return await self._observe(
                jobs, known=known, now=now, baselined=baselined, announce_new=announce_new
            )
        except AuthenticationError:
            raise
        except Exception:
            # A bug or an unforeseen answer here must not cost the cycle's lifecycle events.
            log.exception("progress_failed", source=self.source)
            # Forget what this cycle moved: the next one reads again from the stored tracks.
            self._dirty.clear()
            await self.load()
            return [], []

    async def _observe(
        self,
        jobs: Iterable[FineTuningJob],
        *,
        known: Mapping[str, Any],
        now: float,
        baselined: bool,
        announce_new: bool,
    ) -> tuple[list[BaseEvent], list[BaseEvent]]:
        early: list[tuple[float, int, BaseEvent]] = []
        late: list[BaseEvent] = []
        for job in jobs:
            track = self.tracks.get(job.id)
            if track is None:
                if job.is_terminal:
                    continue
                track = self._new_track(job, now, announce=announce_new and job.id not in known)
            ended = job.is_terminal
            was_running = track.status == "running"
            changed = note_status(track, job.status, now)
            if changed and ended and was_running:
                # Its last entries, and the progress the throttle held back, before the end.
                early.extend(await self._read(job, track, now, final=True))
            if job.status == "running" and (
                track.read_at is None or now - track.read_at >= self.config.progress_interval
            ):
                early.extend(await self._read(job, track, now, final=False))
            if baselined:
                link = self.config.job_link(job.id)
                late.extend(
                    check_stall(
                        track, job, now=now, rules=self.rules, source=self.source, link=link
                    )
                )
                late.extend(
                    check_eta(track, job, now=now, rules=self.rules, source=self.source, link=link)
                )
            self._dirty[job.id] = None if ended else track
            if ended:
                self.tracks.pop(job.id, None)
        early.sort(key=lambda item: item[:2])
        return [event for *_, event in early], late

    async def save(self, now: float) -> None:
        """Store the tracks changed since the last save (after the cycle's events are journaled)."""
        if not self._dirty:
            return
        dirty = {k: None if t is None else t.to_json() for k, t in self._dirty.items()}
        await self.store.save_progress(self.source, dirty, now=now)
        self._dirty.clear()

    # -- per job ------------------------------------------------------------------------------

    def _new_track(self, job: FineTuningJob, now: float, *, announce: bool) -> JobTrack:
        since = now
        if job.status in _FROM_CREATION and job.created_at is not None:
            since = min(now, float(job.created_at))
        track = JobTrack(status=job.status, status_since=since, announce=announce)
        self.tracks[job.id] = track
        return track

    async def _read(
        self, job: FineTuningJob, track: JobTrack, now: float, *, final: bool
    ) -> list[tuple[float, int, BaseEvent]]:
        """Read the job's new events (and checkpoints when due); return the events they mean."""
        track.read_at = now
        try:
            records = await self._new_records(job.id, track)
        except (APIError, NotFoundError) as exc:
            if isinstance(exc, AuthenticationError):
                raise
            log.warning("progress_read_failed", source=self.source, job_id=job.id, error=str(exc))
            return []
        announce = track.announce
        track.announce = True
        out: list[tuple[float, int, BaseEvent]] = []
        latest: dict[str, Any] | None = None
        checkpoint_hint = False
        for record in records:
            at = float(record.created_at) if record.created_at is not None else now
            if record.type == "metrics":
                fields = parse_metrics(record, source=self.source, job_id=job.id)
                if fields is None:
                    continue
                if not note_metrics(track, fields["step"], at):
                    log.debug("metrics_out_of_order", source=self.source, job_id=job.id)
                    continue
                latest = fields
                continue
            message = record.message or ""
            checkpoint_hint = checkpoint_hint or "checkpoint" in message.lower()
            if announce and self._wants_level(record.level):
                out.append((at, 1, self._message(job, record, now)))
        if latest is not None and announce:
            track.pending = latest
        if track.pending is not None and (
            final or throttle_allows(track, track.pending, now, self.rules)
        ):
            fields = track.pending
            if fields.get("step") != track.sent_step:
                event = progress_event(
                    fields, job, source=self.source, now=now, link=self.config.job_link(job.id)
                )
                out.append((track.metrics_at or now, 0, event))
            mark_sent(track, fields, now)
        if checkpoint_hint or final or (track.last_checkpoint_id is None and not announce):
            out.extend(await self._checkpoints(job, track, now, announce=announce))
        return out

    async def _new_records(self, job_id: str, track: JobTrack) -> list[JobEventRecord]:
        """The job's events newer than the cursor, oldest first; moves the cursor."""
        found, pages = await read_new_records(self.client, job_id, track.last_event_id)
        self.requests += pages
        if found:
            track.last_event_id = found[-1].id
        return found

    async def _checkpoints(
        self, job: FineTuningJob, track: JobTrack, now: float, *, announce: bool
    ) -> list[tuple[float, int, BaseEvent]]:
        self.requests += 1
        try:
            page = await self.client.list_checkpoints(job.id, limit=10)
        except APIError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            log.warning("checkpoints_read_failed", source=self.source, job_id=job.id)
            return []
        new = []
        for checkpoint in page.items:
            if checkpoint.id == track.last_checkpoint_id:
                break
            new.append(checkpoint)
        if new:
            track.last_checkpoint_id = new[0].id
        if not announce:
            return []
        out: list[tuple[float, int, BaseEvent]] = []
        link = self.config.job_link(job.id)
        for checkpoint in reversed(new):
            at = float(checkpoint.created_at) if checkpoint.created_at is not None else now
            event = JobCheckpointCreated(
                id=event_id(self.source, job.id, "checkpoint", checkpoint.id),
                source=self.source,
                observed_at=now,
                job=job,
                dashboard_url=link,
                checkpoint_id=checkpoint.id,
                step_number=checkpoint.step_number,
                fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
                metrics=dict(checkpoint.metrics or {}),
            )
            out.append((at, 2, event))
        return out

    def _wants_level(self, level: str | None) -> bool:
        wanted = self.config.progress_messages
        if wanted == "off":
            return False
        return _LEVELS.get((level or "info").lower(), 0) >= _LEVELS[wanted]

    def _message(self, job: FineTuningJob, record: JobEventRecord, now: float) -> JobMessage:
        return JobMessage(
            id=event_id(self.source, job.id, "message", record.id),
            source=self.source,
            observed_at=now,
            job=job,
            dashboard_url=self.config.job_link(job.id),
            level=(record.level or "info").lower(),
            message=record.message or "",
            api_event_id=record.id,
            api_created_at=None if record.created_at is None else float(record.created_at),
        )
