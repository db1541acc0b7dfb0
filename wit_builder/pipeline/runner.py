"""Run a whole pipeline from a config, stage after stage, on the local machine.

Each stage reads the previous stage's folder in the run folder and writes its own.
Stage functions work on one partition file at a time, so partitions can be spread
over processes here and over a Ray cluster later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Iterator

from wit_builder.parquet import clear_parts, iter_records, list_parts, write_records
from wit_builder.pipeline.config import STAGES, PipelineConfig
from wit_builder.records import MatchedCandidate
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

SITE_FILE = "site.json"


def select_stages(first: str | None, last: str | None) -> list[str]:
    """Return the stages from ``first`` to ``last`` inclusive, in pipeline order."""
    for name in (first, last):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    start = STAGES.index(first) if first else 0
    stop = STAGES.index(last) if last else len(STAGES) - 1
    if start > stop:
        raise ValueError(f"stage {first!r} comes after {last!r}")
    return list(STAGES[start : stop + 1])


class PipelineRunner:
    """Run the stages of one pipeline config and record their timings in RUN_DIR/run.json."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.run_dir = config.run_dir
        self.seed_urls: list[str] = list(config.harvest.seeds)
        self.timings: dict[str, float] = {}

    def run(self, stages: list[str]) -> dict[str, float]:
        """Run ``stages`` in order and return the seconds each took."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logger.info("run folder: %s; stages: %s", self.run_dir, ", ".join(stages))
        needs_site = self.config.harvest.sample_site is not None and bool({"harvest", "fetch"} & set(stages))
        # Written before the first stage too, so that a report stage reads this run's config and query list.
        self._write_run_record(stages)

        with self._sample_site(enabled=needs_site):
            for stage in stages:
                started = time.perf_counter()
                logger.info("stage %s: starting", stage)
                getattr(self, f"run_{stage}")()
                self.timings[stage] = round(time.perf_counter() - started, 2)
                logger.info("stage %s: done in %.1f s", stage, self.timings[stage])
                self._write_run_record(stages)
        return self.timings

    def _write_run_record(self, stages: list[str]) -> None:
        record = {
            "config": str(self.config.path),
            "query_list": str(self._queries_path()),
            "stages": stages,
            "seconds": self.timings,
        }
        (self.run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    @contextlib.contextmanager
    def _sample_site(self, enabled: bool) -> Iterator[None]:
        """Serve the generated sample site on 127.0.0.1 while the block runs.

        The port is recorded in RUN_DIR/site.json and reused by later runs, because
        harvested candidate URLs contain it.
        """
        if not enabled:
            yield
            return

        from wit_builder.localserver import BackgroundServer
        from wit_builder.samplesite import build_site, site_app

        section = self.config.harvest.sample_site
        site = build_site(section.images, section.captions, seed=section.seed, photos=section.photos)
        site_file = self.run_dir / SITE_FILE
        port = 0
        if site_file.is_file():
            port = json.loads(site_file.read_text(encoding="utf-8")).get("port", 0)

        server = BackgroundServer(lambda: site_app(site), port=port)
        try:
            server.start()
        except (RuntimeError, OSError) as error:
            if not port:
                raise
            logger.warning("port %d of the earlier run is taken (%s); serving on a new port, so rerun from the harvest stage", port, error)
            server = BackgroundServer(lambda: site_app(site)).start()

        site_file.write_text(json.dumps({"port": server.port, "base_url": server.base_url}) + "\n", encoding="utf-8")
        self.seed_urls = [server.base_url, *self.config.harvest.seeds]
        try:
            yield
        finally:
            server.stop()

    def _queries_path(self) -> Path:
        if self.config.queries.list is not None:
            return self.config.queries.list
        return self.config.stage_dir("queries") / "queries.parquet"

    def run_queries(self) -> None:
        section = self.config.queries
        if section.dump is None:
            logger.info("using the prebuilt query list %s", section.list)
            return
        from wit_builder.queries.build import build_queries

        build_queries(section.dump, self.config.stage_dir("queries"), min_count=section.min_count, **section.options)

    def run_harvest(self) -> None:
        from wit_builder.harvest.stats import HarvestStats

        out_dir = self.config.stage_dir("candidates")
        clear_parts(out_dir)
        totals = HarvestStats(source="pipeline")
        sources: dict[str, dict] = {}
        fields: dict = {}
        part = 0

        if self.seed_urls:
            stats = self._crawl(out_dir / f"part-{part:05d}.parquet")
            sources[f"part-{part:05d}"] = {"source": "crawl", "counts": stats.counts()}
            totals.merge(stats)
            part += 1

        counts: dict[str, int] = {}
        if self.config.harvest.has_archives:
            run = self._harvest_archives(out_dir, first_part=part)
            totals.merge(run.total)
            # Inputs are keyed by their place in the input list: a WET input or a failed
            # one writes no partition, and the same location may fail twice.
            for index, outcome in enumerate(run.outcomes):
                sources[f"input-{index:05d}"] = {"source": f"{outcome.input.format.value}:{outcome.input.location}", **outcome.to_json()}
            counts = {name: value for name, value in run.counts().items() if name.startswith("inputs")}
            fields = {"failures": run.stats_fields()["failures"], "text": run.text.to_json()}

        write_stage_stats(out_dir, "harvest", {**totals.counts(), **counts}, partitions=sources, **totals.to_json(), **fields)

    def _crawl(self, out_path: Path):
        """Crawl the seeds in RUN_DIR/crawl, resuming a crawl with the same seeds, and gather its parts into ``out_path``."""
        from wit_builder.harvest.crawler import crawl_folder
        from wit_builder.records import Candidate

        crawl_dir = self.run_dir / "crawl"
        stats_path = crawl_dir / "stats.json"
        earlier_seeds = None
        if stats_path.is_file():
            earlier_seeds = json.loads(stats_path.read_text(encoding="utf-8")).get("seeds")
        restart = earlier_seeds != self.seed_urls
        if earlier_seeds is not None and restart:
            logger.info("the seeds differ from those of the crawl in %s; starting that crawl again", crawl_dir)

        stats = crawl_folder(self.seed_urls, crawl_dir, self.config.harvest.crawl, restart=restart)
        candidates = [row for crawl_part in list_parts(crawl_dir) for row in iter_records(crawl_part, Candidate)]
        write_records(out_path, candidates, Candidate)
        return stats

    def _harvest_archives(self, out_dir: Path, first_part: int):
        """Harvest the WARC, WAT, WET and path-list inputs of the config into partitions from ``first_part`` on."""
        from wit_builder.harvest.archives import ArchiveOptions, harvest_inputs
        from wit_builder.harvest.sources import InputOpenError, StreamConfig, resolve_inputs

        section = self.config.harvest
        stream = StreamConfig(allow_private=section.crawl.http.allow_private, user_agent=section.crawl.http.user_agent)
        inputs = []
        try:
            for archive_format in ("warc", "wat", "wet"):
                inputs += resolve_inputs(getattr(section, archive_format), base_url=section.base_url, format=archive_format, config=stream)
            inputs += resolve_inputs(paths_files=section.paths, base_url=section.base_url, config=stream)
        except InputOpenError as error:
            raise ValueError(f"[harvest] paths: {error}") from None

        # A file named directly and again in a path list would be read twice, and its
        # candidates would count twice for every query.
        seen: set[str] = set()
        unique = []
        for item in inputs:
            if item.location not in seen:
                seen.add(item.location)
                unique.append(item)
        if len(unique) < len(inputs):
            logger.warning("%d archive inputs are listed more than once; each is read once", len(inputs) - len(unique))
        inputs = unique

        options = ArchiveOptions(stream=stream, workers=section.archive_workers)
        run = harvest_inputs(inputs, out_dir, options, first_part=first_part, clear=False, write_stats=False)
        if run.failed:
            logger.warning("%d of %d archive inputs failed; they are listed under 'failures' in %s",
                           len(run.failed), len(inputs), out_dir / "stats.json")
        return run

    def run_match(self) -> None:
        from wit_builder.match.stage import match_folder

        section = self.config.match
        match_folder(
            self.config.stage_dir("candidates"),
            self._queries_path(),
            self.config.stage_dir("matched"),
            section.ignore_case,
            cache_dir=section.cache_dir,
        )

    def _balance_seed(self) -> int:
        seed = self.config.balance.seed
        return self.config.seed if seed is None else seed

    def run_balance(self) -> None:
        from wit_builder.match.balance_stage import balance_folder

        section = self.config.balance
        balance_folder(
            self.config.stage_dir("matched"),
            self.config.stage_dir("balanced"),
            section.cap,
            self._balance_seed(),
            mode=section.mode,
            oversample=section.oversample,
        )

    def run_fetch(self) -> None:
        from wit_builder.fetch.cli import fetch_folder

        skip_sources = set(self.config.fetch.skip_sources)
        fetch_config = self.config.fetch.config
        input_dir = self.run_dir / "fetch_input"
        out_dir = self.config.stage_dir("fetched")
        balanced_parts = list_parts(self.config.stage_dir("balanced"))
        names = {part.name for part in balanced_parts}
        for old in list_parts(input_dir) + list_parts(out_dir):
            if old.name not in names:
                old.unlink()

        skipped = 0
        for part in balanced_parts:
            skipped += self._write_fetch_input(part, input_dir / part.name, skip_sources)
            _drop_stale_output(input_dir / part.name, out_dir / part.name)

        extra_stats = {"skipped_by_source": skipped, "skip_sources": sorted(skip_sources)}
        totals = fetch_folder(input_dir, out_dir, fetch_config, extra_stats=extra_stats)
        if skipped:
            logger.info("not fetched: %d candidates from the skipped sources %s", skipped, sorted(skip_sources))
        logger.info("fetch totals: %s", {name: count for name, count in totals.items() if count})

    def _write_fetch_input(self, part: Path, out_path: Path, skip_sources: set[str]) -> int:
        """Copy the rows of ``part`` whose source is not skipped to ``out_path``; return how many were skipped.

        A source is skipped when it equals an entry of ``skip_sources`` or starts with
        that entry and a colon, so "warc" skips every "warc:FILE" source.
        """
        rows = list(iter_records(part, MatchedCandidate))
        kept = [row for row in rows if not _source_skipped(row.source, skip_sources)]
        is_current = out_path.exists() and out_path.stat().st_mtime_ns >= part.stat().st_mtime_ns
        if not is_current:
            write_records(out_path, kept, MatchedCandidate)
        return len(rows) - len(kept)

    def run_filter(self) -> None:
        from wit_builder.filter.stage import filter_partition

        section = self.config.filter
        filter_partition(list_parts(self.config.stage_dir("fetched")), self.config.stage_dir("filtered"), section.config, workers=section.workers)

    def run_shards(self) -> None:
        from wit_builder.match.final import final_balance
        from wit_builder.shards.writer import write_shards

        # The final balancing pass: the survivors of fetch and filter are balanced to
        # the cap itself, and the shards take its decisions in place of the filter's.
        fetched_parts = list_parts(self.config.stage_dir("fetched"))
        final_dir = self.config.stage_dir("final_balance")
        section = self.config.balance
        final_balance(fetched_parts, list_parts(self.config.stage_dir("filtered")), final_dir, section.cap, self._balance_seed(), section.mode)

        write_shards(
            fetched_parts,
            list_parts(final_dir),
            self.config.stage_dir("shards"),
            samples_per_shard=self.config.shards.samples_per_shard,
        )

    def run_train(self) -> None:
        if not self.config.train.enabled:
            logger.info("training is disabled in the config")
            return
        from wit_builder.train.trainer import train_and_evaluate

        train_and_evaluate(self.config.stage_dir("shards"), self.config.stage_dir("train"), self.config.train.config)

    def run_report(self) -> None:
        if not self.config.report.enabled:
            logger.info("the report is disabled in the config")
            return
        from wit_builder.report import write_report

        path = write_report(self.run_dir)
        logger.info("report written to %s", path)


def _source_skipped(source: str, skip_sources: set[str]) -> bool:
    return any(source == skipped or source.startswith(f"{skipped}:") for skipped in skip_sources)


def _drop_stale_output(input_path: Path, output_path: Path) -> None:
    """Delete a stage output that is older than its input, so that it is computed again."""
    if output_path.exists() and output_path.stat().st_mtime_ns < input_path.stat().st_mtime_ns:
        logger.info("%s is older than its input; it will be recomputed", output_path)
        output_path.unlink()
