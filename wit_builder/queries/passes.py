"""Run one counting pass over a dump, in this process or in worker processes.

Three ways to read, chosen by ``run_pass``:

- one process (``workers=1``): the pass reads the dump itself;
- a multistream dump with its index: the page streams are cut into byte ranges (about
  four per worker, so a slow range does not hold up the end), and each worker
  decompresses and parses its own ranges;
- any other dump: this process decompresses and parses it and hands batches of pages to
  the workers, which strip markup and count (the costly part).

Each worker keeps one pass object for the whole run and spills its counts to run files,
so only file names and small stats come back through the result queue.
``run_cache_pass`` shares out the token cache files of a first pass in the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import resource
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from tqdm import tqdm

from wit_builder.queries.dump import DumpReader, SiteInfo, WikiPage
from wit_builder.queries.multistream import (
    ByteRange,
    RangeStats,
    check_index,
    iter_range_pages,
    plan_ranges,
    read_index_offsets,
)

logger = logging.getLogger(__name__)

#: Ranges per worker in multistream mode, and the text size of a batch in single-reader mode.
RANGES_PER_WORKER = 4
BATCH_TEXT_BYTES = 1 << 20
_POLL_SECONDS = 1.0


class CountingPass(Protocol):
    stats: Counter

    def add_page(self, page: WikiPage, siteinfo: SiteInfo) -> None: ...

    def finish(self) -> dict[str, list[Path]]: ...


class CachePass(Protocol):
    stats: Counter

    def add_cache_file(self, path: Path) -> None: ...

    def finish(self) -> dict[str, list[Path]]: ...


@dataclass
class DumpSource:
    """A dump to read: its path, its <siteinfo>, and the multistream index when there is one."""

    path: Path
    siteinfo: SiteInfo
    index: Path | None = None
    max_pages: int | None = None


@dataclass
class PassOutcome:
    """The runs a pass wrote, its counts, and how far it read."""

    runs: dict[str, list[Path]] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    truncated: bool = False
    stop_reasons: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    worker_peak_rss_kb: int = 0

    def add_runs(self, runs: dict[str, list[Path]]) -> None:
        for name, paths in runs.items():
            self.runs.setdefault(name, []).extend(paths)


class WorkerError(RuntimeError):
    """A counting worker failed. The message contains its traceback."""


def run_pass(
    make_pass: Callable[[], CountingPass],
    source: DumpSource,
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "counting",
) -> PassOutcome:
    """Count the pages of ``source`` with passes made by ``make_pass``; return the merged outcome.

    ``make_pass`` must be picklable (a class or a functools.partial of one) when
    ``workers`` is more than 1, because each worker process makes its own pass.
    """
    started = time.monotonic()
    if workers < 1:
        raise ValueError(f"invalid workers {workers}: it must be at least 1")
    if source.index is not None and source.max_pages is None:
        outcome = _run_ranges(make_pass, source, workers, progress, desc)
    elif workers == 1:
        outcome = _run_inline(make_pass, source, progress, desc)
    else:
        outcome = _run_batches(make_pass, source, workers, progress, desc)
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def run_cache_pass(
    make_pass: Callable[[], CachePass],
    files: list[Path],
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "counting",
) -> PassOutcome:
    """Count the token cache ``files`` of a first pass with passes made by ``make_pass``."""
    started = time.monotonic()
    bar = tqdm(total=sum(path.stat().st_size for path in files), unit="B", unit_scale=True, desc=desc, disable=not progress)
    if workers == 1 or len(files) < 2:
        counting = make_pass()
        for path in files:
            counting.add_cache_file(path)
            bar.update(path.stat().st_size)
        outcome = PassOutcome()
        outcome.add_runs(counting.finish())
        outcome.stats.update(counting.stats)
    else:
        pool = _WorkerPool(make_pass, None, min(workers, len(files)), queue_size=len(files) + workers)
        pool.bar = bar
        try:
            for path in files:
                pool.put(path)
            outcome = pool.close()
        finally:
            pool.stop()
    bar.close()
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _reader(source: DumpSource, progress: bool, desc: str) -> DumpReader:
    return DumpReader(
        source.path,
        keep_namespaces=None,
        include_redirects=True,
        max_articles=source.max_pages,
        progress=progress,
        progress_desc=desc,
    )


def _note_reader(outcome: PassOutcome, reader: DumpReader) -> None:
    outcome.stats["xml_pages_read"] += reader.stats.pages_seen
    if reader.stats.truncated:
        outcome.truncated = True
        outcome.stop_reasons.append(reader.stats.stop_reason or "")


def _run_inline(make_pass: Callable[[], CountingPass], source: DumpSource, progress: bool, desc: str) -> PassOutcome:
    counting = make_pass()
    reader = _reader(source, progress, desc)
    for page in reader:
        counting.add_page(page, source.siteinfo)
    outcome = PassOutcome()
    outcome.add_runs(counting.finish())
    outcome.stats.update(counting.stats)
    _note_reader(outcome, reader)
    return outcome


class _WorkerPool:
    """Worker processes that take tasks from one queue and report on another."""

    def __init__(self, make_pass: Callable, source: DumpSource | None, workers: int, queue_size: int):
        context = multiprocessing.get_context("spawn")
        self.tasks = context.Queue(maxsize=queue_size)
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=_work,
                args=(
                    make_pass,
                    str(source.path) if source is not None else "",
                    source.siteinfo if source is not None else None,
                    self.tasks,
                    self.results,
                    logging.getLogger().getEffectiveLevel(),
                ),
                name=f"wit-queries-{number}",
                daemon=True,
            )
            for number in range(workers)
        ]
        self.outcome = PassOutcome()
        self.finished = 0
        self.bar: tqdm | None = None
        for process in self.processes:
            process.start()

    def put(self, task: object) -> None:
        """Queue a task, reading reports while the queue is full, so a failed worker is noticed."""
        while True:
            try:
                self.tasks.put(task, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                self.read_reports(block=False)

    def read_reports(self, block: bool) -> None:
        """Handle reports; with ``block``, wait until every worker has finished."""
        while self.finished < len(self.processes):
            try:
                report = self.results.get(timeout=_POLL_SECONDS if block else 0.0)
            except queue.Empty:
                self._check_alive()
                if not block:
                    return
                continue
            self._handle(report)

    def _handle(self, report: tuple) -> None:
        kind = report[0]
        if kind == "error":
            self.stop()
            raise WorkerError(f"a counting worker failed:\n{report[1]}")
        if kind == "range":
            _kind, size, stats = report
            self.outcome.stats["xml_pages_read"] += stats.pages
            self.outcome.stats["xml_bytes"] += stats.xml_bytes
            if stats.truncated:
                self.outcome.truncated = True
                self.outcome.stop_reasons.append(stats.stop_reason or "")
            if self.bar is not None:
                self.bar.update(size)
        elif kind == "file":
            if self.bar is not None:
                self.bar.update(report[1])
        elif kind == "done":
            _kind, runs, stats = report
            self.outcome.add_runs(runs)
            peak = stats.pop("peak_rss_kb_max", 0)
            self.outcome.stats.update(stats)
            self.outcome.worker_peak_rss_kb = max(self.outcome.worker_peak_rss_kb, peak)
            self.finished += 1

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.exitcode not in (None, 0):
                self.stop()
                raise WorkerError(f"counting worker {process.name} died with exit code {process.exitcode}")

    def close(self) -> PassOutcome:
        """Tell the workers to finish, wait for their reports and return the outcome."""
        for _process in self.processes:
            self.put(None)
        self.read_reports(block=True)
        for process in self.processes:
            process.join()
        return self.outcome

    def stop(self) -> None:
        """Terminate workers that still run and let this process exit with tasks left unsent."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        # Without this, the queue's feeder thread blocks exit while it waits to hand tasks
        # to workers that are gone.
        self.tasks.cancel_join_thread()


def _work(make_pass, dump_path: str, siteinfo: SiteInfo | None, tasks, results, log_level: int) -> None:
    """Body of a worker process: count every task until the None sentinel, then spill and report."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        counting = make_pass()
        while True:
            task = tasks.get()
            if task is None:
                break
            if isinstance(task, Path):
                counting.add_cache_file(task)
                results.put(("file", task.stat().st_size, None))
            elif isinstance(task, ByteRange):
                stats = RangeStats()
                for page in iter_range_pages(dump_path, task, siteinfo.namespaces, stats):
                    counting.add_page(page, siteinfo)
                results.put(("range", task.size, stats))
            else:
                for page in task:
                    counting.add_page(page, siteinfo)
        runs = counting.finish()
        counting.stats["peak_rss_kb_max"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results.put(("done", runs, counting.stats))
    except BaseException:  # noqa: BLE001 - every failure goes back to the parent with its traceback
        results.put(("error", traceback.format_exc()))


def _run_ranges(
    make_pass: Callable[[], CountingPass], source: DumpSource, workers: int, progress: bool, desc: str
) -> PassOutcome:
    offsets = read_index_offsets(source.index)
    check_index(source.path, offsets)
    size = os.path.getsize(source.path)
    ranges = plan_ranges(offsets, size, workers * RANGES_PER_WORKER)
    missing_streams = sum(1 for offset in offsets if offset >= size)
    logger.info("%s: %d streams in %d ranges over %d workers", desc, len(offsets), len(ranges), workers)
    pool = _WorkerPool(make_pass, source, workers, queue_size=len(ranges) + workers)
    pool.bar = tqdm(
        total=sum(byte_range.size for byte_range in ranges),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not progress,
    )
    try:
        for byte_range in ranges:
            pool.put(byte_range)
        outcome = pool.close()
    finally:
        pool.bar.close()
        pool.stop()
    if missing_streams:
        outcome.truncated = True
        outcome.stop_reasons.append(
            f"the index lists {missing_streams} streams past the end of the dump ({size} bytes): the dump is cut short"
        )
    return outcome


def _run_batches(
    make_pass: Callable[[], CountingPass], source: DumpSource, workers: int, progress: bool, desc: str
) -> PassOutcome:
    pool = _WorkerPool(make_pass, source, workers, queue_size=2 * workers)
    reader = _reader(source, progress, desc)
    try:
        batch: list[WikiPage] = []
        batch_bytes = 0
        for page in reader:
            batch.append(page)
            batch_bytes += len(page.text)
            if batch_bytes >= BATCH_TEXT_BYTES:
                pool.put(batch)
                batch, batch_bytes = [], 0
        if batch:
            pool.put(batch)
        outcome = pool.close()
    finally:
        pool.stop()
    _note_reader(outcome, reader)
    return outcome
