"""Fetch stage: download, validate and resize the images of partitions of matched candidates.

``fetch_parts`` reads the MatchedCandidate rows of each partition and writes exactly
one FetchResult per row, in input order, with status ok (and the resized JPEG) or a
named error. The output depends on the responses only, not on the concurrency or on
the order in which downloads finish.

Everything overlaps: downloads (asyncio, paced per host by one ``Downloader`` for the
whole run), decoding (worker processes) and writing. Results are written in row
groups as soon as the rows before them are done, so memory contains the rows in flight,
not a whole partition. The next partition's downloads start while the last ones
of the previous partition finish. robots.txt is requested once per origin per run.

With ``retry_failed``, only the rows of an existing output whose status
``retry.is_retryable`` accepts are fetched again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm import tqdm

from wit_builder.fetch.downloader import Downloader, DownloadStats
from wit_builder.fetch.health import HealthConfig, RunHealth
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder.fetch.pool import DEFAULT_CPU_SECONDS, DecodePool
from wit_builder.fetch.resizer import DEFAULT_MAX_PIXELS, RESIZE_MODES, ResizeOptions, ResizeResult
from wit_builder.fetch.retry import is_retryable
from wit_builder.fetch.robots_tag import robots_tag_disallows
from wit_builder.net import event_loop
from wit_builder.net.client import HttpConfig, HttpResult, make_session
from wit_builder.parquet import RecordWriter, read_records
from wit_builder.records import FetchResult, FetchStatus, MatchedCandidate

logger = logging.getLogger(__name__)

#: Decodes queued per worker process. Bodies of queued images stay in memory, so this
#: bounds memory at about processes * DECODE_QUEUE_PER_PROCESS * max_bytes.
DECODE_QUEUE_PER_PROCESS = 4
#: FetchResult rows per parquet row group. Rows carry their JPEG, about 30 KB at 256
#: pixels, so a group is a few MB.
ROW_GROUP_ROWS = 256


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
    #: Run the downloads on uvloop when it is installed (see ``net.event_loop``).
    uvloop: bool = True

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


@dataclass
class PartJob:
    """One partition to fetch: its MatchedCandidate input and its FetchResult output.

    With ``retry_failed``, ``out_path`` exists and only its rows with a retryable
    status are fetched again.
    """

    in_path: Path
    out_path: Path
    retry_failed: bool = False


@dataclass
class FetchRun:
    """Outcome of ``fetch_parts``: one FetchStats per job, and the request counts of the whole run."""

    parts: list[FetchStats]
    download: DownloadStats
    elapsed_s: float


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

    See ``fetch_parts``, which this calls with one job; the returned stats also carry
    the run's request counts.
    """
    run = fetch_parts([PartJob(Path(in_path), Path(out_path), retry_failed)], config, pool, health=health)
    stats = run.parts[0]
    for name, count in request_counts(run.download).items():
        setattr(stats, name, count)
    return stats


def fetch_parts(
    jobs: Sequence[PartJob],
    config: FetchConfig,
    pool: DecodePool | None = None,
    *,
    health: RunHealth | None = None,
) -> FetchRun:
    """Fetch the partitions of ``jobs`` in one stream of downloads and write each one's output.

    Each output has one row per input row, in input order. Rows of a partition that
    share a URL share one download and one decode. A partition is read when the
    downloads of the ones before it are nearly all started, and its output appears
    under its name only when its last row is written, so a killed run leaves every
    finished partition in place.

    ``pool`` lets callers reuse one set of worker processes; without it the function
    starts and stops its own. ``health`` lets several calls share one error-rate
    window. The caller writes the folder's stats.json (the ``wit fetch`` command does).

    A retry job's existing output must have the input's keys in the input's order
    (``resume.stale_output_reason``), else ValueError is raised when it is reached.

    Decoder processes start with "spawn", which re-imports the caller's main module,
    so a script that calls this must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    started = time.monotonic()
    if not jobs:
        return FetchRun([], DownloadStats(), 0.0)
    own_pool = pool is None
    if own_pool:
        pool = config.decode_pool()
    try:
        parts, download = event_loop.run(_fetch_parts(jobs, config, pool, health), config.uvloop)
    finally:
        if own_pool:
            pool.close()
    return FetchRun(parts, download, round(time.monotonic() - started, 3))


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """Count ``statuses`` per value, with every FetchStatus listed, also those at 0."""
    counts = {status.value: 0 for status in FetchStatus}
    for status, count in collections.Counter(statuses).items():
        counts[status] = counts.get(status, 0) + count
    return counts


def request_counts(download: DownloadStats) -> dict[str, int]:
    """Return the request counts of a run under the names of FetchStats and stats.json."""
    return {
        "requests": download.requests + download.robots_requests,
        "robots_requests": download.robots_requests,
        "throttled": download.throttled,
        "hosts_stopped": download.hosts_stopped,
    }


def log_disabled_opt_outs(config: FetchConfig) -> None:
    """Log a warning for each site opt-out that ``config`` turns off."""
    if not config.respect_robots_txt:
        logger.warning("robots.txt is ignored (--ignore-robots-txt): URLs that sites disallow for crawlers are fetched")
    if not config.respect_robots_tag:
        logger.warning("X-Robots-Tag is ignored (--ignore-robots-tag): images whose sites opt out of AI use are kept")


class _PartOutput:
    """The rows of one partition and their results, written in input order as they complete."""

    def __init__(self, job: PartJob):
        self.job = job
        self.rows = read_records(job.in_path, MatchedCandidate)
        self.started = time.monotonic()
        self.stats = FetchStats(rows=len(self.rows))
        self._statuses: list[str] = []
        self._done: dict[int, FetchResult] = {}
        self._next_row = 0

        targets = range(len(self.rows))
        self._previous: list[FetchResult] | None = None
        if job.retry_failed and job.out_path.exists():
            previous = read_records(job.out_path, FetchResult)
            if [result.key for result in previous] != [row.candidate_id for row in self.rows]:
                raise ValueError(
                    f"{job.out_path} does not contain the rows of {job.in_path} in order; fetch it again with --overwrite"
                )
            targets = [index for index, result in enumerate(previous) if is_retryable(result.status, result.http_status)]
            logger.info("%s: fetching %d of %d rows again (retryable failures)", job.out_path.name, len(targets), len(self.rows))
            self.stats.retried_rows = len(targets)
            self._previous = previous

        self.rows_by_url: dict[str, list[int]] = collections.defaultdict(list)
        for index in targets:
            self.rows_by_url[self.rows[index].url].append(index)
        self.stats.urls = len(self.rows_by_url)
        self.targets = len(targets)

        # A retry without retryable rows keeps the existing file as it is.
        self._writer = None
        if self._previous is None or self.targets:
            self._writer = RecordWriter(job.out_path, FetchResult, ROW_GROUP_ROWS)
        if self._previous is not None:
            retried = set(targets)
            for index, result in enumerate(self._previous):
                if index not in retried:
                    self.put(index, result)

    @property
    def finished(self) -> bool:
        return self._next_row == len(self.rows)

    def put(self, index: int, result: FetchResult) -> None:
        """Record the result of row ``index`` and write every row now complete in input order."""
        self._done[index] = result
        while self._next_row in self._done:
            ready = self._done.pop(self._next_row)
            self._statuses.append(ready.status)
            if self._writer is not None:
                self._writer.write(ready)
            self._next_row += 1

    def close(self) -> FetchStats:
        """Move the finished output into place and return the partition's stats."""
        if self._writer is not None:
            self._writer.close()
        self.stats.counts = status_counts(self._statuses)
        self.stats.elapsed_s = round(time.monotonic() - self.started, 3)
        stats = self.stats
        rate = stats.rows / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
        logger.info(
            "fetched %s: %d of %d rows ok in %.1f s (%.1f rows/s, %.1f MB); %s",
            self.job.in_path.name, stats.ok, stats.rows, stats.elapsed_s, rate, stats.bytes_downloaded / 1e6,
            ", ".join(f"{name} {count}" for name, count in stats.counts.items() if count and name != "ok") or "no errors",
        )
        return stats

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


async def _fetch_parts(
    jobs: Sequence[PartJob], config: FetchConfig, pool: DecodePool, health: RunHealth | None
) -> tuple[list[FetchStats], DownloadStats]:
    log_disabled_opt_outs(config)
    if health is None:
        health = RunHealth(config.health)
    options = config.resize_options()
    decode_slots = asyncio.Semaphore(pool.processes * DECODE_QUEUE_PER_PROCESS)
    decodes: set[asyncio.Task] = set()
    label = jobs[0].in_path.name if len(jobs) == 1 else f"{len(jobs)} parts"
    progress = tqdm(total=0, desc=f"fetch {label}", unit="img", mininterval=1.0, smoothing=0.1)
    postfix_at = 0.0

    part_stats: list[FetchStats | None] = [None] * len(jobs)
    open_parts: dict[int, _PartOutput] = {}
    #: Download index -> (job number, rows of that job that share the URL).
    waiting: dict[int, tuple[int, list[int]]] = {}
    next_download = 0

    def close_finished(number: int) -> None:
        part = open_parts[number]
        if part.finished:
            del open_parts[number]
            part_stats[number] = part.close()

    def url_batches() -> Iterator[list[str]]:
        """Open each job in turn and hand its URLs to the downloader."""
        nonlocal next_download
        for number, job in enumerate(jobs):
            part = open_parts[number] = _PartOutput(job)
            progress.total += part.targets
            progress.refresh()
            for indices in part.rows_by_url.values():
                waiting[next_download] = (number, indices)
                next_download += 1
            close_finished(number)
            yield list(part.rows_by_url)

    def record(download: int, response: HttpResult, image: ResizeResult | None) -> None:
        nonlocal postfix_at
        number, indices = waiting.pop(download)
        part = open_parts[number]
        for index in indices:
            part.put(index, _fetch_result(part.rows[index], response, image))
        progress.update(len(indices))
        close_finished(number)
        now = time.monotonic()
        if now - postfix_at >= 1.0:
            postfix_at = now
            progress.set_postfix_str(health.summary(), refresh=False)

    async def decode(download: int, response: HttpResult) -> None:
        try:
            image = await pool.resize(response.body, response.content_type, options)
        except Exception as error:  # noqa: BLE001 - one sample must not stop the run
            # resize_image reports bad images as statuses, so this is a bug or a pickling
            # problem. Log it and record the sample as failed.
            logger.exception("internal error while decoding %s", response.url)
            image = ResizeResult(FetchStatus.DECODE_ERROR, f"internal error: {type(error).__name__}: {error}")
        finally:
            decode_slots.release()
        record(download, response, image)

    try:
        async with make_session(config.http) as session:
            downloader = Downloader(
                session, [], config.http, config.politeness,
                respect_robots_txt=config.respect_robots_txt, health=health, more=url_batches(),
            )
            async for download, response in downloader.results():
                number, _ = waiting[download]
                stats = open_parts[number].stats
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
                    record(download, response, None)
                    continue

                # Waiting here stops reading downloads, which in turn pauses the
                # downloaders, so at most this many bodies wait for a decoder.
                await decode_slots.acquire()
                task = asyncio.create_task(decode(download, response))
                decodes.add(task)
                task.add_done_callback(decodes.discard)

            if decodes:
                await asyncio.gather(*decodes)
    finally:
        progress.close()
        # Parts still open here were cut short by an error, so their temporary files are deleted.
        for part in open_parts.values():
            part.abort()

    if open_parts or any(stats is None for stats in part_stats):
        raise RuntimeError(f"internal error: {len(open_parts)} partitions did not get every fetch result")
    return part_stats, downloader.stats


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
