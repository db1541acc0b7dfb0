"""Harvest a list of Common Crawl archives into one candidate partition each.

Each input (WARC, WAT or WET, local or remote) becomes ``part-NNNNN.parquet``, written in row
groups while the input streams, so memory does not grow with the file. An input that cannot be
opened, that breaks off or that is corrupt is logged and listed in stats.json with its location,
and the run goes on with the next input. The candidates read before a break stay in the input's
partition. With ``workers`` above 1 the inputs are read in parallel processes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from wit_builder.harvest.reader import ArchiveReader
from wit_builder.harvest.sources import ArchiveFormat, HarvestInput, InputOpenError, StreamConfig, open_input
from wit_builder.harvest.stats import HarvestStats
from wit_builder.harvest.warc import MAX_HTML_BYTES, harvest_warc_stream
from wit_builder.harvest.wat import harvest_wat_stream
from wit_builder.harvest.wet import TextStats, count_wet_stream
from wit_builder.parquet import RecordWriter, clear_parts
from wit_builder.records import Candidate
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_TRUNCATED = "truncated"
STATUS_FAILED = "failed"

#: Candidates buffered before they are written as one parquet row group.
ROW_GROUP_ROWS = 100_000


@dataclass
class ArchiveOptions:
    """Settings of an archive harvest."""

    #: Bytes of an HTML payload that are parsed; longer pages are cut there and counted.
    max_page_bytes: int = MAX_HTML_BYTES
    #: Settings of http(s) inputs, including ``allow_private``.
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Inputs read in parallel processes; 1 reads them one after another in this process.
    workers: int = 1
    #: ``source`` value of the candidates; None uses the format name ("warc" or "wat").
    source: str | None = None
    #: Show a progress bar of the records read when standard error is a terminal.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_page_bytes <= 0:
            raise ValueError(f"max_page_bytes must be positive, got {self.max_page_bytes!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers!r}")


@dataclass
class InputOutcome:
    """Result of harvesting one input: its counts, its partition and what went wrong, if anything.

    ``status`` is ``ok``, ``truncated`` (the input ends inside a record) or ``failed`` (it could
    not be opened, its connection broke off, or it is corrupt). ``offset`` is the byte offset of
    the damage. ``part`` is the partition's file name, None when nothing was written.
    """

    input: HarvestInput
    stats: HarvestStats
    text: TextStats = field(default_factory=TextStats)
    part: str | None = None
    status: str = STATUS_OK
    error: str | None = None
    offset: int | None = None
    bytes_read: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        """Return the entry of this input in the ``inputs`` list of stats.json."""
        entry = {
            "input": self.input.location,
            "format": self.input.format.value,
            "part": self.part,
            "status": self.status,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "counts": self.stats.counts(),
        }
        if self.error is not None:
            entry["error"] = self.error
        if self.offset is not None:
            entry["offset"] = self.offset
        if self.input.format is ArchiveFormat.WET:
            entry["text"] = self.text.to_json()
        return entry


@dataclass
class HarvestRun:
    """Outcomes of all inputs of a run and their summed counts."""

    outcomes: list[InputOutcome]
    total: HarvestStats
    text: TextStats

    @property
    def failed(self) -> list[InputOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == STATUS_FAILED]

    @property
    def truncated(self) -> list[InputOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == STATUS_TRUNCATED]

    def counts(self) -> dict[str, int]:
        """Return the run's flat counts, with the number of inputs by status."""
        counts = self.total.counts()
        counts["inputs"] = len(self.outcomes)
        counts["inputs_failed"] = len(self.failed)
        counts["inputs_truncated"] = len(self.truncated)
        return counts

    def stats_fields(self) -> dict:
        """Return the fields of stats.json besides ``stage`` and ``counts``."""
        return {
            **self.total.to_json(),
            "inputs": [outcome.to_json() for outcome in self.outcomes],
            "failures": [
                {"input": outcome.input.location, "status": outcome.status, "error": outcome.error, "offset": outcome.offset}
                for outcome in self.outcomes
                if outcome.status != STATUS_OK
            ],
            "text": self.text.to_json(),
        }


class CandidateWriter:
    """Write one partition's candidates to parquet in row groups, keeping the first of each candidate_id.

    The file appears under its name only when ``close`` renames the temporary file, so a
    reader never sees a half-written partition.
    """

    def __init__(self, path: str | os.PathLike, row_group_rows: int = ROW_GROUP_ROWS):
        self.path = Path(path)
        self.repeats = 0
        self._writer = RecordWriter(self.path, Candidate, row_group_rows)
        self._seen: set[str] = set()

    def add(self, candidates: Iterable[Candidate]) -> None:
        """Write candidates not seen before in this partition; a row group goes out when one is full."""
        for candidate in candidates:
            if candidate.candidate_id in self._seen:
                self.repeats += 1
                continue
            self._seen.add(candidate.candidate_id)
            self._writer.write(candidate)

    def close(self) -> Path:
        """Write the buffered rows and move the file to its final name."""
        return self._writer.close()


class _RecordProgress:
    """A tqdm bar of records read, updated every few thousand records to keep its cost low.

    The bar is shown only when standard error is a terminal, where it is redrawn in place.
    Elsewhere, such as in a log file, each redraw would be a new line, and tqdm is not imported.
    """

    def __init__(self, name: str, enabled: bool):
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc=name, unit=" records", leave=False)
        self._reported = 0

    def update(self, records: int) -> None:
        if self._bar is not None and records - self._reported >= 2000:
            self._bar.update(records - self._reported)
            self._reported = records

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def harvest_input(item: HarvestInput, out_path: str | os.PathLike, options: ArchiveOptions | None = None) -> InputOutcome:
    """Harvest one input into the partition ``out_path``; problems with the input become its status, never an exception.

    WET inputs give no candidates and write no partition, only text counts.
    """
    outcome = _harvest(item, Path(out_path), options or ArchiveOptions())
    _log_outcome(outcome)
    return outcome


def _harvest(item: HarvestInput, out_path: Path, options: ArchiveOptions) -> InputOutcome:
    source = options.source or item.format.value
    outcome = InputOutcome(input=item, stats=HarvestStats(source=source))
    started = time.monotonic()
    try:
        _read_input(item, out_path, options, outcome)
    except InputOpenError as error:
        outcome.status = STATUS_FAILED
        outcome.error = str(error)
    except Exception as error:  # noqa: BLE001 - one bad input must not end a run over thousands
        logger.exception("%s: unexpected error while reading it", item.location)
        outcome.status = STATUS_FAILED
        outcome.error = f"unexpected error: {type(error).__name__}: {error}"
    outcome.seconds = time.monotonic() - started
    return outcome


def _read_input(item: HarvestInput, out_path: Path, options: ArchiveOptions, outcome: InputOutcome) -> None:
    stats = outcome.stats
    with open_input(item.location, options.stream) as stream:
        reader = ArchiveReader(stream, item.location, parse_http=item.format is ArchiveFormat.WARC)
        progress = _RecordProgress(f"{item.format.value} {item.name}", options.progress)
        writer = None if item.format is ArchiveFormat.WET else CandidateWriter(out_path)

        def add_candidates(candidates: list[Candidate]) -> None:
            writer.add(candidates)
            progress.update(reader.records)

        try:
            if item.format is ArchiveFormat.WARC:
                harvest_warc_stream(reader, add_candidates, stats, stats.source, options.max_page_bytes)
            elif item.format is ArchiveFormat.WAT:
                harvest_wat_stream(reader, add_candidates, stats, stats.source)
            else:
                count_wet_stream(reader, stats, outcome.text)
        finally:
            progress.close()
            outcome.bytes_read = reader.bytes_read
            if writer is not None:
                writer.close()
                outcome.part = out_path.name
                stats.candidates -= writer.repeats
                stats.duplicate_candidates += writer.repeats

    damage = reader.damage
    if damage is None:
        return
    outcome.offset = damage.offset
    outcome.error = damage.message
    if damage.kind == "truncated":
        outcome.status = STATUS_TRUNCATED
        stats.extra["truncated_files"] += 1
    else:
        outcome.status = STATUS_FAILED


def _log_outcome(outcome: InputOutcome) -> None:
    item = outcome.input
    stats = outcome.stats
    records = stats.extra["records"]
    megabytes = outcome.bytes_read / 1e6
    rate = f"{records / outcome.seconds:.0f} records/s, {megabytes / outcome.seconds:.1f} MB/s" if outcome.seconds > 0 else ""
    if outcome.status == STATUS_FAILED and outcome.offset is None:
        logger.warning("%s: failed: %s", item.location, outcome.error)
        return
    if outcome.status == STATUS_TRUNCATED:
        logger.warning("%s: %s at byte offset %d; keeping the %d complete records before it",
                       item.location, outcome.error, outcome.offset, records)
    elif outcome.status == STATUS_FAILED:
        logger.warning("%s: reading stopped at byte offset %d: %s; keeping the %d records before it",
                       item.location, outcome.offset, outcome.error, records)
    if item.format is ArchiveFormat.WET:
        logger.info("%s: %d text records, %d characters (%d records, %.1f MB in %.1f s, %s)", item.name,
                    outcome.text.records, outcome.text.characters, records, megabytes, outcome.seconds, rate)
    else:
        logger.info("%s: %d candidates from %d HTML pages (%d records, %.1f MB in %.1f s, %s)", item.name,
                    stats.candidates, stats.pages_parsed, records, megabytes, outcome.seconds, rate)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def harvest_inputs(
    inputs: list[HarvestInput],
    out_dir: str | os.PathLike,
    options: ArchiveOptions | None = None,
    *,
    first_part: int = 0,
    clear: bool = True,
    write_stats: bool = True,
) -> HarvestRun:
    """Harvest each input into ``out_dir/part-NNNNN.parquet``, numbered from ``first_part`` in input order.

    ``clear`` removes old partitions first, and ``write_stats`` writes ``out_dir/stats.json``.
    An input that fails is listed in the result and in stats.json instead of raising an exception.
    """
    options = options or ArchiveOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if clear:
        clear_parts(out_dir)

    paths = [out_dir / part_name(first_part + index) for index in range(len(inputs))]
    if options.workers == 1 or len(inputs) <= 1:
        outcomes = [harvest_input(item, path, options) for item, path in zip(inputs, paths)]
    else:
        outcomes = _harvest_in_processes(inputs, paths, options)

    total = HarvestStats(source=options.source or "archives")
    text = TextStats()
    for outcome in outcomes:
        total.merge(outcome.stats)
        text.merge(outcome.text)
    run = HarvestRun(outcomes=outcomes, total=total, text=text)

    if write_stats:
        write_stage_stats(out_dir, "harvest", run.counts(), **run.stats_fields())
    logger.info("harvested %d candidates from %d inputs (%d failed, %d truncated) into %s",
                total.candidates, len(inputs), len(run.failed), len(run.truncated), out_dir)
    return run


def _harvest_in_processes(inputs: list[HarvestInput], paths: list[Path], options: ArchiveOptions) -> list[InputOutcome]:
    # Imported here because a run of one process, the common case for a single input, needs none of them.
    import concurrent.futures
    import multiprocessing

    from tqdm import tqdm

    # Per-input progress bars of several processes would overwrite each other, so only the parent shows one.
    worker_options = ArchiveOptions(**{**options.__dict__, "progress": False})
    context = multiprocessing.get_context("spawn")
    outcomes: list[InputOutcome] = [
        InputOutcome(input=item, stats=HarvestStats(source=options.source or item.format.value)) for item in inputs
    ]
    with concurrent.futures.ProcessPoolExecutor(max_workers=options.workers, mp_context=context) as pool:
        futures = {pool.submit(_harvest, item, path, worker_options): index
                   for index, (item, path) in enumerate(zip(inputs, paths))}
        for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="inputs",
                           unit=" inputs", disable=not options.progress):
            index = futures[future]
            try:
                outcomes[index] = future.result()
            except Exception as error:  # noqa: BLE001 - a crashed worker process fails its input only
                outcomes[index].status = STATUS_FAILED
                outcomes[index].error = f"worker process failed: {type(error).__name__}: {error}"
            _log_outcome(outcomes[index])
    return outcomes
