"""Fetch stage: download, validate and resize the images of one partition of matched candidates.

``fetch_partition`` reads MatchedCandidate rows and writes exactly one FetchResult
per row, in input order, with status ok (and the resized JPEG) or a named error.
The output depends on the responses only, not on the concurrency or on the order in
which downloads finish. Downloads (asyncio, paced per host by ``downloader``) and
decoding (worker processes) overlap: each finished download goes to the decode pool
while the next ones are still in flight. With ``retry_failed``, only the rows of an
existing output whose status ``retry.is_retryable`` accepts are fetched again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from wit_builder.fetch.downloader import Downloader
from wit_builder.fetch.health import HealthConfig, RunHealth
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder.fetch.pool import DEFAULT_CPU_SECONDS, DecodePool
from wit_builder.fetch.resizer import DEFAULT_MAX_PIXELS, RESIZE_MODES, ResizeOptions, ResizeResult
from wit_builder.fetch.retry import is_retryable
from wit_builder.fetch.robots_tag import robots_tag_disallows
from wit_builder.net.client import HttpConfig, HttpResult, make_session
from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, MatchedCandidate

logger = logging.getLogger(__name__)

#: Decodes queued per worker process. Bodies of queued images stay in memory, so this
#: bounds memory at about processes * DECODE_QUEUE_PER_PROCESS * max_bytes.
DECODE_QUEUE_PER_PROCESS = 4


@dataclass
class FetchConfig:
    """Settings of the fetch stage."""

    http: HttpConfig = field(default_factory=HttpConfig)
    #: Target size in pixels; its meaning depends on ``resize_mode``.
    image_size: int = 256
    #: One of keep_ratio, center_crop, border, no (see ``ResizeOptions``).
    resize_mode: str = "keep_ratio"
    #: Maximum width * height of a source image, checked before decoding.
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    #: Enlarge images whose relevant side is smaller than ``image_size``.
    upscale: bool = True
    #: Number of decoder processes; None uses every CPU.
    processes: int | None = None
    #: CPU seconds one image may take to decode and resize before its worker is killed (decode_timeout).
    decode_cpu_seconds: int = DEFAULT_CPU_SECONDS
    #: Drop images whose X-Robots-Tag forbids AI use or indexing (noai, noimageai, noindex, noimageindex).
    respect_robots_tag: bool = True
    #: Request robots.txt once per origin and skip the URLs that it disallows for "wit-builder".
    respect_robots_txt: bool = True
    #: Per-host spacing, adaptive backoff and Crawl-delay.
    politeness: PolitenessConfig = field(default_factory=PolitenessConfig)
    #: Error-rate monitor of the downloads.
    health: HealthConfig = field(default_factory=HealthConfig)

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"invalid resize_mode {self.resize_mode!r}; expected one of {', '.join(RESIZE_MODES)}")
        if self.processes is not None and self.processes <= 0:
            raise ValueError(f"processes must be positive, got {self.processes}")
        if self.decode_cpu_seconds < 1:
            raise ValueError(f"decode_cpu_seconds must be at least 1, got {self.decode_cpu_seconds}")

    def decode_pool(self) -> DecodePool:
        """Create the decoder processes with this config's limits."""
        return DecodePool(self.processes, self.max_pixels, cpu_seconds=self.decode_cpu_seconds)

    def resize_options(self) -> ResizeOptions:
        return ResizeOptions(
            image_size=self.image_size,
            resize_mode=self.resize_mode,
            max_pixels=self.max_pixels,
            jpeg_quality=self.jpeg_quality,
            upscale=self.upscale,
        )


@dataclass
class FetchStats:
    """Counts of one fetch partition."""

    rows: int = 0
    #: Number of rows per FetchStatus value, every status listed.
    counts: dict[str, int] = field(default_factory=dict)
    #: Distinct URLs requested; rows with the same URL share one download.
    urls: int = 0
    bytes_downloaded: int = 0
    #: Retries over all URLs (attempts beyond the first).
    retries: int = 0
    #: Image requests, retries included, and robots.txt requests.
    requests: int = 0
    robots_requests: int = 0
    #: Responses with HTTP 429 or 503.
    throttled: int = 0
    #: Hosts that were stopped after throttling.
    hosts_stopped: int = 0
    #: Rows fetched again by ``retry_failed``; the other rows were kept from the earlier output.
    retried_rows: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.counts.get(FetchStatus.OK.value, 0)


def fetch_partition(
    in_path: Path,
    out_path: Path,
    config: FetchConfig,
    pool: DecodePool | None = None,
    *,
    retry_failed: bool = False,
    health: RunHealth | None = None,
) -> FetchStats:
    """Fetch every row of one MatchedCandidate parquet file and write FetchResult rows to ``out_path``.

    The output has one row per input row, in input order. Rows that share a URL share
    one download and one decode. ``pool`` lets several partitions reuse one set of
    worker processes; without it the function starts and stops its own. ``health``
    lets several partitions share one error-rate window.
    The caller writes the folder's stats.json (the ``wit fetch`` command does).

    With ``retry_failed`` and an existing ``out_path``, only the rows whose status
    ``retry.is_retryable`` accepts are fetched again, and their new results replace
    the old rows in place. The existing output must have the input's keys in the
    input's order (``resume.stale_output_reason``), else ValueError is raised.

    Decoder processes start with "spawn", which re-imports the caller's main module,
    so a script that calls this must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    in_path = Path(in_path)
    out_path = Path(out_path)
    rows = read_records(in_path, MatchedCandidate)
    started = time.monotonic()

    previous: list[FetchResult] | None = None
    targets = list(range(len(rows)))
    if retry_failed and out_path.exists():
        previous = read_records(out_path, FetchResult)
        if [result.key for result in previous] != [row.candidate_id for row in rows]:
            raise ValueError(f"{out_path} does not contain the rows of {in_path} in order; fetch it again with --overwrite")
        targets = [index for index, result in enumerate(previous) if is_retryable(result.status, result.http_status)]
        logger.info("%s: fetching %d of %d rows again (retryable failures)", out_path.name, len(targets), len(rows))

    if previous is not None and not targets:
        stats = FetchStats(rows=len(rows))
        results = previous
    else:
        own_pool = pool is None
        if own_pool:
            pool = config.decode_pool()
        try:
            fetched, stats = asyncio.run(_fetch_rows([rows[index] for index in targets], config, pool, in_path.name, health))
        finally:
            if own_pool:
                pool.close()
        if previous is None:
            results = fetched
        else:
            results = previous
            for index, result in zip(targets, fetched):
                results[index] = result
            stats.rows = len(rows)
            stats.retried_rows = len(targets)
        write_records(out_path, results, FetchResult)

    stats.counts = status_counts(results)
    stats.elapsed_s = round(time.monotonic() - started, 3)
    rate = stats.rows / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    logger.info(
        "fetched %s: %d of %d rows ok in %.1f s (%.1f rows/s, %.1f MB); %s",
        in_path.name, stats.ok, stats.rows, stats.elapsed_s, rate, stats.bytes_downloaded / 1e6,
        ", ".join(f"{name} {count}" for name, count in stats.counts.items() if count and name != "ok") or "no errors",
    )
    return stats


def status_counts(results: list[FetchResult]) -> dict[str, int]:
    """Count ``results`` per FetchStatus value, every status listed."""
    counts = collections.Counter(result.status for result in results)
    return {status.value: counts.get(status.value, 0) for status in FetchStatus}


def log_disabled_opt_outs(config: FetchConfig) -> None:
    """Log a warning for each site opt-out that ``config`` turns off."""
    if not config.respect_robots_txt:
        logger.warning("robots.txt is ignored (--ignore-robots-txt): URLs that sites disallow for crawlers are fetched")
    if not config.respect_robots_tag:
        logger.warning("X-Robots-Tag is ignored (--ignore-robots-tag): images whose sites opt out of AI use are kept")


async def _fetch_rows(
    rows: list[MatchedCandidate], config: FetchConfig, pool: DecodePool, label: str, health: RunHealth | None = None
) -> tuple[list[FetchResult], FetchStats]:
    rows_by_url: dict[str, list[int]] = collections.defaultdict(list)
    for index, row in enumerate(rows):
        rows_by_url[row.url].append(index)
    urls = list(rows_by_url)

    log_disabled_opt_outs(config)
    if health is None:
        health = RunHealth(config.health)
    results: list[FetchResult | None] = [None] * len(rows)
    stats = FetchStats(rows=len(rows), urls=len(urls))
    options = config.resize_options()
    decode_slots = asyncio.Semaphore(pool.processes * DECODE_QUEUE_PER_PROCESS)
    decodes: set[asyncio.Task] = set()
    progress = tqdm(total=len(rows), desc=f"fetch {label}", unit="img", mininterval=1.0, smoothing=0.1)
    postfix_at = 0.0

    def record(url: str, response: HttpResult, image: ResizeResult | None) -> None:
        nonlocal postfix_at
        for index in rows_by_url[url]:
            results[index] = _fetch_result(rows[index], response, image)
        progress.update(len(rows_by_url[url]))
        now = time.monotonic()
        if now - postfix_at >= 1.0:
            postfix_at = now
            progress.set_postfix_str(health.summary(), refresh=False)

    async def decode(url: str, response: HttpResult) -> None:
        try:
            image = await pool.resize(response.body, response.content_type, options)
        except Exception as error:  # noqa: BLE001 - one sample must not stop the run
            # resize_image reports bad images as statuses, so this is a bug or a pickling
            # problem. Log it and record the sample as failed.
            logger.exception("internal error while decoding %s", url)
            image = ResizeResult(FetchStatus.DECODE_ERROR, f"internal error: {type(error).__name__}: {error}")
        finally:
            decode_slots.release()
        record(url, response, image)

    try:
        async with make_session(config.http) as session:
            downloader = Downloader(
                session, urls, config.http, config.politeness, respect_robots_txt=config.respect_robots_txt, health=health
            )
            async for index, response in downloader.results():
                url = urls[index]
                stats.bytes_downloaded += response.bytes_received
                stats.retries += max(0, response.attempts - 1)

                if response.ok and config.respect_robots_tag:
                    # NOTE: the client joins repeated X-Robots-Tag lines with commas, so a line
                    # without an agent prefix after "otherbot: ..." is read as otherbot's too.
                    directive = robots_tag_disallows(response.headers.get("x-robots-tag"))
                    if directive is not None:
                        response.status = FetchStatus.ROBOTS_DISALLOWED
                        response.error = f"X-Robots-Tag contains {directive}"
                        response.body = None

                if not response.ok:
                    record(url, response, None)
                    continue

                # Waiting here stops reading downloads, which in turn pauses the
                # downloaders, so at most this many bodies wait for a decoder.
                await decode_slots.acquire()
                task = asyncio.create_task(decode(url, response))
                decodes.add(task)
                task.add_done_callback(decodes.discard)

            if decodes:
                await asyncio.gather(*decodes)
    finally:
        progress.close()

    missing = [index for index, result in enumerate(results) if result is None]
    if missing:
        raise RuntimeError(f"internal error: {len(missing)} rows got no fetch result, first row {missing[0]}")
    download = downloader.stats
    stats.requests = download.requests + download.robots_requests
    stats.robots_requests = download.robots_requests
    stats.throttled = download.throttled
    stats.hosts_stopped = download.hosts_stopped
    stats.counts = status_counts(results)
    return results, stats


def _fetch_result(row: MatchedCandidate, response: HttpResult, image: ResizeResult | None) -> FetchResult:
    """Build the output row of one input row from its download and, if decoded, its image."""
    result = FetchResult(
        key=row.candidate_id,
        url=row.url,
        caption=row.text,
        status=response.status.value,
        error=response.error,
        http_status=response.http_status,
        bytes_downloaded=response.bytes_received,
        query_ids=list(row.query_ids),
        page_url=row.page_url,
        text_source=row.text_source,
    )
    if image is None:
        return result

    result.status = image.status.value
    result.error = image.error
    result.original_width = image.original_width
    result.original_height = image.original_height
    if image.status is FetchStatus.OK:
        result.width = image.width
        result.height = image.height
        result.image = image.jpeg
    return result
