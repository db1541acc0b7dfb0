"""Crawl web pages from seed URLs and harvest their (image URL, text) candidates.

The crawl is breadth-first by link depth: seeds have depth 0 and links found on a page of
depth d get depth d + 1, up to ``max_depth``. Each origin's robots.txt is fetched once
through the same HTTP client and honoured for the product token "wit-builder", including
its Crawl-delay. Only text/html and XHTML responses are parsed. Links to other hosts than
the seeds' are not followed unless ``same_host_only`` is off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from tqdm import tqdm

from wit_builder.harvest.decode import decode_html
from wit_builder.harvest.extract import drop_repeated, extract_page, resolve_url
from wit_builder.harvest.robots import ROBOTS_USER_AGENT, RobotsCache, RobotsRules
from wit_builder.harvest.stats import HarvestStats
from wit_builder.harvest.warc import HTML_MEDIA_TYPES
from wit_builder.net.client import HostLimiter, HttpConfig, HttpResult, http_get, make_session
from wit_builder.parquet import write_records
from wit_builder.records import Candidate, FetchStatus
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

SOURCE = "crawl"

#: Link targets with these path suffixes are not pages, so the crawler does not request them.
NON_HTML_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".ico", ".svg", ".tif", ".tiff",
    ".mp3", ".mp4", ".m4a", ".webm", ".avi", ".mov", ".ogg", ".wav",
    ".pdf", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".exe", ".dmg", ".iso",
    ".css", ".js", ".woff", ".woff2", ".ttf", ".eot",
)


@dataclass
class CrawlConfig:
    """Settings of one crawl."""

    http: HttpConfig = field(default_factory=HttpConfig)
    #: Links followed from a seed; 0 fetches only the seeds.
    max_depth: int = 2
    #: Maximum number of pages requested, robots.txt files not included.
    max_pages: int = 1000
    #: Follow only links to the hosts (and ports) of the seeds.
    same_host_only: bool = True
    #: Space the requests to a host by the Crawl-delay of its robots.txt.
    respect_crawl_delay: bool = True
    #: Upper bound in seconds on an honoured Crawl-delay.
    max_crawl_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_depth < 0:
            raise ValueError(f"CrawlConfig.max_depth must not be negative, got {self.max_depth}")
        if self.max_pages < 1:
            raise ValueError(f"CrawlConfig.max_pages must be at least 1, got {self.max_pages}")
        if self.max_crawl_delay_s < 0:
            raise ValueError(f"CrawlConfig.max_crawl_delay_s must not be negative, got {self.max_crawl_delay_s}")


def host_key(url: str) -> str:
    """Return the lower-case ``host:port`` of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{(parts.hostname or '').lower()}:{port}"


def is_non_html_link(url: str) -> bool:
    """Return whether a URL's path names a file type that is never an HTML page."""
    return urlsplit(url).path.lower().endswith(NON_HTML_SUFFIXES)


class _CrawlDelay:
    """Space the requests to one host by the robots.txt Crawl-delay."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_start: dict[str, float] = {}

    async def wait(self, host: str, delay_s: float) -> None:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            wait_s = self._next_start.get(host, 0.0) - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._next_start[host] = loop.time() + delay_s


class _Crawl:
    """State of one running crawl."""

    def __init__(self, session: aiohttp.ClientSession, config: CrawlConfig, progress: tqdm):
        self.session = session
        self.config = config
        self.progress = progress
        self.limiter = HostLimiter.from_config(config.http)
        self.robots = RobotsCache(session, config.http, self.limiter)
        self.delays = _CrawlDelay()
        self.queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.seen: set[str] = set()
        self.parsed: set[str] = set()
        self.allowed_hosts: set[str] = set()
        self.requested = 0
        self.candidates: list[Candidate] = []
        self.stats = HarvestStats(source=SOURCE)

    def add_seeds(self, seeds: list[str]) -> None:
        for seed in seeds:
            url = resolve_url(seed, seed)
            if url is None:
                logger.warning("skipping seed %r: not an absolute http(s) URL", seed)
                self.count_page(FetchStatus.INVALID_URL.value)
                continue
            self.allowed_hosts.add(host_key(url))
            if url not in self.seen:
                self.seen.add(url)
                self.queue.put_nowait((url, 0))

    def add_link(self, url: str, depth: int) -> None:
        if url in self.seen:
            return
        if self.config.same_host_only and host_key(url) not in self.allowed_hosts:
            self.stats.extra["links_offsite"] += 1
            return
        if is_non_html_link(url):
            self.stats.extra["links_not_html"] += 1
            return
        if depth > self.config.max_depth:
            self.stats.extra["links_beyond_max_depth"] += 1
            return
        if self.requested >= self.config.max_pages:
            self.stats.extra["links_beyond_max_pages"] += 1
            return
        self.seen.add(url)
        self.queue.put_nowait((url, depth))

    def count_page(self, status: str) -> None:
        self.stats.pages += 1
        self.stats.pages_by_status[status] += 1

    async def worker(self) -> None:
        while True:
            url, depth = await self.queue.get()
            try:
                await self.visit(url, depth)
            except Exception:  # one bad page must not end the crawl; the error is logged with its URL
                logger.exception("failed to process %s", url)
                self.stats.extra["page_errors"] += 1
            finally:
                self.queue.task_done()

    async def visit(self, url: str, depth: int) -> None:
        if self.requested >= self.config.max_pages:
            self.stats.extra["links_beyond_max_pages"] += 1
            return

        rules = await self.robots.rules_for(url)
        if rules.failure is not None:
            self.count_page(rules.failure.status.value)
            return
        if not rules.allows(url):
            self.count_page(FetchStatus.ROBOTS_DISALLOWED.value)
            return
        if self.requested >= self.config.max_pages:
            self.stats.extra["links_beyond_max_pages"] += 1
            return
        self.requested += 1

        await self.wait_for_crawl_delay(url, rules)
        # NOTE: http_get follows redirects itself, so a redirect target is not checked against
        # robots.txt or same_host_only. Links found on it are filtered as usual.
        result = await http_get(self.session, url, self.config.http, self.limiter)
        self.progress.update(1)
        self.count_page(result.status.value)
        if result.http_status is not None:
            self.stats.http_statuses[result.http_status] += 1
        if result.ok:
            self.parse(result, depth)

    async def wait_for_crawl_delay(self, url: str, rules: RobotsRules) -> None:
        if not self.config.respect_crawl_delay:
            return
        delay_s = rules.crawl_delay(ROBOTS_USER_AGENT)
        if delay_s:
            await self.delays.wait(host_key(url), min(delay_s, self.config.max_crawl_delay_s))

    def parse(self, result: HttpResult, depth: int) -> None:
        if result.content_type not in HTML_MEDIA_TYPES:
            self.stats.extra["pages_not_html"] += 1
            return
        page_url = result.final_url
        if page_url in self.parsed:
            # A redirect led to a page that was parsed already.
            self.stats.extra["pages_seen_before"] += 1
            return
        self.parsed.add(page_url)
        self.seen.add(page_url)

        html = decode_html(result.body or b"", result.headers.get("content-type"))
        extraction = extract_page(html, page_url, SOURCE)
        self.stats.add_page(extraction)
        self.candidates.extend(extraction.candidates)
        self.stats.extra["links_found"] += len(extraction.links)
        for link in extraction.links:
            self.add_link(link, depth + 1)


async def crawl_async(seeds: list[str], config: CrawlConfig) -> tuple[list[Candidate], HarvestStats]:
    """Crawl from ``seeds`` and return the candidates and counts; see ``crawl``."""
    started = time.monotonic()
    with tqdm(total=config.max_pages, desc="crawl", unit=" pages", leave=False) as progress:
        async with make_session(config.http) as session:
            state = _Crawl(session, config, progress)
            state.add_seeds(seeds)
            workers = [asyncio.create_task(state.worker()) for _ in range(config.http.max_concurrency)]
            try:
                await state.queue.join()
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    stats = state.stats
    stats.extra["pages_requested"] = state.requested
    stats.extra["robots_txt_requested"] = state.robots.fetched
    stats.extra["seeds"] = len(seeds)
    logger.info(
        "crawled %d pages (%d requested, %d parsed) from %d seeds in %.1f s: %d candidates",
        stats.pages, state.requested, stats.pages_parsed, len(seeds), time.monotonic() - started, stats.candidates,
    )
    return state.candidates, stats


def crawl(seeds: list[str], out_path: str | os.PathLike, config: CrawlConfig | None = None) -> HarvestStats:
    """Crawl from ``seeds`` and write the candidates to ``out_path`` (parquet) and stats.json beside it.

    Pages that fail (blocked address, DNS error, 404, ...) are counted by status, so a crawl
    whose every seed fails still writes an empty candidates file and its stats.
    Call ``crawl_async`` from code that already runs an event loop.
    """
    config = config or CrawlConfig()
    if config.http.allow_private:
        logger.warning("allow_private is on: the crawler may request loopback and private network addresses")
    out_path = Path(out_path)

    candidates, stats = asyncio.run(crawl_async(list(seeds), config))

    candidates, repeats = drop_repeated(candidates)
    stats.candidates -= repeats
    stats.duplicate_candidates += repeats
    write_records(out_path, candidates, Candidate)
    write_stage_stats(
        out_path.parent,
        "harvest",
        stats.counts(),
        **stats.to_json(),
        seeds=list(seeds),
        max_depth=config.max_depth,
        max_pages=config.max_pages,
        same_host_only=config.same_host_only,
    )
    return stats
