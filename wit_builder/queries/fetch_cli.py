"""`wit queries fetch`: build or extend a query list from Wikipedia pages fetched live."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from wit_builder.parquet import read_records, write_records
from wit_builder.queries.articles import ArticleText, is_disambiguation
from wit_builder.queries.build import (
    BUILD_JSON,
    QUERIES_PARQUET,
    QUERIES_TEXT,
    QueryParams,
    build_queries_from_articles,
)
from wit_builder.queries.fetch import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RATE,
    DEFAULT_TIMEOUT_S,
    FetchConfig,
    FetchReport,
    FetchSetupError,
    WikipediaFetcher,
)
from wit_builder.queries.options import add_counting_options, counting_arguments
from wit_builder.records import QueryEntry

logger = logging.getLogger(__name__)

#: Defaults for the few pages of a fetch; a whole dump uses 100 for both counts.
FETCH_MIN_COUNT = 3
FETCH_BIGRAM_MIN_COUNT = 3
STATS_JSON = "stats.json"


def default_cache_dir() -> Path:
    """Return $XDG_CACHE_HOME/wit-builder/wikipedia, or ~/.cache/wit-builder/wikipedia."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wit-builder" / "wikipedia"


def add_fetch_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `fetch` on the subcommands of `wit queries` and return its parser."""
    parser = commands.add_parser(
        "fetch",
        help="fetch Wikipedia pages live and build or extend a query list from them",
        description="Fetch articles by title or from a category tree through the MediaWiki API "
        f"(wikipedia-api package), then write {QUERIES_PARQUET}, {QUERIES_TEXT}, {BUILD_JSON} and "
        f"{STATS_JSON} to --out as `wit queries build` does. Titles that do not exist and failed "
        f"requests are listed in {BUILD_JSON} under inputs.",
    )
    inputs = parser.add_argument_group("pages to fetch")
    inputs.add_argument(
        "--title", action="append", default=[], metavar="TITLE", help="article title; repeat for more titles"
    )
    inputs.add_argument(
        "--titles-file",
        type=Path,
        metavar="FILE",
        help="text file with one article title per line; blank lines are skipped",
    )
    inputs.add_argument(
        "--category", metavar="NAME", help='category whose articles to fetch, with or without the "Category:" prefix'
    )
    inputs.add_argument(
        "--depth",
        type=int,
        default=None,
        metavar="N",
        help="subcategory levels to follow below --category: 0 takes its own articles only (default: 0)",
    )

    source = parser.add_argument_group("API and politeness")
    source.add_argument("--language", default="en", help="Wikipedia language code (default: en)")
    source.add_argument(
        "--api-url",
        metavar="URL",
        help="MediaWiki action API endpoint (default: https://LANGUAGE.wikipedia.org/w/api.php)",
    )
    source.add_argument(
        "--allow-private",
        action="store_true",
        help="allow an --api-url on a loopback or private address, for a local test server",
    )
    source.add_argument(
        "--contact",
        metavar="URL",
        help='required: URL or e-mail address sent in the User-Agent "wit-builder/VERSION (CONTACT)"',
    )
    source.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        metavar="R",
        help=f"maximum requests per second, retries included (default: {DEFAULT_RATE:g})",
    )
    source.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=f"seconds per request (default: {DEFAULT_TIMEOUT_S:g})"
    )
    source.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help=f"retries after HTTP 429, 5xx, a timeout or a connection error (default: {DEFAULT_MAX_RETRIES})",
    )
    source.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="on-disk cache of fetched pages; a rerun reads cached pages without requests "
        "(default: $XDG_CACHE_HOME/wit-builder/wikipedia or ~/.cache/wit-builder/wikipedia)",
    )
    source.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    source.add_argument("--max-pages", type=int, metavar="N", help="fetch at most N articles (default: no limit)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, required=True, help="output folder")
    output.add_argument(
        "--extend",
        type=Path,
        metavar="FOLDER",
        help="existing query list folder: keep its entries first and append new queries not already in it",
    )

    counting = parser.add_argument_group(
        "counting",
        "Defaults are far lower than those of `wit queries build`, because a fetch reads a few pages, not a dump.",
    )
    add_counting_options(
        counting,
        min_count=FETCH_MIN_COUNT,
        bigram_min_count=FETCH_BIGRAM_MIN_COUNT,
        title_links_help="minimum number of fetched articles that link to a title for it to be a query",
    )
    counting.add_argument(
        "--target-size", type=int, metavar="N", help="cut the new list to at most N queries (default: no cut)"
    )
    parser.set_defaults(func=run_fetch)
    return parser


def read_titles(args: argparse.Namespace) -> list[str]:
    """Return the titles of --title and --titles-file, in order, without blanks or repeats."""
    titles = [title.strip() for title in args.title]
    if args.titles_file is not None:
        if not args.titles_file.is_file():
            raise FileNotFoundError(f"titles file not found: {args.titles_file}")
        titles.extend(line.strip() for line in args.titles_file.read_text(encoding="utf-8").splitlines())
    return list(dict.fromkeys(title for title in titles if title))


def fetch_config(args: argparse.Namespace) -> FetchConfig:
    """Return the FetchConfig that the command-line options select."""
    if args.no_cache:
        cache_dir = None
    else:
        cache_dir = args.cache if args.cache is not None else default_cache_dir()
    return FetchConfig(
        contact=args.contact,
        language=args.language,
        api_url=args.api_url,
        rate=args.rate,
        cache_dir=cache_dir,
        timeout_s=args.timeout,
        max_retries=args.max_retries,
        allow_private=args.allow_private,
        max_pages=args.max_pages,
    )


def articles_of(report: FetchReport) -> list[ArticleText]:
    """Turn the fetched pages of ``report`` into articles for counting."""
    # NOTE: an API extract has no templates, so only a "(disambiguation)" title marks a
    # disambiguation page here. A dump build also recognizes the disambiguation templates.
    articles = []
    for page in report.articles:
        article = ArticleText(title=page.title, text=page.text, links=list(page.links))
        article.disambiguation = is_disambiguation(page.title, "")
        articles.append(article)
    return articles


def run_fetch(args: argparse.Namespace) -> int:
    """Run `wit queries fetch` and return the exit code.

    Raises FetchSetupError (a ValueError) for missing inputs or invalid settings before
    any request, and FileNotFoundError for a missing --titles-file or --extend list.
    """
    titles = read_titles(args)
    if not titles and not args.category:
        raise FetchSetupError("nothing to fetch: give --title, --titles-file or --category")
    if args.depth is not None and not args.category:
        raise FetchSetupError("--depth applies to --category only: add --category NAME or drop --depth")
    existing = read_existing(args.extend) if args.extend is not None else None
    config = fetch_config(args)
    _quiet_library_loggers()

    with WikipediaFetcher(config) as fetcher:
        report = fetcher.fetch(titles, category=args.category, depth=args.depth or 0)
    articles = articles_of(report)
    if not articles:
        logger.error(
            "no article was fetched (%d missing titles, %d missing categories, %d errors); nothing written to %s",
            len(report.missing_titles),
            len(report.missing_categories),
            len(report.errors),
            args.out,
        )
        return 1

    inputs = report.as_record()
    inputs["extended_from"] = str(args.extend.resolve()) if args.extend is not None else None
    params = QueryParams(**counting_arguments(args), target_size=args.target_size)
    result = build_queries_from_articles(articles, args.out, params=params, inputs=inputs)
    counts = ", ".join(f"{count} {kind}" for kind, count in result.counts.items())
    if existing is not None:
        merge = extend_query_list(args.out, existing, args.extend)
        counts = f"{merge['queries']} queries ({merge['existing']} kept, {merge['added']} added)"

    print(
        f"{result.queries_path}: {counts} from {len(articles)} fetched articles; "
        f"{len(report.missing_titles)} missing titles, {len(report.missing_categories)} missing categories, "
        f"{len(report.errors)} errors; {report.requests} requests, {report.cache_hits} cache hits"
    )
    return 0


def read_existing(folder: Path) -> list[QueryEntry]:
    """Read the entries of the query list in ``folder`` for --extend."""
    path = Path(folder) / QUERIES_PARQUET
    if not path.is_file():
        raise FileNotFoundError(f"{QUERIES_PARQUET} not found in --extend folder {folder}")
    return read_records(path, QueryEntry)


def merge_entries(existing: list[QueryEntry], new: list[QueryEntry]) -> list[QueryEntry]:
    """Return ``existing`` followed by the entries of ``new`` whose query it does not contain yet."""
    seen = {entry.query for entry in existing}
    merged = list(existing)
    for entry in new:
        if entry.query not in seen:
            seen.add(entry.query)
            merged.append(entry)
    return merged


def extend_query_list(out_dir: Path, existing: list[QueryEntry], source: Path) -> dict[str, int | str]:
    """Rewrite the new list in ``out_dir`` as ``existing`` plus its new queries and return the merge counts.

    queries.parquet and queries.txt get the merged list. In build.json and stats.json,
    ``counts["queries"]`` becomes the merged total, the other counts stay those of the
    fetched pages, and an "extend" record stores how the two lists were merged.
    """
    out_dir = Path(out_dir)
    new = read_records(out_dir / QUERIES_PARQUET, QueryEntry)
    merged = merge_entries(existing, new)
    summary: dict[str, int | str] = {
        "extended_from": str(Path(source).resolve()),
        "existing": len(existing),
        "new": len(new),
        "added": len(merged) - len(existing),
        "already_present": len(new) - (len(merged) - len(existing)),
        "queries": len(merged),
    }

    write_records(out_dir / QUERIES_PARQUET, merged, QueryEntry)
    _write_text(out_dir / QUERIES_TEXT, "".join(f"{entry.query}\n" for entry in merged))
    for name in (BUILD_JSON, STATS_JSON):
        path = out_dir / name
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            record["extend"] = summary
            record.setdefault("counts", {})["queries"] = len(merged)
            _write_text(path, json.dumps(record, indent=2) + "\n")
    logger.info(
        "extended %s: kept %d entries, added %d, skipped %d already present",
        source,
        summary["existing"],
        summary["added"],
        summary["already_present"],
    )
    return summary


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _quiet_library_loggers() -> None:
    # wikipediaapi and httpx log every request URL at INFO; keep them for -v (DEBUG) only.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("wikipediaapi", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
