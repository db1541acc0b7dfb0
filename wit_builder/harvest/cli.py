"""`wit harvest crawl` and `wit harvest warc|wat|wet` subcommands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``harvest`` subcommand with its ``crawl``, ``warc``, ``wat`` and ``wet`` subcommands."""
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
        description=(
            "Crawl breadth-first from seed URLs, honouring robots.txt for the token \"wit-builder\" and spacing "
            "the requests to each host. The frontier is kept in OUT/frontier.sqlite, so rerunning the same "
            "command after an interruption resumes the crawl. SIGINT or SIGTERM stops the crawl after it writes "
            "the finished pages and stats.json. A resumed crawl requests failed URLs again when a setting that "
            "caused the failure was loosened: --allow-private, --max-page-bytes, --max-crawl-delay or --timeout."
        ),
    )
    crawl_parser.add_argument("urls", nargs="*", metavar="URL", help="seed URLs")
    crawl_parser.add_argument("--seeds", type=Path, help="text file with one seed URL a line (# starts a comment)")
    crawl_parser.add_argument("--out", type=Path, required=True, help="output folder for part-NNNNN.parquet files, stats.json and the frontier frontier.sqlite; a crawl found there is resumed, other part files there are removed")
    crawl_parser.add_argument("--restart", action="store_true", help="delete the frontier and part files in --out and start over")
    crawl_parser.add_argument("--max-depth", type=int, default=2, help="links followed from a seed, 0 for the seeds only (default: %(default)s)")
    crawl_parser.add_argument("--max-pages", type=int, default=1000, help="maximum page requests of the whole crawl, resumed runs included (default: %(default)s)")
    crawl_parser.add_argument("--max-pages-per-host", type=int, default=0, help="maximum page requests to one host, 0 for no limit (default: %(default)s)")
    crawl_parser.add_argument("--host-delay", type=float, default=1.0, metavar="SECONDS", help="minimum seconds between two requests to one host; a larger robots.txt Crawl-delay replaces it (default: %(default)s)")
    crawl_parser.add_argument("--max-crawl-delay", type=float, default=30.0, metavar="SECONDS", help="skip hosts whose robots.txt Crawl-delay is longer (default: %(default)s)")
    crawl_parser.add_argument("--max-page-bytes", type=int, default=5 * 1024 * 1024, help="maximum page size in bytes; larger pages are counted as too_large (default: %(default)s)")
    crawl_parser.add_argument("--flush-interval", type=float, default=60.0, metavar="SECONDS", help="maximum seconds between two writes of finished pages; an interrupted crawl requests the unwritten ones again (default: %(default)s)")
    crawl_parser.add_argument("--per-host", type=int, default=4, help="maximum concurrent requests to one host (default: %(default)s)")
    crawl_parser.add_argument("--concurrency", type=int, default=64, help="maximum concurrent requests in total (default: %(default)s)")
    crawl_parser.add_argument("--timeout", type=float, default=20.0, help="maximum seconds per request (default: %(default)s)")
    crawl_parser.add_argument("--all-hosts", action="store_true", help="also follow links to hosts other than the seeds'")
    crawl_parser.add_argument("--user-agent-contact", default=None, metavar="URL", help='contact URL added to the User-Agent, as "wit-builder/VERSION (+URL)"')
    crawl_parser.add_argument("--allow-private", action="store_true", help="allow loopback and private addresses (only for local test servers)")
    crawl_parser.set_defaults(func=run_crawl)

    for archive_format, summary, description in ARCHIVE_COMMANDS:
        _add_archive_parser(commands, archive_format, summary, description)


ARCHIVE_COMMANDS = (
    ("warc", "read the HTML responses of WARC files",
     "Extract candidates from the HTML responses of WARC files, such as Common Crawl's .warc.gz files."),
    ("wat", "read the image links of WAT files",
     "Extract candidates from the IMG links (src, alt, title) of Common Crawl's .warc.wat.gz metadata files."),
    ("wet", "count the text records of WET files",
     "Count the records, characters and languages of Common Crawl's .warc.wet.gz text files. They have no images, "
     "so no candidates are written."),
)


def _add_archive_parser(commands: argparse._SubParsersAction, archive_format: str, summary: str, description: str) -> None:
    name = archive_format.upper()
    parser = commands.add_parser(
        archive_format,
        help=summary,
        description=(
            f"{description} Every input is read as {name}. An input is a local path, an http(s) URL (streamed), or an "
            "s3://, gs:// or file:// URI. An input that fails is logged and listed in stats.json, and the others "
            "are still read."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help=f"{name} files or URLs")
    parser.add_argument("--out", type=Path, required=True, help="output folder for one part-NNNNN.parquet per input and stats.json; old part files there are removed")
    parser.add_argument("--paths-file", action="append", default=[], metavar="LIST", help="file or URL listing one input a line, plain or gzip, such as Common Crawl's wat.paths.gz (repeatable)")
    parser.add_argument("--base-url", metavar="PREFIX", help="prefix for relative inputs, such as https://data.commoncrawl.org/")
    parser.add_argument("--allow-private", action="store_true", help="allow loopback and private addresses for http(s) inputs (only for local test servers)")
    if archive_format == "warc":
        parser.add_argument("--max-page-bytes", type=int, default=8 * 1024 * 1024, help="bytes of an HTML page that are parsed; longer pages are cut there and counted (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="inputs read in parallel processes (default: %(default)s)")
    parser.add_argument("--read-timeout", type=float, default=120.0, metavar="SECONDS", help="maximum wait for more bytes of an http(s) input (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=3, help="Range requests for the rest of an http(s) input after its connection drops (default: %(default)s)")
    parser.set_defaults(func=run_archives, archive_format=archive_format)


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
    # The crawler and its HTTP stack (aiohttp) take about 0.2 s to import, and the archive commands never use them.
    from wit_builder.harvest.crawler import CrawlConfig, CrawlFolderInUseError, CrawlStopped, crawl_folder
    from wit_builder.net.client import HttpConfig

    seeds = read_seeds(args.urls, args.seeds)
    http = HttpConfig(
        contact_url=args.user_agent_contact,
        allow_private=args.allow_private,
        timeout_s=args.timeout,
        max_concurrency=args.concurrency,
        max_per_host=args.per_host,
    )
    config = CrawlConfig(
        http=http,
        max_depth=args.max_depth,
        max_pages=args.max_pages,
        max_pages_per_host=args.max_pages_per_host,
        same_host_only=not args.all_hosts,
        host_delay_s=args.host_delay,
        max_crawl_delay_s=args.max_crawl_delay,
        max_page_bytes=args.max_page_bytes,
        flush_interval_s=args.flush_interval,
    )
    args.interrupt_note = "finished pages are kept in --out; rerun the same command to resume the crawl"
    try:
        stats = crawl_folder(seeds, args.out, config, restart=args.restart, stop_on_signals=True)
    except CrawlFolderInUseError as error:
        logger.error("%s", error)
        return 2
    except CrawlStopped as stopped:
        logger.warning(
            "crawl stopped by %s; finished pages and stats.json are in %s, rerun the same command to resume",
            stopped.signal_name, args.out,
        )
        return stopped.exit_code
    logger.info("wrote %d candidates from %d pages to %s", stats.candidates, stats.pages_parsed, args.out)
    return 0


def run_archives(args: argparse.Namespace) -> int:
    """Run ``wit harvest warc|wat|wet``; exit with 1 when every input failed."""
    from wit_builder.harvest.archives import ArchiveOptions, harvest_inputs
    from wit_builder.harvest.sources import InputOpenError, StreamConfig, resolve_inputs

    stream = StreamConfig(allow_private=args.allow_private, read_timeout_s=args.read_timeout, retries=args.retries)
    try:
        inputs = resolve_inputs(args.inputs, args.paths_file, args.base_url, args.archive_format, stream)
    except InputOpenError as error:
        logger.error("reading the paths list failed: %s", error)
        return 2
    if not inputs:
        raise ValueError("no inputs: pass INPUT arguments or --paths-file LIST")
    page_limit = {"max_page_bytes": args.max_page_bytes} if args.archive_format == "warc" else {}
    options = ArchiveOptions(stream=stream, workers=args.workers, progress=not getattr(args, "quiet", False), **page_limit)
    run = harvest_inputs(inputs, args.out, options)

    # Each failed or truncated input was logged when it ended; this is the summary.
    if args.archive_format == "wet":
        logger.info("read %d text records (%d characters) from %d inputs; WET files hold no image links, "
                    "so their counts are under 'text' in %s", run.text.records, run.text.characters, len(inputs), args.out / "stats.json")
    else:
        logger.info("wrote %d candidates from %d HTML pages of %d inputs to %s",
                    run.total.candidates, run.total.pages_parsed, len(inputs), args.out)
    if run.failed and len(run.failed) == len(inputs):
        logger.error("all %d inputs failed; the reasons are listed under 'failures' in %s", len(inputs), args.out / "stats.json")
        return 1
    if run.failed or run.truncated:
        logger.warning("%d inputs failed and %d were cut short; see 'failures' in %s",
                       len(run.failed), len(run.truncated), args.out / "stats.json")
    return 0
