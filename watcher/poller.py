"""One source's loop: when to poll, how many pages to read, what to retrieve one by one.

Steady-state cost is what matters here: the API is rate-limited and a platform team may have
thousands of finished jobs. The list endpoint returns jobs newest first, so a cycle reads the
first page, which shows every new job and usually every active one, and goes deeper only while
that is cheaper than retrieving the active jobs it has not seen yet one by one. Finished jobs
are never fetched again. Pagination is bounded (``max_pages``, repeated cursors, empty pages)
and so are single retrieves (``max_retrieves``, oldest-checked first, the rest next cycle).

The first cycle of a new source is a silent baseline (unless ``emit_existing``): every job is
recorded without events, possibly across several cycles for a very long history. The baseline
is bounded too (``max_baseline_pages``, 1,000 pages by default, counted across its cycles): a
server whose list never ends (``has_more`` always true, with new ids every page) would
otherwise keep it going forever. At the bound, what was read becomes the baseline, one
``baseline_truncated`` warning says so, and polling goes on as usual.

The baseline is stored as it is read, every ``baseline_chunk`` jobs (1,000 by default), so a
long history is never held in memory at once. One cut off (a kill, a full disk) is redone from
the top by the next start: the jobs stored already are known by then, so only a real change
of one of them is an event.

No cycle scans every known job: the jobs that may still change, and the known jobs' order in
the list, are kept in a :class:`~watcher.known.JobIndex` as states change, so a steady-state
cycle costs the same over a hundred finished jobs or a hundred thousand.

When more new jobs appear between two cycles than ``max_pages`` pages hold (a long downtime in a
busy organisation), the cycle stops at the page limit with jobs below it still unread: a gap.
Its cursor is stored with the cycle's snapshots, and the next cycles spend what is left of their
page budget reading on from it (retrieving active jobs rather than paging to them meanwhile)
until they reach a job they know or the end of the list: those jobs' events come late but come,
even across a restart.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from .client import APIClient, Page
from .clock import Clock, SystemClock, sleep_or_wake
from .config import SourceConfig
from .diff import JobState
from .errors import APIError, AuthenticationError, MalformedResponse, NotFoundError
from .events import BaseEvent
from .known import JobIndex, order_key
from .models import FineTuningJob
from .progress import ProgressWatch, in_job_order
from .snapshots import Fingerprints, JobsRead, diff_jobs
from .store import StateStore

__all__ = ["DEFAULT_BASELINE_CHUNK", "DEFAULT_MAX_BASELINE_PAGES", "CycleReport", "SourcePoller"]

log = structlog.get_logger(__name__)

#: How many pages the first baseline reads at most, across its cycles, before it stops there.
DEFAULT_MAX_BASELINE_PAGES = 1000
#: How many jobs the first baseline reads before it stores them and lets them go (see the module).
DEFAULT_BASELINE_CHUNK = 1000

#: Called with the events a cycle journaled, after they are durable.
Publish = Callable[[Sequence[BaseEvent]], Awaitable[None]]


@dataclass
class CycleReport:
    """What one poll cycle did: for logs, tests and benchmarks."""

    source: str
    events: list[BaseEvent] = field(default_factory=list)
    pages: int = 0
    retrieves: int = 0
    jobs_seen: int = 0
    skipped: int = 0
    baseline: bool = False
    #: Why paging stopped early, when it did abnormally (a repeated cursor, the page limit).
    truncated: str | None = None


class SourcePoller:
    """Polls one source on its own schedule and journals the events its changes mean."""

    def __init__(
        self,
        config: SourceConfig,
        client: APIClient,
        store: StateStore,
        *,
        publish: Publish,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        max_baseline_pages: int = DEFAULT_MAX_BASELINE_PAGES,
        on_cycle: Callable[[CycleReport], None] | None = None,
        baseline_chunk: int = DEFAULT_BASELINE_CHUNK,
    ) -> None:
        """Set the poller up; nothing is read until :meth:`load` and the first cycle.

        ``max_baseline_pages`` bounds the first baseline (see the module): at that many pages
        read, across cycles, what was read is the baseline. ``baseline_chunk`` is how many jobs
        the baseline reads before it stores them (and holds them no longer). ``on_cycle`` is
        called with the report of every cycle that succeeded (the metrics' hook).
        """
        if max_baseline_pages < 1:
            raise ValueError("max_baseline_pages must be at least 1")
        if baseline_chunk < 1:
            raise ValueError("baseline_chunk must be at least 1")
        self.config = config
        self.client = client
        self.store = store
        self.clock = clock or SystemClock()
        self._publish = publish
        self._rng = rng or random.Random()
        self.states: dict[str, JobState] = {}
        self._fingerprints = Fingerprints(whole_active=config.progress)
        #: Which known jobs may still change, kept as they change: no cycle scans every job.
        self._index = JobIndex()
        self.baseline_chunk = baseline_chunk
        self.baselined = False
        self._baseline_cursor: str | None = None
        #: The baseline's page bound, and the pages it has read so far (across its cycles).
        self.max_baseline_pages = max_baseline_pages
        self._baseline_pages = 0
        #: Cursors below which the job list is still unread, oldest gap last (see the module).
        self.gaps: list[str] = []
        self._last_checked: dict[str, float] = {}
        self._gone: set[str] = set()
        self._lock = anyio.Lock()
        self._poke = anyio.Event()
        #: Set once the source failed for good (its key was refused); the loop has stopped.
        self.failed: str | None = None
        self.cycles = 0
        self._on_cycle = on_cycle
        #: Metrics, checkpoints, messages, stalls and ETA changes of running jobs (issue 8).
        self.progress = ProgressWatch(config, client, store)

    @property
    def name(self) -> str:
        """The source's configured name."""
        return self.config.name

    async def load(self) -> None:
        """Read what the store remembers of this source (call once before polling)."""
        # Kept lean (id, status, times): the full snapshots stay in the store.
        self.states = self._fingerprints.remember(await self.store.load_states(self.name))
        self._index.reset(self.states)
        self.baselined = await self.store.is_baselined(self.name)
        self.gaps = await self.store.gaps(self.name)
        await self.progress.load()

    def poke(self) -> None:
        """Make the loop poll now instead of at the end of its interval."""
        self._poke.set()

    def active_jobs(self) -> list[str]:
        """Ids of the known jobs that may still change."""
        return self._index.active(self._gone)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever on this source's interval (with jitter); never raises for API trouble."""
        while True:
            delay = self.config.poll_interval
            try:
                await self.poll_once()
            except AuthenticationError as exc:
                self.failed = str(exc)
                log.error(
                    "source_stopped",
                    source=self.name,
                    reason=str(exc),
                    status_code=exc.status_code,
                    hint="check api_key, organization and project for this source",
                )
                return
            except MalformedResponse as exc:
                log.warning("cycle_skipped_malformed_response", source=self.name, error=str(exc))
            except APIError as exc:
                retry_after = getattr(exc, "retry_after", None)
                if retry_after:
                    delay = max(delay, float(retry_after))
                log.warning(
                    "cycle_skipped_api_error",
                    source=self.name,
                    error=str(exc),
                    status_code=exc.status_code,
                )
            except Exception:
                # A bug or an unforeseen answer must cost one cycle, never the daemon.
                log.exception("cycle_failed", source=self.name)
            jitter = self.config.jitter
            delay *= 1.0 + self._rng.uniform(-jitter, jitter)
            await sleep_or_wake(self.clock, delay, self._poke)
            self._poke = anyio.Event()

    async def poll_once(self) -> CycleReport:
        """Run one cycle now: fetch, diff, journal, publish. Returns what it did."""
        async with self._lock:
            return await self._cycle()

    async def _cycle(self) -> CycleReport:
        report = CycleReport(self.name, baseline=not self.baselined)
        self.cycles += 1
        gaps = self.gaps
        read = JobsRead()
        if self.config.jobs is not None:
            read.jobs = await self._fetch_listed(report)
            complete = True
        else:
            complete, gaps = await self._fetch_paged(report, read)
        await self._record(read, report, complete=complete, gaps=gaps)
        report.jobs_seen += len(read.jobs)
        log.debug(
            "cycle_done",
            source=self.name,
            pages=report.pages,
            retrieves=report.retrieves,
            events=len(report.events),
        )
        if self._on_cycle is not None:
            self._on_cycle(report)
        return report

    async def _record(
        self, read: JobsRead, report: CycleReport, *, complete: bool, gaps: list[str]
    ) -> None:
        """Diff what was read, commit it, remember it and publish its events.

        Called once a cycle, and during the first baseline for every chunk read: a chunk stored
        is held no longer, and a restart redoes the baseline from the top without an event for
        the jobs stored already (they are known, and unchanged).
        """
        now = self.clock.now()
        announce = self.baselined or self.config.emit_existing
        changed, events = diff_jobs(
            self.states,
            read,
            source=self.name,
            now=now,
            announce_new=announce,
            marks=self._fingerprints.marks,
            link=self.config.job_link,
        )
        finishing_baseline = not self.baselined and complete
        # A job's metrics and checkpoints happened before the status change this cycle saw;
        # stalls, unstalls and ETA changes follow it.
        early, late = await self.progress.observe(
            read.jobs.values(),
            known=self.states,
            now=now,
            baselined=self.baselined or complete,
            announce_new=announce,
        )
        events = in_job_order(early, events, late)
        gaps_moved = gaps != self.gaps
        if changed or events or finishing_baseline or gaps_moved:
            await self.store.commit(
                self.name,
                states=changed,
                events=events,
                now=now,
                baselined=True if finishing_baseline else None,
                gaps=gaps if gaps_moved else None,
            )
        else:
            # A commit records the time of the poll itself; `ftwatch status` shows it.
            await self.store.mark_polled(self.name, now=now)
        await self.progress.save(now)
        self._index.update(changed, self.states)
        self._fingerprints.settle(read, changed, self.states)
        self.gaps = gaps
        if finishing_baseline:
            self.baselined = True
            log.info("baseline_recorded", source=self.name, jobs=len(self.states))
        report.events.extend(events)
        if events:
            await self._publish(events)

    # -- fetching -----------------------------------------------------------------------------

    async def _fetch_listed(self, report: CycleReport) -> dict[str, FineTuningJob]:
        """``jobs = [...]``: retrieve the configured jobs that may still change."""
        assert self.config.jobs is not None
        wanted = [
            j
            for j in self.config.jobs
            if j not in self._gone and (j not in self.states or not self.states[j].job.is_terminal)
        ]
        return await self._retrieve(wanted, report)

    async def _fetch_paged(self, report: CycleReport, read: JobsRead) -> tuple[bool, list[str]]:
        """Read pages newest first, as far as needed, then on from any gaps, into ``read``.

        Returns whether the list ended, and the gaps left for the next cycle.
        """
        seen = read.jobs
        baseline = not self.baselined
        after = self._baseline_cursor if baseline else None
        cursors: set[str] = set()
        complete = False
        found_known = False
        capped = False
        max_pages = self.config.max_pages
        while True:
            if report.pages >= max_pages:
                report.truncated = f"read the page limit ({max_pages} pages)"
                break
            if baseline and self._baseline_pages >= self.max_baseline_pages:
                # A list that never ends: what was read is the baseline (warned below, once).
                report.truncated = f"read the baseline page limit ({self.max_baseline_pages} pages)"
                complete = capped = True
                break
            if baseline:
                self._baseline_pages += 1
            page, items = await self._list(after, read, report)
            hit_known = False
            for job in items:
                hit_known = hit_known or job.id in self.states
            found_known = found_known or hit_known
            if not page.has_more:
                complete = True
                break
            if not page.items or page.last_id is None or page.last_id in cursors:
                # A server that says has_more but repeats itself or sends nothing cannot trap us.
                report.truncated = "the server said has_more but repeated a cursor or sent nothing"
                complete = True
                break
            cursors.add(page.last_id)
            after = page.last_id
            if baseline:
                if len(seen) >= self.baseline_chunk:
                    # Store the chunk and let it go: the baseline never holds the whole list.
                    await self._record(read, report, complete=False, gaps=self.gaps)
                    report.jobs_seen += len(seen)
                    read.clear()
                continue
            if not hit_known:
                continue  # more new jobs than one page: keep reading until a known one shows
            # While catching up, the pages left go to the gaps; active jobs are retrieved.
            if self.gaps or not self._paging_is_cheaper(seen, items[-1]):
                break
        gaps = list(self.gaps)
        if baseline:
            self._baseline_cursor = None if complete else after
        elif not complete and not found_known and after is not None:
            # Every page was new and the limit came first: the jobs below are unread.
            gaps.insert(0, after)
        if capped:
            log.warning(
                "baseline_truncated",
                source=self.name,
                pages=self._baseline_pages,
                jobs=len(self.states) + len(seen),
                hint="the list did not end; what was read is the baseline, polling goes on",
            )
        elif report.truncated:
            log.warning(
                "pagination_stopped",
                source=self.name,
                reason=report.truncated,
                pages=report.pages,
                catching_up=bool(gaps) and not baseline,
            )
        if not baseline:
            gaps = await self._read_gaps(gaps, read, report)
            missing = [j for j in self.active_jobs() if j not in seen]
            seen.update(await self._retrieve(missing, report))
        return complete, gaps

    async def _list(
        self, after: str | None, read: JobsRead, report: CycleReport
    ) -> tuple[Page[Any], list[FineTuningJob]]:
        """Read one page into ``read``; return it and its valid jobs, in order."""
        page = await self.client.list_job_objects(limit=self.config.page_size, after=after)
        report.pages += 1
        skipped = read.skipped
        items = self._fingerprints.read(page.items, self.states, read, source=self.name)
        report.skipped += read.skipped - skipped
        return page, items

    async def _read_gaps(self, gaps: list[str], read: JobsRead, report: CycleReport) -> list[str]:
        """Read on from the oldest gap's cursor with the pages left; return the gaps left."""
        gaps = list(gaps)
        cursors: set[str] = set()
        while gaps and report.pages < self.config.max_pages:
            after = gaps[-1]
            cursors.add(after)
            page, items = await self._list(after, read, report)
            closed = False
            for job in items:
                closed = closed or job.id in self.states
            if closed or not page.has_more or page.last_id is None or page.last_id in cursors:
                # A known job below the gap, the end of the list, or a server repeating itself.
                gaps.pop()
                log.info("gap_closed", source=self.name, gaps_left=len(gaps))
            else:
                gaps[-1] = page.last_id
        return gaps

    def _paging_is_cheaper(self, seen: dict[str, FineTuningJob], last: FineTuningJob) -> bool:
        """Would reading on reach the unseen active jobs in fewer requests than retrieving them?"""
        unseen = [self.states[j].job for j in self.active_jobs() if j not in seen]
        if not unseen:
            return False
        oldest = min(order_key(j) for j in unseen)
        # Every known job between the last one read and the oldest unseen active one is a row
        # we would have to page through (new jobs we do not know yet can only be newer).
        between = self._index.count_between(oldest, order_key(last))
        pages_needed = math.ceil(between / self.config.page_size)
        return pages_needed < len(unseen)

    async def _retrieve(self, job_ids: list[str], report: CycleReport) -> dict[str, FineTuningJob]:
        """Retrieve jobs one by one, least recently checked first, at most ``max_retrieves``."""
        out: dict[str, FineTuningJob] = {}
        job_ids = sorted(job_ids, key=lambda j: self._last_checked.get(j, 0.0))
        for job_id in job_ids[: self.config.max_retrieves]:
            self._last_checked[job_id] = self.clock.now()
            report.retrieves += 1
            try:
                out[job_id] = await self.client.retrieve_job(job_id)
            except NotFoundError:
                self._gone.add(job_id)
                log.warning("job_not_found", source=self.name, job_id=job_id)
            except MalformedResponse as exc:
                log.warning(
                    "job_skipped_malformed", source=self.name, job_id=job_id, error=str(exc)
                )
        return out
