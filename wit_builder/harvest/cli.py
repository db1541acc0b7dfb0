"""`wit harvest crawl` and `wit harvest warc` subcommands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wit_builder.harvest.crawler import CrawlConfig, crawl
from wit_builder.harvest.warc import harvest_warcs
from wit_builder.net.client import HttpConfig
from wit_builder.parquet import clear_parts

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``harvest`` subcommand with its ``crawl`` and ``warc`` subcommands."""
    harvest = subparsers.add_parser(
        "harvest",
        help="collect (image URL, alt/title/figcaption) candidates from web pages",
        description="Collect image-text candidates by crawling web pages or by reading WARC files.",
    )
    commands = harvest.add_subparsers(dest="harvest_command", metavar="SOURCE")
    commands.required = True

    crawl_parser = commands.add_parser(
        "crawl",
        help="crawl pages from seed URLs",
        description="Crawl breadth-first from seed URLs, honouring robots.txt for the token \"wit-builder\".",
    )
    crawl_parser.add_argument("urls", nargs="*", metavar="URL", help="seed URLs")
    crawl_parser.add_argument("--seeds", type=Path, help="text file with one seed URL a line (# starts a comment)")
    crawl_parser.add_argument("--out", type=Path, required=True, help="output folder for part-00000.parquet and stats.json; old part files there are removed")
    crawl_parser.add_argument("--max-depth", type=int, default=2, help="links followed from a seed, 0 for the seeds only (default: %(default)s)")
    crawl_parser.add_argument("--max-pages", type=int, default=1000, help="maximum pages requested (default: %(default)s)")
    crawl_parser.add_argument("--per-host", type=int, default=4, help="maximum concurrent requests to one host (default: %(default)s)")
    crawl_parser.add_argument("--concurrency", type=int, default=64, help="maximum concurrent requests in total (default: %(default)s)")
    crawl_parser.add_argument("--timeout", type=float, default=20.0, help="maximum seconds per request (default: %(default)s)")
    crawl_parser.add_argument("--all-hosts", action="store_true", help="also follow links to hosts other than the seeds'")
    crawl_parser.add_argument("--user-agent-contact", default=None, metavar="URL", help='contact URL added to the User-Agent, as "wit-builder/VERSION (+URL)"')
    crawl_parser.add_argument("--allow-private", action="store_true", help="allow loopback and private addresses (only for local test servers)")
    crawl_parser.set_defaults(func=run_crawl)

    warc_parser = commands.add_parser(
        "warc",
        help="read the HTML responses of WARC files",
        description="Extract candidates from the HTML responses of WARC files, such as Common Crawl's .warc.gz files.",
    )
    warc_parser.add_argument("warcs", nargs="+", type=Path, metavar="WARC", help="WARC files (.warc or .warc.gz)")
    warc_parser.add_argument("--out", type=Path, required=True, help="output folder for one part-NNNNN.parquet per WARC file and stats.json; old part files there are removed")
    warc_parser.set_defaults(func=run_warc)


def read_seeds(urls: list[str], seeds_file: Path | None) -> list[str]:
    """Return the seed URLs from the command line followed by those of the seeds file."""
    seeds = list(urls)
    if seeds_file is not None:
        if not seeds_file.is_file():
            raise FileNotFoundError(f"seeds file not found: {seeds_file}")
        for line in seeds_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                seeds.append(line)
    if not seeds:
        raise ValueError("no seed URLs: pass URLs or --seeds FILE")
    return seeds


def run_crawl(args: argparse.Namespace) -> int:
    seeds = read_seeds(args.urls, args.seeds)
    http = HttpConfig(
        contact_url=args.user_agent_contact,
        allow_private=args.allow_private,
        timeout_s=args.timeout,
        max_concurrency=args.concurrency,
        max_per_host=args.per_host,
    )
    config = CrawlConfig(http=http, max_depth=args.max_depth, max_pages=args.max_pages, same_host_only=not args.all_hosts)
    if args.out.is_dir():
        clear_parts(args.out)
    stats = crawl(seeds, args.out / "part-00000.parquet", config)
    logger.info("wrote %d candidates from %d pages to %s", stats.candidates, stats.pages_parsed, args.out)
    return 0


def run_warc(args: argparse.Namespace) -> int:
    stats = harvest_warcs(list(args.warcs), args.out)
    logger.info("wrote %d candidates from %d HTML pages to %s", stats.candidates, stats.pages_parsed, args.out)
    return 0
