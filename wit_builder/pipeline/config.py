"""Pipeline configuration read from a TOML file.

Each top-level table configures one stage. Relative paths are resolved against
the folder of the TOML file, so a config can be run from any working directory.
Unknown keys are rejected with the list of valid ones, because a misspelled
option would otherwise be silently ignored.
"""

from __future__ import annotations

import dataclasses
import inspect
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wit_builder.fetch.fetcher import FetchConfig
from wit_builder.filter.config import FilterConfig
from wit_builder.harvest.crawler import CrawlConfig
from wit_builder.queries.build import build_queries
from wit_builder.train.config import TrainConfig

STAGES = ("queries", "harvest", "match", "balance", "fetch", "filter", "shards", "train", "report")


def from_mapping(cls: type, mapping: dict[str, Any], where: str, **fixed: Any) -> Any:
    """Build dataclass ``cls`` from a TOML table, recursing into nested dataclass fields.

    Lists become tuples where the field is a tuple. ``fixed`` gives values of fields that
    the table must not set. ``where`` names the table in error messages.
    """
    if not isinstance(mapping, dict):
        raise ValueError(f"[{where}] must be a table, got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - (set(fields) - set(fixed)))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; valid keys: {sorted(fields)}")

    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in mapping.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_mapping(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values, **fixed)
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid [{where}]: {error}") from error


@dataclass
class QueriesSection:
    """Source of the query list: a dump to build it from, or a prebuilt list."""

    dump: Path | None = None
    list: Path | None = None
    min_count: int = 100
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleSiteSection:
    """The generated sample web site served on 127.0.0.1 for the length of a run."""

    images: Path
    captions: Path
    seed: int = 0
    photos: int | None = None


@dataclass
class HarvestSection:
    """Crawl seeds, Common Crawl inputs and the crawler's limits.

    ``warc``, ``wat`` and ``wet`` hold local paths (resolved against the config's folder),
    http(s) URLs or pyarrow filesystem URIs such as s3://. ``paths`` contains path lists such as
    Common Crawl's warc.paths.gz, whose relative entries are joined to ``base_url``; each
    listed file's format comes from its name. Streamed inputs follow ``[harvest.http]
    allow_private``.
    """

    seeds: list[str] = field(default_factory=list)
    warc: list[str] = field(default_factory=list)
    wat: list[str] = field(default_factory=list)
    wet: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    base_url: str | None = None
    #: Processes that read archive inputs in parallel.
    archive_workers: int = 1
    sample_site: SampleSiteSection | None = None
    crawl: CrawlConfig = field(default_factory=CrawlConfig)

    @property
    def has_archives(self) -> bool:
        return bool(self.warc or self.wat or self.wet or self.paths)


@dataclass
class MatchSection:
    """Options of the match stage; ``cache_dir`` None caches the automaton in the matched folder."""

    ignore_case: bool = False
    cache_dir: Path | None = None


@dataclass
class BalanceSection:
    """Options of the balance stage and of the final pass before shards; ``seed`` None uses the run's seed.

    ``mode`` is "metaclip" or "strict" (see ``wit_builder.match.balance_stage``). The
    balance stage keeps ceil(cap * oversample) per query, and the final pass after
    fetch and filter balances the survivors with ``cap``.
    """

    cap: int = 20_000
    seed: int | None = None
    mode: str = "metaclip"
    oversample: float = 1.0

    def __post_init__(self) -> None:
        from wit_builder.match.balance import check_balance_options

        check_balance_options(self.cap, self.mode, self.oversample)


@dataclass
class FetchSection:
    """Options of the fetch stage, and the candidate sources it leaves out."""

    config: FetchConfig
    skip_sources: tuple[str, ...] = ()
    #: HTTP proxy for every request, such as a ``wit replay`` server. It sets ``[fetch.http] proxy``.
    proxy: str | None = None

    def __post_init__(self) -> None:
        if self.proxy is None:
            return
        # replace() runs HttpConfig's check, which also normalizes the URL.
        http = dataclasses.replace(self.config.http, proxy=self.proxy)
        if self.config.http.proxy not in (None, http.proxy):
            raise ValueError(f"proxy {self.proxy!r} differs from [fetch.http] proxy {self.config.http.proxy!r}; set only one")
        self.config.http = http


@dataclass
class FilterSection:
    """Options of the filter stage, and its number of worker processes."""

    config: FilterConfig
    workers: int = 1


@dataclass
class ShardsSection:
    """Options of the shard writer."""

    samples_per_shard: int = 10_000


@dataclass
class TrainSection:
    """Options of the quick training check; ``enabled`` false skips it."""

    config: TrainConfig
    enabled: bool = True


@dataclass
class ReportSection:
    """Options of the report; ``enabled`` false skips it."""

    enabled: bool = True


@dataclass
class PipelineConfig:
    """A whole pipeline: the run folder, and one table of options for each stage."""

    path: Path
    run_dir: Path
    seed: int
    queries: QueriesSection
    harvest: HarvestSection
    match: MatchSection
    balance: BalanceSection
    fetch: FetchSection
    filter: FilterSection
    shards: ShardsSection
    train: TrainSection
    report: ReportSection

    def stage_dir(self, stage: str) -> Path:
        """Return the output folder of ``stage`` inside the run folder."""
        return self.run_dir / stage


def _split_section(table: dict[str, Any], section_type: type, config_type: type, where: str) -> Any:
    """Build a section whose own keys (such as ``workers``) sit beside the keys of a stage's config dataclass."""
    table = dict(table)
    own_names = {f.name for f in dataclasses.fields(section_type)} - {"config"}
    own = {name: table.pop(name) for name in list(table) if name in own_names}
    config_names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(table) - config_names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where}]; valid keys: {sorted(own_names | config_names)}")
    return from_mapping(section_type, own, where, config=from_mapping(config_type, table, where))


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


#: Keys of [harvest] that list archive inputs.
ARCHIVE_KEYS = ("warc", "wat", "wet", "paths")

#: Keys of [harvest] besides the crawler's options.
HARVEST_KEYS = frozenset({"seeds", "base_url", "archive_workers", *ARCHIVE_KEYS})


def _string_list(value: object, key: str, path: Path) -> list[str]:
    """Return a TOML array of strings, or raise ValueError naming the key."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"[harvest] {key} in {path} must be a list of strings, such as {key} = [\"...\"], got {value!r}")
    return value


def _resolve_location(base: Path, value: str) -> str:
    """Return a URL or URI unchanged and a local path resolved against ``base``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid input location {value!r}: expected a path, URL or URI string")
    if "://" in value:
        return value
    return str(_resolve(base, value))


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline TOML file."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"pipeline config not found: {path}")
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"invalid TOML in {path}: {error}") from error

    unknown = sorted(set(data) - set(STAGES) - {"run"})
    if unknown:
        raise ValueError(f"unknown table(s) {unknown} in {path}; valid tables: {['run', *STAGES]}")
    base = path.parent

    run = dict(data.get("run", {}))
    run_dir = _resolve(base, run.pop("dir", f"runs/{path.stem}"))
    seed = int(run.pop("seed", 0))
    if run:
        raise ValueError(f"unknown key(s) {sorted(run)} in [run]; valid keys: ['dir', 'seed']")

    queries_table = dict(data.get("queries", {}))
    # Paths in [queries] are relative to the config file, like every path in it.
    for key in ("index", "wordnet"):
        if queries_table.get(key) not in (None, "auto"):
            queries_table[key] = _resolve(base, queries_table[key])
    if "pageviews" in queries_table:
        queries_table["pageviews"] = [_resolve(base, item) for item in queries_table["pageviews"]]
    queries = QueriesSection(
        dump=_resolve(base, queries_table.pop("dump", None)),
        list=_resolve(base, queries_table.pop("list", None)),
        min_count=int(queries_table.pop("min_count", 100)),
        options=queries_table,
    )
    build_options = set(inspect.signature(build_queries).parameters) - {"dump_path", "out_dir", "min_count"}
    unknown_options = sorted(set(queries.options) - build_options)
    if unknown_options:
        raise ValueError(f"unknown key(s) {unknown_options} in [queries]; valid keys: {sorted(build_options | {'dump', 'list', 'min_count'})}")
    if (queries.dump is None) == (queries.list is None):
        raise ValueError(f"[queries] in {path} needs exactly one of 'dump' (build from a Wikipedia dump) or 'list' (use a prebuilt list)")

    harvest_table = dict(data.get("harvest", {}))
    site_table = harvest_table.pop("sample_site", None)
    sample_site = None
    if site_table is not None:
        site_table = dict(site_table)
        for key in ("images", "captions"):
            if key not in site_table:
                raise ValueError(f"[harvest.sample_site] in {path} is missing '{key}'")
            site_table[key] = _resolve(base, site_table[key])
        sample_site = from_mapping(SampleSiteSection, site_table, "harvest.sample_site")
    crawl_keys = {crawl_field.name for crawl_field in dataclasses.fields(CrawlConfig)}
    unknown = sorted(set(harvest_table) - HARVEST_KEYS - crawl_keys)
    if unknown:
        valid = sorted(HARVEST_KEYS | crawl_keys | {"sample_site"})
        raise ValueError(f"unknown key(s) {unknown} in [harvest] of {path}; valid keys: {valid}")
    seeds = _string_list(harvest_table.pop("seeds", []), "seeds", path)
    archives = {
        key: [_resolve_location(base, item) for item in _string_list(harvest_table.pop(key, []), key, path)]
        for key in ARCHIVE_KEYS
    }
    base_url = harvest_table.pop("base_url", None)
    if base_url is not None:
        base_url = _resolve_location(base, base_url)
    archive_workers = harvest_table.pop("archive_workers", 1)
    if not isinstance(archive_workers, int) or archive_workers < 1:
        raise ValueError(f"[harvest] archive_workers in {path} must be a positive integer, got {archive_workers!r}")
    harvest = HarvestSection(
        seeds=seeds,
        **archives,
        base_url=base_url,
        archive_workers=archive_workers,
        sample_site=sample_site,
        crawl=from_mapping(CrawlConfig, harvest_table, "harvest"),
    )
    if not harvest.seeds and not harvest.has_archives and harvest.sample_site is None:
        raise ValueError(f"[harvest] in {path} needs 'seeds', 'warc', 'wat', 'wet', 'paths' or 'sample_site'")

    match_table = data.get("match", {})
    if isinstance(match_table, dict) and isinstance(match_table.get("cache_dir"), str):
        match_table = {**match_table, "cache_dir": _resolve(base, match_table["cache_dir"])}

    return PipelineConfig(
        path=path,
        run_dir=run_dir,
        seed=seed,
        queries=queries,
        harvest=harvest,
        match=from_mapping(MatchSection, match_table, "match"),
        balance=from_mapping(BalanceSection, data.get("balance", {}), "balance"),
        fetch=_split_section(data.get("fetch", {}), FetchSection, FetchConfig, "fetch"),
        filter=_split_section(data.get("filter", {}), FilterSection, FilterConfig, "filter"),
        shards=from_mapping(ShardsSection, data.get("shards", {}), "shards"),
        train=_split_section(data.get("train", {}), TrainSection, TrainConfig, "train"),
        report=from_mapping(ReportSection, data.get("report", {}), "report"),
    )
