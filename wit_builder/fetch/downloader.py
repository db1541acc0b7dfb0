"""Download many URLs concurrently, one host at a polite pace.

``Downloader`` keeps at most ``HttpConfig.max_concurrency`` requests in flight, and a
``HostScheduler`` picks which request may start next, so each host gets at most
``max_per_host`` concurrent requests spaced by its delay, while the other hosts keep
the remaining slots busy. Before the first URL of an origin, robots.txt is requested
once, and the URLs that it disallows get their status without a request. Transient
failures wait for their retry in the host's queue, not in a slot, and 429 or 503 slow
the whole host down (see ``politeness``). Every URL yields exactly one result.

URLs can also arrive in batches (``more``): the downloader pulls the next batch
whenever fewer than ``max_concurrency`` of its URLs wait to start, so the requests of
one batch overlap with the last ones of the batch before. The robots.txt rules of an
origin and the stop of a throttled host hold for every later batch.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterator, Sequence

import aiohttp

from wit_builder.fetch.health import RunHealth, request_label
from wit_builder.fetch.politeness import HostScheduler, PolitenessConfig, Response
from wit_builder.fetch.retry import THROTTLING_HTTP_STATUSES, backoff_delay_s, is_transient
from wit_builder.fetch.robots_txt import host_key, robots_rejection
from wit_builder.harvest.robots import RobotsRules, interpret_robots_result, origin_of, robots_http_config
from wit_builder.net.client import HttpConfig, HttpResult, http_get, make_session, parse_retry_after
from wit_builder.net.counted_log import CountedLog
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

_retry_log = CountedLog(logger, logging.INFO, "retrying")
_stopped_log = CountedLog(logger, logging.WARNING, "stopped requesting a host")
_robots_log = CountedLog(logger, logging.INFO, "robots.txt")


@dataclass
class DownloadStats:
    """Counts of one ``Downloader`` run."""

    #: Image request attempts, retries included; robots.txt requests are counted apart.
    requests: int = 0
    #: Attempts beyond the first of each URL.
    retries: int = 0
    #: Responses with HTTP 429 or 503.
    throttled: int = 0
    robots_requests: int = 0
    #: URLs that robots.txt disallowed, or whose robots.txt was unreachable.
    robots_rejected: int = 0
    hosts: int = 0
    #: Hosts stopped after throttling, whose remaining URLs were not requested.
    hosts_stopped: int = 0
    not_requested: int = 0


@dataclass
class _Job:
    """One request: an image URL by its index, or the robots.txt of ``origin``."""

    index: int
    origin: str | None = None
    attempts: int = 0
    #: Result of the previous attempt while the job waits for its retry.
    previous: HttpResult | None = None


class Downloader:
    """Download ``urls`` politely; ``results()`` yields ``(index, HttpResult)`` as each URL is done.

    ``http.retries`` and the backoff settings apply per URL, and ``http_get`` is called
    without retries of its own so that a waiting retry occupies no slot. With
    ``respect_robots_txt`` False no robots.txt is requested. ``more`` yields further
    batches of URLs, whose indices follow those of ``urls`` and of earlier batches.

    NOTE: redirect targets are requested without pacing or a robots.txt check of
    their own host. The connector still caps connections per target host at
    ``max_per_host``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Sequence[str],
        http: HttpConfig,
        politeness: PolitenessConfig | None = None,
        *,
        respect_robots_txt: bool = True,
        health: RunHealth | None = None,
        clock: Callable[[], float] = time.monotonic,
        more: Iterator[Sequence[str]] | None = None,
    ):
        self.session = session
        #: URLs by index until their result is out, so a long run holds only the open ones.
        self.urls: dict[int, str] = {}
        self._next_index = 0
        self.http = http
        self.politeness = politeness or PolitenessConfig()
        self.respect_robots_txt = respect_robots_txt
        self.health = health
        self.clock = clock
        self.stats = DownloadStats()
        self.scheduler: HostScheduler[_Job] = HostScheduler(self.politeness, http.max_per_host)

        self._image_http = dataclasses.replace(http, retries=0)
        self._robots_http = robots_http_config(http)
        self._waiting: dict[str, list[int]] = {}
        #: robots.txt rules of each origin whose robots.txt has been fetched, with the
        #: largest Crawl-delay that is honoured.
        self._robots: dict[str, tuple[RobotsRules, float | None]] = {}
        self._direct: collections.deque[int] = collections.deque()
        self._finished: collections.deque[tuple[int, HttpResult]] = collections.deque()
        self._remaining = 0
        self._first_batch: Sequence[str] | None = urls
        self._more = more
        self._in_flight: set[asyncio.Task] = set()
        self._done: collections.deque[asyncio.Task] = collections.deque()
        self._wake = asyncio.Event()

    async def results(self) -> AsyncIterator[tuple[int, HttpResult]]:
        """Yield ``(index, result)`` for every URL, in the order the downloads finish.

        While the consumer does not read, no new request starts, so at most
        ``max_concurrency`` bodies wait in memory. Leaving the loop early cancels the
        requests in flight.
        """
        self._queue(self._first_batch)
        self._first_batch = None
        try:
            while True:
                while self._done:
                    self._handle(self._done.popleft())
                while self._finished:
                    yield self._finished.popleft()
                self._pull()
                if self._finished:
                    continue
                if not self._remaining:
                    break

                self._start_ready()
                if self._done:
                    continue
                if len(self._in_flight) >= self.http.max_concurrency:
                    await self._wait(None)  # a finishing request frees a slot
                    continue
                wakeup = self.scheduler.next_wakeup()
                if not self._in_flight and wakeup is None:
                    raise RuntimeError(f"internal error: {self._remaining} URLs remain but none can start")
                await self._wait(None if wakeup is None else max(0.0, wakeup - self.clock()))
        finally:
            for task in self._in_flight:
                task.cancel()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            self.stats.hosts = len(self.scheduler.hosts)

    def _pull(self) -> None:
        """Queue batches from ``more`` while fewer than ``max_concurrency`` URLs wait to start."""
        while self._more is not None and self._remaining - len(self._in_flight) < self.http.max_concurrency:
            batch = next(self._more, None)
            if batch is None:
                self._more = None
            else:
                self._queue(batch)

    def _queue(self, urls: Sequence[str]) -> None:
        now = self.clock()
        for url in urls:
            index = self._next_index
            self._next_index += 1
            self.urls[index] = url
            self._remaining += 1
            key = host_key(url)
            stop_reason = None if key is None else self.scheduler.stopped_reason(key)
            if key is None:
                self._direct.append(index)
            elif stop_reason is not None:
                self._finish_not_requested(_Job(index), stop_reason)
            elif not self.respect_robots_txt:
                self.scheduler.add(key, _Job(index), index, now)
            else:
                self._queue_after_robots(key, origin_of(url), index, now)

    def _queue_after_robots(self, key: str, origin: str, index: int, now: float) -> None:
        """Queue an image URL once its origin's robots.txt is known, requesting it on first sight."""
        known = self._robots.get(origin)
        if known is not None:
            self._apply_robots(key, index, *known, now)
            return
        waiting = self._waiting.get(origin)
        if waiting is None:
            waiting = self._waiting[origin] = []
            # Order -1 puts robots.txt before every URL of the host.
            self.scheduler.add(key, _Job(-1, origin=origin), -1, now)
        waiting.append(index)

    def _start_ready(self) -> None:
        now = self.clock()
        while len(self._in_flight) < self.http.max_concurrency:
            if self._direct:
                self._start(None, _Job(self._direct.popleft()))
                continue
            ready = self.scheduler.pop_ready(now)
            if ready is None:
                return
            self._start(*ready)

    def _start(self, key: str | None, job: _Job) -> None:
        task = asyncio.create_task(self._request(key, job))
        self._in_flight.add(task)
        task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            self._done.append(task)
            self._wake.set()

    async def _wait(self, timeout_s: float | None) -> None:
        self._wake.clear()
        if timeout_s is None:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()

    async def _request(self, key: str | None, job: _Job) -> tuple[str | None, _Job, HttpResult]:
        if job.origin is not None:
            url, config = f"{job.origin}/robots.txt", self._robots_http
        else:
            url, config = self.urls[job.index], self._image_http
        try:
            result = await http_get(self.session, url, config)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - one URL must not stop the others
            # http_get maps network and HTTP problems to statuses, so this is a bug. Log
            # the traceback and record the URL as failed so that the run continues.
            logger.exception("internal error while downloading %s", url)
            result = HttpResult(
                url=url, final_url=url, status=FetchStatus.CONNECTION_ERROR, error=f"internal error: {type(error).__name__}: {error}"
            )
        return key, job, result

    def _handle(self, task: asyncio.Task) -> None:
        key, job, result = task.result()
        now = self.clock()
        if key is None:
            self._finish(job.index, result, job.attempts + 1)
        elif job.origin is not None:
            self._handle_robots(key, job.origin, result, now)
        else:
            self._handle_image(key, job, result, now)

    def _finish(self, index: int, result: HttpResult, attempts: int) -> None:
        result.attempts = attempts
        del self.urls[index]
        self._finished.append((index, result))
        self._remaining -= 1

    def _pace(self, key: str, result: HttpResult, now: float) -> tuple[bool, float | None, bool]:
        """Report a finished request to the scheduler; return (throttled, Retry-After in s, host reached its limit)."""
        throttled = result.status is FetchStatus.HTTP_ERROR and result.http_status in THROTTLING_HTTP_STATUSES
        retry_after_s = parse_retry_after(result.headers.get("retry-after")) if throttled else None
        if throttled:
            response = Response.THROTTLED
            self.stats.throttled += 1
        elif result.http_status is not None:
            response = Response.ANSWERED
        else:
            response = Response.NO_ANSWER
        reached_limit = self.scheduler.finish(key, now, response, retry_after_s)
        return throttled, retry_after_s, reached_limit

    def _handle_image(self, key: str, job: _Job, result: HttpResult, now: float) -> None:
        attempt = job.attempts + 1
        self.stats.requests += 1
        if self.health is not None:
            self.health.record(request_label(result.status, result.http_status))
        throttled, retry_after_s, reached_limit = self._pace(key, result, now)

        stop_reason = None
        if throttled and retry_after_s is not None and retry_after_s > self.http.max_backoff_s:
            stop_reason = (
                f"{key} answered HTTP {result.http_status} with Retry-After {retry_after_s:g} s, "
                f"more than max_backoff_s {self.http.max_backoff_s:g} s"
            )
            result.error = f"{result.error}; Retry-After {retry_after_s:g} s exceeds max_backoff_s, not retried"
        elif reached_limit:
            stop_reason = f"{key} answered {self.politeness.max_throttled_in_row} requests in a row with HTTP 429 or 503"
        if stop_reason is not None:
            self._stop_host(key, stop_reason)

        retry = (
            is_transient(result.status, result.http_status)
            and attempt <= self.http.retries
            and self.scheduler.stopped_reason(key) is None
        )
        if not retry:
            self._finish(job.index, result, attempt)
            return

        wait_s = retry_after_s if retry_after_s is not None else backoff_delay_s(attempt, self.http)
        retry_job = dataclasses.replace(job, attempts=attempt, previous=result)
        self.scheduler.add(key, retry_job, job.index, now, not_before=now + wait_s)
        self.stats.retries += 1
        _retry_log.record(
            request_label(result.status, result.http_status), "%s (%s), waiting %.1f s", result.url, result.error, wait_s
        )

    def _stop_host(self, key: str, reason: str) -> None:
        if self.scheduler.stopped_reason(key) is not None:
            return
        queued = self.scheduler.stop(key, reason)
        self.stats.hosts_stopped += 1
        _stopped_log.record("throttled", "%s; its %d queued URLs are not requested", reason, len(queued))
        for job in queued:
            if job.origin is not None:
                self._reject_origin(job.origin, FetchStatus.HTTP_ERROR, f"not requested: {reason}")
            else:
                self._finish_not_requested(job, reason)

    def _finish_not_requested(self, job: _Job, reason: str) -> None:
        """Finish a queued job of a stopped host: with its previous result if it waited for a retry."""
        if job.previous is not None:
            job.previous.error = f"{job.previous.error}; not retried: {reason}"
            self._finish(job.index, job.previous, job.attempts)
            return
        url = self.urls[job.index]
        self.stats.not_requested += 1
        result = HttpResult(url=url, final_url=url, status=FetchStatus.HTTP_ERROR, error=f"not requested: {reason}")
        self._finish(job.index, result, job.attempts)

    def _reject_origin(self, origin: str, status: FetchStatus, error: str) -> None:
        for index in self._waiting.pop(origin, []):
            url = self.urls[index]
            self._finish(index, HttpResult(url=url, final_url=url, status=status, error=error), 0)

    def _apply_robots(self, key: str, index: int, rules: RobotsRules, max_crawl_delay_s: float | None, now: float) -> None:
        """Finish a URL that its origin's robots.txt rejects, or queue it."""
        url = self.urls[index]
        rejection = robots_rejection(url, rules, max_crawl_delay_s)
        stop_reason = self.scheduler.stopped_reason(key)
        if rejection is not None:
            self.stats.robots_rejected += 1
            status, error = rejection
            self._finish(index, HttpResult(url=url, final_url=url, status=status, error=error), 0)
        elif stop_reason is not None:
            self._finish_not_requested(_Job(index), stop_reason)
        else:
            self.scheduler.add(key, _Job(index), index, now)

    def _handle_robots(self, key: str, origin: str, result: HttpResult, now: float) -> None:
        self.stats.robots_requests += 1
        _throttled, _retry_after_s, reached_limit = self._pace(key, result, now)
        rules = interpret_robots_result(origin, result, level=logging.DEBUG)
        _robots_log.record(rules.outcome.value, "%s/robots.txt (%s)", origin, result.error or f"HTTP {result.http_status}")

        if self.politeness.respect_crawl_delay and rules.crawl_delay_s is not None:
            max_crawl_delay_s = self.politeness.max_crawl_delay_s
            if rules.crawl_delay_s <= max_crawl_delay_s:
                self.scheduler.raise_base_delay(key, rules.crawl_delay_s)
        else:
            max_crawl_delay_s = None

        self._robots[origin] = (rules, max_crawl_delay_s)
        for index in self._waiting.pop(origin, []):
            self._apply_robots(key, index, rules, max_crawl_delay_s, now)

        if reached_limit:
            self._stop_host(key, f"{key} answered {self.politeness.max_throttled_in_row} requests in a row with HTTP 429 or 503")


async def iter_downloads(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    config: HttpConfig,
    politeness: PolitenessConfig | None = None,
    *,
    respect_robots_txt: bool = True,
    health: RunHealth | None = None,
) -> AsyncIterator[tuple[int, HttpResult]]:
    """Download ``urls`` with a ``Downloader`` and yield ``(index, result)`` pairs as downloads finish."""
    downloader = Downloader(session, urls, config, politeness, respect_robots_txt=respect_robots_txt, health=health)
    async for item in downloader.results():
        yield item


async def download_all(
    urls: Sequence[str],
    config: HttpConfig,
    session: aiohttp.ClientSession | None = None,
    politeness: PolitenessConfig | None = None,
    *,
    respect_robots_txt: bool = True,
    health: RunHealth | None = None,
) -> list[HttpResult]:
    """Download ``urls`` and return their results in input order.

    Opens (and closes) a session from ``config`` unless one is given.
    """
    results: list[HttpResult | None] = [None] * len(urls)
    async with contextlib.nullcontext(session) if session is not None else make_session(config) as active:
        downloader = Downloader(active, urls, config, politeness, respect_robots_txt=respect_robots_txt, health=health)
        async for index, result in downloader.results():
            results[index] = result

    counts = collections.Counter(result.status.value for result in results)
    logger.info("downloaded %d URLs: %s", len(urls), ", ".join(f"{name} {count}" for name, count in counts.most_common()))
    return results
