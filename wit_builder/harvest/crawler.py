"""Crawl web pages politely and resumably from seed URLs, and harvest their (image URL, text) candidates.

The crawl is breadth-first by link depth: seeds have depth 0 and links found on a page of
depth d get depth d + 1, up to ``max_depth``. Links to other hosts than the seeds' are not
followed unless ``same_host_only`` is off.

Politeness applies per host (scheme, host and port). A host gets at most
``http.max_per_host`` concurrent requests and at least ``host_delay_s`` seconds between two
request starts, or its robots.txt Crawl-delay when that is larger. robots.txt is requested
once per host and run, before the host's first page, and is honoured for the product token
"wit-builder". A host whose Crawl-delay exceeds ``max_crawl_delay_s`` is skipped.

Redirects are not followed within one request. A redirect response is recorded with status
``redirect`` and its target joins the frontier at the same depth, so the target passes the
robots.txt of its host, ``same_host_only``, the address guard and deduplication like any
other URL. More than ``http.max_redirects`` hops in a row end as ``too_many_redirects``.

``crawl_folder`` keeps the frontier in ``OUT/frontier.sqlite`` (see ``frontier``) and writes
the candidates in part files ``OUT/part-NNNNN.parquet``. A part file is written atomically
before the pages whose candidates it contains are marked finished, so a killed crawl resumes
where it stopped. In-flight pages are requested again and finished ones are not. Part files
that no commit recorded are deleted.

With ``stop_on_signals``, SIGINT and SIGTERM stop a crawl cleanly: no new request starts,
in-flight requests get ``stop_grace_s`` to finish (a second signal cancels them at once),
the waiting results are committed, stats.json is written, and ``CrawlStopped`` is raised.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import aiohttp
import pyarrow.parquet as pq
from tqdm import tqdm

from wit_builder.harvest.crawl_settings import CRAWL_DELAY_TOO_LONG, log_hints, recover_frontier, setting_name
from wit_builder.harvest.decode import decode_html
from wit_builder.harvest.extract import extract_page, resolve_url
from wit_builder.harvest.frontier import FrontierEntry, FrontierStore, HostQueues, HostState, PageRecord, UrlState, host_of
from wit_builder.harvest.robots import RobotsOutcome, RobotsRules, fetch_robots, robots_http_config
from wit_builder.harvest.stats import HarvestStats
from wit_builder.harvest.warc import HTML_MEDIA_TYPES
from wit_builder.net.client import REDIRECT_STATUSES, HttpConfig, HttpResult, http_get, make_session
from wit_builder.parquet import iter_records, list_parts, write_records
from wit_builder.records import Candidate, FetchStatus
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

SOURCE = "crawl"
FRONTIER_NAME = "frontier.sqlite"

#: Page statuses of the crawler besides the FetchStatus values.
REDIRECT = "redirect"
PAGE_ERROR = "page_error"

#: Accept header of page requests: HTML first, anything else accepted but not parsed.
ACCEPT_HEADER = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"}

#: Link targets with these path suffixes are not pages, so the crawler does not request them.
NON_HTML_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".ico", ".svg", ".tif", ".tiff",
    ".mp3", ".mp4", ".m4a", ".webm", ".avi", ".mov", ".ogg", ".wav",
    ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".exe", ".dmg", ".iso",
    ".css", ".js", ".woff", ".woff2", ".ttf", ".eot",
)


@dataclass
class CrawlConfig:
    """Settings of one crawl. Times are in seconds."""

    http: HttpConfig = field(default_factory=HttpConfig)
    #: Links followed from a seed; 0 fetches only the seeds.
    max_depth: int = 2
    #: Maximum page requests of the whole crawl, earlier runs of a resumed crawl included.
    #: Every redirect response counts as one; robots.txt requests do not.
    max_pages: int = 1000
    #: Maximum page requests to one host; 0 sets no limit.
    max_pages_per_host: int = 0
    #: Follow only links to the hosts of the seeds and of the seeds' redirect targets.
    same_host_only: bool = True
    #: Minimum time between the starts of two requests to the same host.
    host_delay_s: float = 1.0
    #: Use a robots.txt Crawl-delay larger than ``host_delay_s`` in its place.
    respect_crawl_delay: bool = True
    #: Skip a host whose robots.txt Crawl-delay is larger than this.
    max_crawl_delay_s: float = 30.0
    #: Maximum size of a page body; a larger page is recorded as too_large.
    max_page_bytes: int = 5 * 1024 * 1024
    #: Write a part file once this many candidates are waiting.
    flush_candidates: int = 10_000
    #: Write waiting results at least this often, so that a killed crawl loses little work.
    flush_interval_s: float = 60.0
    #: After a stop signal, wait this long for in-flight requests before cancelling them.
    stop_grace_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_pages_per_host", "host_delay_s", "max_crawl_delay_s", "stop_grace_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{setting_name(name)} must not be negative, got {getattr(self, name)!r}")
        for name in ("max_pages", "max_page_bytes", "flush_candidates", "flush_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{setting_name(name)} must be positive, got {getattr(self, name)!r}")


class CrawlFolderInUseError(RuntimeError):
    """Another process is crawling into the same output folder."""


class CrawlStopped(Exception):
    """A signal stopped the crawl after its finished pages, part files and stats.json were written."""

    def __init__(self, signal_number: int, stats: HarvestStats):
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.stats = stats
        super().__init__(f"crawl stopped by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        """Exit status of a process that the signal ended: 128 plus the signal number."""
        return 128 + self.signal_number


def is_non_html_link(url: str) -> bool:
    """Return whether a URL's path names a file type that is never an HTML page."""
    return urlsplit(url).path.lower().endswith(NON_HTML_SUFFIXES)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _part_index(path: Path) -> int | None:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return None


# HarvestStats fields that the frontier stores as JSON. Page and HTTP status counts are
# recomputed from the URL table instead.
_SAVED_COUNTS = ("pages_parsed", "images", "images_with_text", "candidates", "duplicate_candidates")
_SAVED_COUNTERS = ("dropped_images", "text_sources", "page_languages", "extra")


def stats_to_json(stats: HarvestStats) -> str:
    payload: dict = {name: getattr(stats, name) for name in _SAVED_COUNTS}
    payload.update({name: dict(getattr(stats, name)) for name in _SAVED_COUNTERS})
    return json.dumps(payload, sort_keys=True)


def stats_from_json(text: str | None) -> HarvestStats:
    stats = HarvestStats(source=SOURCE)
    payload = json.loads(text) if text else {}
    for name in _SAVED_COUNTS:
        setattr(stats, name, int(payload.get(name, 0)))
    for name in _SAVED_COUNTERS:
        getattr(stats, name).update(payload.get(name, {}))
    return stats


@dataclass
class _Batch:
    """Page outcomes and candidates that wait for the next part file and commit."""

    records: list[PageRecord] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    stats: HarvestStats = field(default_factory=lambda: HarvestStats(source=SOURCE))
    #: Event loop time of the first record, None while empty.
    started: float | None = None


class _Crawl:
    """State of one run of a crawl."""

    def __init__(self, session: aiohttp.ClientSession, config: CrawlConfig, store: FrontierStore, out_dir: Path):
        self.session = session
        self.config = config
        self.store = store
        self.out_dir = out_dir
        # NOTE: http_get retries a failed page after its own backoff, without asking the host
        # queue, so a retry can start sooner than host_delay_s after another request to the host.
        self.page_http = dataclasses.replace(config.http, max_redirects=0, max_bytes=config.max_page_bytes)
        self.robots_http = robots_http_config(config.http)
        self.queues = HostQueues(config.http.max_per_host, config.max_pages_per_host)
        self.allowed_hosts: set[str] = set()
        self.limit_hit_hosts: set[str] = set()
        self.progress: tqdm | None = None
        self.tasks: set[asyncio.Task] = set()
        self.wake = asyncio.Event()
        self.active = 0
        self.requested = 0
        #: Page requests of earlier runs, set by ``load``.
        self.requested_before = 0
        #: Signal that stopped this run, and the loop time at which in-flight requests are cancelled.
        self.stop_signal: int | None = None
        self.cancel_at = 0.0
        self.robots_requested = 0
        self.invalid_seeds = 0
        self.candidate_ids: set[str] = set()
        self.next_part = int(store.get_meta("next_part") or 0)
        self.saved_stats = stats_from_json(store.get_meta("stats"))
        self.batch = _Batch()

    def load(self) -> None:
        """Load the host counters, the queued URLs and the ids of the candidates written already."""
        for row in self.store.hosts().values():
            state = self.queues.state(row.host)
            state.fetched = row.pages_fetched
            self.requested += row.pages_fetched
            if row.seed:
                self.allowed_hosts.add(row.host)
            if row.limit_hit and self.queues.limit_reached(state):
                self.limit_hit_hosts.add(row.host)
            elif row.limit_hit:
                # A resumed crawl with a larger max_pages_per_host.
                self.store.update_host(row.host, limit_hit=0)
        self.requested_before = self.requested
        for entry in self.store.queued(max_depth=self.config.max_depth):
            self.queues.push(entry)
        for part in list_parts(self.out_dir):
            table = pq.read_table(part, columns=["candidate_id"])
            self.candidate_ids.update(table.column(0).to_pylist())

    def add_seeds(self, seeds: list[str]) -> None:
        rows = []
        for seed in seeds:
            url = resolve_url(seed, seed)
            if url is None:
                logger.warning("skipping seed %r: not an absolute http(s) URL", seed)
                self.invalid_seeds += 1
                continue
            self._allow_host(host_of(url))
            rows.append((url, host_of(url), 0, 0))
        for entry in self.store.add_many(rows):
            self._enqueue(entry)

    def _allow_host(self, host: str) -> None:
        if host not in self.allowed_hosts:
            self.allowed_hosts.add(host)
            self.store.update_host(host, seed=1)

    def _enqueue(self, entry: FrontierEntry) -> None:
        state = self.queues.state(entry.host)
        if state.blocked_status is not None:
            self._record(PageRecord(entry.id, entry.host, UrlState.FAILED, state.blocked_status))
            return
        self.queues.push(entry)

    def _page_limit_reached(self) -> bool:
        return self.requested >= self.config.max_pages

    def _note_limit_hit(self, host: str) -> None:
        if host not in self.limit_hit_hosts:
            logger.info("%s reached %s %d", host, setting_name("max_pages_per_host"), self.config.max_pages_per_host)
            self.limit_hit_hosts.add(host)
            self.store.update_host(host, limit_hit=1)

    def add_urls(self, urls: list[str], depth: int, redirects: int, kind: str, allow_new_host: bool = False) -> None:
        """Queue new URLs found as links or redirect targets; ``kind`` prefixes the counters of skipped ones."""
        extra = self.batch.stats.extra
        rows = []
        for url in urls:
            host = host_of(url)
            if self.config.same_host_only and host not in self.allowed_hosts:
                if not allow_new_host:
                    extra[f"{kind}_offsite"] += 1
                    continue
                self._allow_host(host)
            if is_non_html_link(url):
                extra[f"{kind}_not_html"] += 1
                continue
            if depth > self.config.max_depth:
                extra[f"{kind}_beyond_max_depth"] += 1
                continue
            rows.append((url, host, depth, redirects))

        # URLs beyond the page limits are queued too, so that a resumed crawl with larger
        # limits continues from them.
        added = self.store.add_many(rows)
        extra[f"{kind}_seen_before"] += len(rows) - len(added)
        for entry in added:
            self._enqueue(entry)
            if self._page_limit_reached():
                extra[f"{kind}_beyond_max_pages"] += 1
            elif self.queues.limit_reached(self.queues.state(entry.host)):
                extra[f"{kind}_beyond_host_limit"] += 1
                self._note_limit_hit(entry.host)

    async def run(self) -> None:
        """Dispatch requests until no host may fetch more or a stop is requested, then write the waiting results."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                self.wake.clear()
                if self.stop_signal is None:
                    self._dispatch(loop.time())
                elif self.tasks and loop.time() >= self.cancel_at:
                    await self._cancel_tasks()
                if self.batch.started is not None and loop.time() - self.batch.started >= self.config.flush_interval_s:
                    self.flush()
                done = self.stop_signal is not None or self._page_limit_reached() or not self.queues.has_work()
                if self.active == 0 and done:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self._wait_time(loop.time()))
        except asyncio.CancelledError:
            # Interrupted: keep the finished pages, the in-flight ones are requested again on resume.
            await self._cancel_tasks()
            self.flush()
            raise
        self.flush()

    async def _cancel_tasks(self) -> None:
        """Cancel the running requests; their URLs stay in flight, so a resumed crawl requests them again."""
        if self.tasks:
            logger.info("cancelling %d in-flight requests", len(self.tasks))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def request_stop(self, signal_number: int) -> None:
        """Start no more requests, and cancel the running ones after ``stop_grace_s``, or at once on a second call."""
        now = asyncio.get_running_loop().time()
        name = signal.Signals(signal_number).name
        if self.stop_signal is None:
            self.stop_signal = signal_number
            self.cancel_at = now + self.config.stop_grace_s
            logger.warning(
                "%s received: starting no new requests and waiting up to %g s for %d in-flight requests; "
                "send %s again to cancel them",
                name, self.config.stop_grace_s, len(self.tasks), name,
            )
        else:
            self.cancel_at = now
        self.wake.set()

    def _wait_time(self, now: float) -> float | None:
        if self.stop_signal is not None:
            return max(0.0, self.cancel_at - now)
        times = []
        ready_at = self.queues.next_ready_at()
        if ready_at is not None and self.active < self.config.http.max_concurrency and not self._page_limit_reached():
            times.append(ready_at)
        if self.batch.started is not None:
            times.append(self.batch.started + self.config.flush_interval_s)
        return max(0.0, min(times) - now) if times else None

    def _dispatch(self, now: float) -> None:
        while self.active < self.config.http.max_concurrency and not self._page_limit_reached():
            state = self.queues.pick(now)
            if state is None:
                return
            if state.rules is None:
                self._start_robots(state, now)
                continue
            entry = self.queues.pop(state)
            if not state.rules.allows(entry.url):
                self._record(PageRecord(entry.id, entry.host, UrlState.FAILED, FetchStatus.ROBOTS_DISALLOWED.value))
                continue
            self._start_page(state, entry, now)

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _start_robots(self, state: HostState, now: float) -> None:
        state.robots_pending = True
        state.active += 1
        self.active += 1
        # robots.txt counts as a request start for the host's spacing.
        state.next_start = now + self.config.host_delay_s
        self._spawn(self._load_robots(state, now))

    def _start_page(self, state: HostState, entry: FrontierEntry, now: float) -> None:
        state.fetched += 1
        self.requested += 1
        if self.queues.limit_reached(state) and state.queue:
            self._note_limit_hit(state.host)
        state.active += 1
        self.active += 1
        state.next_start = now + state.delay_s
        self.store.mark_in_flight(entry.id)
        self._spawn(self._fetch_page(state, entry))

    async def _load_robots(self, state: HostState, started: float) -> None:
        try:
            rules = await fetch_robots(self.session, state.host, self.robots_http)
        except Exception:  # one host's robots.txt must not end the crawl; the error is logged with the host
            logger.exception("failed to process %s/robots.txt: the host is disallowed for this run", state.host)
            rules = RobotsRules(origin=state.host, outcome=RobotsOutcome.UNREACHABLE)
        finally:
            state.active -= 1
            self.active -= 1
            self.wake.set()
        self.robots_requested += 1
        self._apply_robots(state, rules, started)

    def _apply_robots(self, state: HostState, rules: RobotsRules, started: float) -> None:
        state.rules = rules
        state.robots_pending = False
        delay_s = self.config.host_delay_s
        crawl_delay_s = rules.crawl_delay_s if self.config.respect_crawl_delay else None
        skipped = None
        if crawl_delay_s is not None and crawl_delay_s > self.config.max_crawl_delay_s:
            skipped = CRAWL_DELAY_TOO_LONG
            logger.warning(
                "%s/robots.txt sets Crawl-delay %g s, more than %s %g s: skipping the host",
                state.host, crawl_delay_s, setting_name("max_crawl_delay_s"), self.config.max_crawl_delay_s,
            )
        elif crawl_delay_s is not None:
            delay_s = max(delay_s, crawl_delay_s)
        state.delay_s = delay_s
        state.next_start = max(state.next_start, started + delay_s)
        self.store.update_host(
            state.host, robots=rules.outcome.value, crawl_delay_s=rules.crawl_delay_s, delay_s=delay_s, skipped=skipped
        )

        blocked_status = skipped or rules.blocked_status()
        if blocked_status is not None:
            state.blocked_status = blocked_status
            for entry in self.queues.drain(state):
                self._record(PageRecord(entry.id, entry.host, UrlState.FAILED, blocked_status))

    async def _fetch_page(self, state: HostState, entry: FrontierEntry) -> None:
        try:
            result = await http_get(self.session, entry.url, self.page_http, headers=ACCEPT_HEADER)
            self._handle_result(entry, result)
        except Exception:  # one bad page must not end the crawl; the error is logged with its URL
            logger.exception("failed to process %s", entry.url)
            self._record(PageRecord(entry.id, entry.host, UrlState.FAILED, PAGE_ERROR, requested=True))
        finally:
            state.active -= 1
            self.active -= 1
            if self.progress is not None:
                self.progress.update(1)
            self.wake.set()

    def _handle_result(self, entry: FrontierEntry, result: HttpResult) -> None:
        # With max_redirects=0, http_get ends a redirect as too_many_redirects and keeps its Location.
        is_redirect = result.http_status in REDIRECT_STATUSES and result.status is FetchStatus.TOO_MANY_REDIRECTS
        if is_redirect and "location" in result.headers:
            self._handle_redirect(entry, result)
            return

        if result.ok and result.content_type in HTML_MEDIA_TYPES:
            self._parse(entry, result)
        elif result.ok:
            self.batch.stats.extra["pages_not_html"] += 1
        record = PageRecord(
            entry.id,
            entry.host,
            UrlState.DONE if result.ok else UrlState.FAILED,
            result.status.value,
            result.http_status,
            result.content_type,
            requested=True,
        )
        self._record(record)

    def _handle_redirect(self, entry: FrontierEntry, result: HttpResult) -> None:
        target = resolve_url(result.headers["location"], entry.url)
        state, status = UrlState.DONE, REDIRECT
        if target is None:
            logger.debug("%s redirects to %r, which is not an http(s) URL", entry.url, result.headers["location"])
            state, status = UrlState.FAILED, FetchStatus.INVALID_URL.value
        elif entry.redirects >= self.config.http.max_redirects:
            logger.debug(
                "%s is redirect %d in a row, over %s %d",
                entry.url, entry.redirects + 1, setting_name("http.max_redirects"), self.config.http.max_redirects,
            )
            state, status = UrlState.FAILED, FetchStatus.TOO_MANY_REDIRECTS.value
        else:
            # The redirect target of a seed may be on another host, which then counts as a seed host.
            self.add_urls([target], entry.depth, entry.redirects + 1, "redirects", allow_new_host=entry.depth == 0)
        self._record(
            PageRecord(entry.id, entry.host, state, status, result.http_status, result.content_type, requested=True)
        )

    def _parse(self, entry: FrontierEntry, result: HttpResult) -> None:
        html = decode_html(result.body or b"", result.headers.get("content-type"))
        extraction = extract_page(html, entry.url, SOURCE)
        # Links go first: when queueing them fails, the page is recorded as page_error
        # without having added candidates.
        self.add_urls(extraction.links, entry.depth + 1, 0, "links")

        stats = self.batch.stats
        stats.add_page(extraction)
        stats.extra["links_found"] += len(extraction.links)
        new_candidates = [c for c in extraction.candidates if c.candidate_id not in self.candidate_ids]
        repeats = len(extraction.candidates) - len(new_candidates)
        stats.candidates -= repeats
        stats.duplicate_candidates += repeats
        self.candidate_ids.update(c.candidate_id for c in new_candidates)
        self.batch.candidates.extend(new_candidates)

    def _record(self, record: PageRecord) -> None:
        batch = self.batch
        batch.records.append(record)
        if batch.started is None:
            batch.started = asyncio.get_running_loop().time()
        if len(batch.candidates) >= self.config.flush_candidates:
            self.flush()

    def flush(self) -> None:
        """Write the waiting candidates as the next part file, then commit the waiting page outcomes."""
        batch = self.batch
        if not batch.records:
            return
        self.batch = _Batch()

        if batch.candidates:
            write_records(self.out_dir / part_name(self.next_part), batch.candidates, Candidate)
            self.next_part += 1
        self.saved_stats.merge(batch.stats)
        meta = {"next_part": str(self.next_part), "stats": stats_to_json(self.saved_stats)}
        self.store.commit_pages(batch.records, meta)
        logger.debug("committed %d pages and %d candidates", len(batch.records), len(batch.candidates))


@contextlib.contextmanager
def _folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the crawl folder, so that two crawls cannot share a frontier."""
    with open(out_dir / f"{FRONTIER_NAME}.lock", "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CrawlFolderInUseError(f"another crawl is writing to {out_dir}; wait for it or use another --out") from None
        yield


def remove_crawl_files(out_dir: Path) -> None:
    """Delete the frontier, the part files and stats.json of a crawl folder."""
    for name in (FRONTIER_NAME, f"{FRONTIER_NAME}-wal", f"{FRONTIER_NAME}-shm", "stats.json"):
        (out_dir / name).unlink(missing_ok=True)
    for part in list_parts(out_dir):
        part.unlink()


def _remove_uncommitted_parts(out_dir: Path, next_part: int) -> int:
    """Delete part files that no commit recorded, and temporary files of interrupted writes."""
    removed = 0
    for part in list_parts(out_dir):
        index = _part_index(part)
        if index is None or index >= next_part:
            part.unlink()
            removed += 1
    for temporary in out_dir.glob(".part-*.parquet.tmp-*"):
        temporary.unlink()
    return removed


def _collect_stats(store: FrontierStore, crawl_state: _Crawl, seeds: list[str]) -> tuple[HarvestStats, dict]:
    """Return the crawl's counts, earlier runs included, and the extra fields of stats.json."""
    stats = stats_from_json(store.get_meta("stats"))
    status_counts = store.status_counts()
    stats.pages_by_status.update(status_counts)
    if crawl_state.invalid_seeds:
        stats.pages_by_status[FetchStatus.INVALID_URL.value] += crawl_state.invalid_seeds
    stats.pages = sum(stats.pages_by_status.values())
    stats.http_statuses.update(store.http_status_counts())

    content_types = store.content_type_counts(FetchStatus.OK.value)
    hosts = store.hosts()
    states = store.state_counts()
    crawl_delays = {
        row.host: row.delay_s for row in hosts.values() if row.crawl_delay_s is not None and row.skipped is None
    }
    too_long = {row.host: row.crawl_delay_s for row in hosts.values() if row.skipped == CRAWL_DELAY_TOO_LONG}
    limit_hit = sorted(row.host for row in hosts.values() if row.limit_hit)

    extra = stats.extra
    extra["pages_requested"] = sum(row.pages_fetched for row in hosts.values())
    extra["redirects"] = status_counts.get(REDIRECT, 0)
    extra["robots_disallowed"] = status_counts.get(FetchStatus.ROBOTS_DISALLOWED.value, 0)
    extra["robots_txt_requested"] = crawl_state.robots_requested
    extra["seeds"] = len(seeds)
    extra["hosts"] = len(hosts)
    extra["hosts_limit_hit"] = len(limit_hit)
    extra["hosts_crawl_delay_applied"] = len(crawl_delays)
    extra["hosts_crawl_delay_too_long"] = len(too_long)
    extra["urls_queued"] = states.get(UrlState.QUEUED.value, 0)

    fields = {
        "pages_by_content_type": dict(sorted(content_types.items())),
        "robots_txt": dict(sorted(collections.Counter(row.robots for row in hosts.values() if row.robots).items())),
        "hosts_limit_hit": limit_hit,
        "crawl_delay_applied_s": dict(sorted(crawl_delays.items())),
        "crawl_delay_too_long_s": dict(sorted(too_long.items())),
        "frontier": dict(sorted(states.items())),
        "runs": int(store.get_meta("runs") or 0),
    }
    return stats, fields


def _settings(config: CrawlConfig) -> dict:
    return {
        "max_depth": config.max_depth,
        "max_pages": config.max_pages,
        "max_pages_per_host": config.max_pages_per_host,
        "same_host_only": config.same_host_only,
        "host_delay_s": config.host_delay_s,
        "max_per_host": config.http.max_per_host,
        "max_crawl_delay_s": config.max_crawl_delay_s,
    }


@contextlib.contextmanager
def _stop_signal_handlers(crawl_state: _Crawl, enabled: bool) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``crawl_state.request_stop`` while the context runs, then restore the old handlers."""
    loop = asyncio.get_running_loop()
    installed = []
    for signal_number in (signal.SIGINT, signal.SIGTERM) if enabled else ():
        previous = signal.getsignal(signal_number)
        try:
            loop.add_signal_handler(signal_number, crawl_state.request_stop, signal_number)
        except (NotImplementedError, RuntimeError, ValueError) as error:
            # Only the main thread of a Unix process can install signal handlers.
            logger.debug("cannot handle %s: %s", signal.Signals(signal_number).name, error)
            continue
        installed.append((signal_number, previous))
    try:
        yield
    finally:
        for signal_number, previous in installed:
            loop.remove_signal_handler(signal_number)
            signal.signal(signal_number, previous)


async def crawl_async(
    seeds: list[str],
    out_dir: str | os.PathLike,
    config: CrawlConfig | None = None,
    *,
    restart: bool = False,
    stop_on_signals: bool = False,
) -> HarvestStats:
    """Crawl from ``seeds`` into ``out_dir``, resuming the crawl found there; see ``crawl_folder``."""
    config = config or CrawlConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    with _folder_lock(out_dir):
        if restart or not (out_dir / FRONTIER_NAME).exists():
            remove_crawl_files(out_dir)
        with FrontierStore(out_dir / FRONTIER_NAME) as store:
            runs = int(store.get_meta("runs") or 0) + 1
            store.set_meta({"runs": str(runs)})
            removed = _remove_uncommitted_parts(out_dir, int(store.get_meta("next_part") or 0))
            recover_frontier(store, config, runs, out_dir, removed)

            async with make_session(config.http) as session:
                crawl_state = _Crawl(session, config, store, out_dir)
                with _stop_signal_handlers(crawl_state, stop_on_signals):
                    crawl_state.load()
                    crawl_state.add_seeds(list(seeds))
                    progress = tqdm(total=config.max_pages, initial=crawl_state.requested, desc="crawl", unit=" pages", leave=False)
                    with progress:
                        crawl_state.progress = progress
                        await crawl_state.run()

            stats, fields = _collect_stats(store, crawl_state, list(seeds))
            if crawl_state.stop_signal is None:
                log_hints(store, config, runs, crawl_state.requested - crawl_state.requested_before)

    write_stage_stats(out_dir, "harvest", stats.counts(), **stats.to_json(), **fields, seeds=list(seeds), **_settings(config))
    logger.info(
        "crawl run %d took %.1f s: %d pages requested in all, %d parsed, %d candidates in %d part files, %d URLs still queued",
        fields["runs"], time.monotonic() - started, stats.extra["pages_requested"], stats.pages_parsed,
        stats.candidates, crawl_state.next_part, stats.extra["urls_queued"],
    )
    if crawl_state.stop_signal is not None:
        raise CrawlStopped(crawl_state.stop_signal, stats)
    return stats


def crawl_folder(
    seeds: list[str],
    out_dir: str | os.PathLike,
    config: CrawlConfig | None = None,
    *,
    restart: bool = False,
    stop_on_signals: bool = False,
) -> HarvestStats:
    """Crawl from ``seeds`` into ``out_dir``: part-NNNNN.parquet files, stats.json and frontier.sqlite.

    When ``out_dir`` contains a frontier, the crawl resumes from it and ``seeds`` are added to
    it; ``restart`` deletes the frontier and the part files first. stats.json counts the
    whole crawl, earlier runs included. Pages that fail (blocked address, DNS error, 404,
    ...) are counted by status, so a crawl whose every seed fails still writes its stats.
    ``stop_on_signals`` stops the crawl cleanly on SIGINT and SIGTERM and then raises
    ``CrawlStopped``; it works only in the main thread. Call ``crawl_async`` from code that
    already runs an event loop.
    """
    config = config or CrawlConfig()
    if config.http.allow_private:
        logger.warning(
            "%s is on: the crawler may request loopback and private network addresses",
            setting_name("http.allow_private"),
        )
    return asyncio.run(crawl_async(list(seeds), out_dir, config, restart=restart, stop_on_signals=stop_on_signals))


def crawl(seeds: list[str], out_path: str | os.PathLike, config: CrawlConfig | None = None) -> HarvestStats:
    """Crawl from ``seeds`` from scratch and write all candidates to one parquet file, ``out_path``.

    stats.json goes beside ``out_path``. The frontier and part files live in a temporary
    folder beside ``out_path`` that is deleted afterwards, so this crawl does not resume.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".crawl-", dir=out_path.parent) as work_dir:
        stats = crawl_folder(seeds, work_dir, config, restart=True)
        candidates = [row for part in list_parts(work_dir) for row in iter_records(part, Candidate)]
        write_records(out_path, candidates, Candidate)
        shutil.copyfile(Path(work_dir) / "stats.json", out_path.parent / "stats.json")
    return stats
