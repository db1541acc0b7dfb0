"""`wit fetch`: download, validate and resize the images of matched (or balanced) candidates."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pyarrow.parquet as pq

from wit_builder.fetch.fetcher import FetchConfig, PartJob, fetch_parts, request_counts, status_counts
from wit_builder.fetch.health import RunHealth
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder.fetch.pool import DEFAULT_CPU_SECONDS
from wit_builder.fetch.resizer import DEFAULT_MAX_PIXELS, RESIZE_MODES
from wit_builder.fetch.resume import remove_temporary_files, stale_output_reason
from wit_builder.net.client import HttpConfig, default_user_agent
from wit_builder.parquet import list_parts
from wit_builder.records import FetchStatus
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``fetch`` subcommand."""
    parser = subparsers.add_parser(
        "fetch",
        help="download, validate and resize candidate images",
        description=(
            "Download the image of every MatchedCandidate row, reject non-images and oversized images, "
            "resize, and write one FetchResult row per input row (status ok with JPEG bytes, or a named error). "
            "Existing output partitions of the same input are kept, so a rerun resumes; use --retry-failed to fetch "
            "their transient failures again, or --overwrite to fetch them again whole. robots.txt and X-Robots-Tag "
            "opt-outs are honoured unless --ignore-robots-txt or --ignore-robots-tag is given."
        ),
    )
    parser.add_argument("input", type=Path, help="a MatchedCandidate parquet file, or a folder of part-*.parquet files")
    parser.add_argument("--out", type=Path, required=True, help="output folder for FetchResult part-*.parquet files and stats.json")

    parser.add_argument("--image-size", type=int, default=256, help="target size in pixels (default: %(default)s)")
    parser.add_argument(
        "--resize-mode",
        choices=RESIZE_MODES,
        default="keep_ratio",
        help=(
            "keep_ratio: shortest side becomes --image-size; center_crop: square cut from the center; "
            "border: fit inside the square and pad with white; no: keep the size (default: %(default)s)"
        ),
    )
    parser.add_argument("--no-upscale", action="store_true", help="keep images smaller than --image-size at their size")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="reject source images with more pixels than this, before decoding (default: %(default)s)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the resized images, 1-100 (default: %(default)s)")

    parser.add_argument("--timeout", type=float, default=20.0, help="maximum seconds per request, covering connection, headers and body (default: %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=20 * 1024 * 1024, help="maximum image size in bytes; larger downloads stop early (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=2, help="retries after timeouts, connection errors, 429 and 5xx (default: %(default)s)")
    parser.add_argument("--max-redirects", type=int, default=5, help="maximum redirects followed per URL, 0 for none (default: %(default)s)")

    parser.add_argument("--processes", type=int, default=None, help="decoder processes (default: one per CPU)")
    parser.add_argument(
        "--decode-cpu-seconds", type=int, default=DEFAULT_CPU_SECONDS,
        help="CPU seconds one image may take to decode and resize; a slower one is recorded as decode_timeout (default: %(default)s)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="maximum concurrent downloads (default: %(default)s)")
    parser.add_argument("--per-host", type=int, default=4, help="maximum concurrent downloads from one host (default: %(default)s)")
    parser.add_argument(
        "--host-delay",
        type=float,
        default=PolitenessConfig.host_delay_s,
        metavar="SECONDS",
        help=(
            "minimum seconds between two request starts to one host; HTTP 429 and 503 raise it for that host, "
            "and a longer robots.txt Crawl-delay replaces it (default: %(default)s)"
        ),
    )

    parser.add_argument("--user-agent-contact", default=None, metavar="URL", help='contact URL added to the User-Agent, as "wit-builder/VERSION (+URL)"')
    parser.add_argument("--ignore-robots-tag", action="store_true", help="keep images whose X-Robots-Tag contains noai, noimageai, noindex or noimageindex")
    parser.add_argument("--ignore-robots-txt", action="store_true", help="request no robots.txt and fetch URLs that it disallows for wit-builder")
    parser.add_argument("--allow-private", action="store_true", help="allow loopback and private addresses (only for local test servers)")
    parser.add_argument(
        "--proxy",
        default=None,
        metavar="URL",
        help="send every request, https URLs included, to this HTTP proxy on a loopback IP address, such as the URL that `wit replay` prints",
    )
    parser.add_argument("--overwrite", action="store_true", help="fetch again partitions that already have output")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help=(
            "in partitions that already have output, fetch again only the rows that failed with a timeout, "
            "connection or DNS error, truncated body, HTTP 429 or 5xx, or unreachable robots.txt, keeping the row order"
        ),
    )

    parser.set_defaults(func=run_fetch)


def config_from_args(args: argparse.Namespace) -> FetchConfig:
    """Build the FetchConfig that the command-line options describe."""
    http = HttpConfig(
        contact_url=args.user_agent_contact,
        allow_private=args.allow_private,
        timeout_s=args.timeout,
        max_bytes=args.max_bytes,
        retries=args.retries,
        max_redirects=args.max_redirects,
        max_concurrency=args.concurrency,
        max_per_host=args.per_host,
        proxy=args.proxy,
    )
    return FetchConfig(
        http=http,
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        max_pixels=args.max_pixels,
        jpeg_quality=args.jpeg_quality,
        upscale=not args.no_upscale,
        processes=args.processes,
        decode_cpu_seconds=args.decode_cpu_seconds,
        respect_robots_tag=not args.ignore_robots_tag,
        respect_robots_txt=not args.ignore_robots_txt,
        politeness=PolitenessConfig(host_delay_s=args.host_delay),
    )


def input_parts(input_path: Path) -> list[Path]:
    """Return the partition files of ``input_path``: the file itself, or a folder's part-*.parquet files."""
    if input_path.is_file():
        return [input_path]
    if input_path.is_dir():
        parts = list_parts(input_path)
        if not parts:
            raise FileNotFoundError(f"no part-*.parquet files in {input_path}")
        return parts
    raise FileNotFoundError(f"fetch input not found: {input_path}")


def count_statuses(path: Path) -> tuple[dict[str, int], int]:
    """Count the statuses and downloaded bytes of a FetchResult parquet file already written."""
    table = pq.read_table(path, columns=["status", "bytes_downloaded"])
    counts = status_counts(table.column("status").to_pylist())
    downloaded = sum(value or 0 for value in table.column("bytes_downloaded").to_pylist())
    return counts, downloaded


def fetch_folder(
    input_path: Path,
    out_dir: Path,
    config: FetchConfig,
    overwrite: bool = False,
    extra_stats: dict | None = None,
    *,
    retry_failed: bool = False,
) -> dict:
    """Fetch every partition of ``input_path`` into ``out_dir`` and write ``out_dir/stats.json``.

    Partitions whose output file exists and has the input's keys are skipped unless
    ``overwrite`` is set, and their counts are read back from that file. With
    ``retry_failed`` their retryable failures are fetched again instead. An output
    that does not match its input is fetched again whole. ``extra_stats`` adds fields
    to stats.json. Returns the totals written to stats.json.
    """
    if overwrite and retry_failed:
        raise ValueError("--overwrite and --retry-failed exclude each other: --overwrite fetches every row again")
    parts = input_parts(input_path)
    if config.http.allow_private:
        logger.warning("--allow-private: requests may reach loopback and private addresses; use it only for local test servers")
    if config.http.contact_url is None and config.http.user_agent == default_user_agent():
        logger.warning(
            "no contact URL in the User-Agent %r: set --user-agent-contact so that site operators can reach you",
            config.http.user_agent,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(out_dir)

    totals = {status.value: 0 for status in FetchStatus}
    rows = 0
    downloaded = 0
    skipped = 0
    jobs: list[PartJob] = []
    for part in parts:
        out_path = out_dir / part.name
        keep = out_path.exists() and not overwrite
        if keep:
            reason = stale_output_reason(part, out_path)
            if reason is not None:
                logger.warning("fetching %s again: the existing output %s", part.name, reason)
                keep = False
        if keep and not retry_failed:
            skipped += 1
            counts, part_bytes = count_statuses(out_path)
            _add_counts(totals, counts)
            rows += sum(counts.values())
            downloaded += part_bytes
        else:
            jobs.append(PartJob(part, out_path, retry_failed=keep))

    with config.decode_pool() as pool:
        run = fetch_parts(jobs, config, pool=pool, health=RunHealth(config.health))
    for job, stats in zip(jobs, run.parts):
        _add_counts(totals, stats.counts)
        rows += stats.rows
        if job.retry_failed:
            # Bytes of every row, as for kept partitions, not only of the retried ones.
            _, part_bytes = count_statuses(job.out_path)
            downloaded += part_bytes
        else:
            downloaded += stats.bytes_downloaded
    retried = sum(1 for job in jobs if job.retry_failed)
    # Request counts of the partitions fetched in this run.
    run_counts = {**request_counts(run.download), "retried_rows": sum(stats.retried_rows for stats in run.parts)}
    elapsed = run.elapsed_s

    if skipped:
        logger.info("kept %d existing output partitions (use --retry-failed or --overwrite to fetch them again)", skipped)
    totals["rows"] = rows
    write_stage_stats(
        out_dir,
        "fetch",
        totals,
        partitions=len(parts),
        partitions_skipped=skipped,
        partitions_retried=retried,
        bytes_downloaded=downloaded,
        elapsed_s=round(elapsed, 3),
        success_rate=round(totals[FetchStatus.OK.value] / rows, 4) if rows else 0.0,
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        user_agent=config.http.user_agent,
        proxy=config.http.proxy,
        respect_robots_txt=config.respect_robots_txt,
        respect_robots_tag=config.respect_robots_tag,
        max_per_host=config.http.max_per_host,
        host_delay_s=config.politeness.host_delay_s,
        **run_counts,
        **(extra_stats or {}),
    )
    logger.info("fetch: %d of %d rows ok, stats in %s", totals[FetchStatus.OK.value], rows, out_dir / "stats.json")
    return totals


def _add_counts(totals: dict[str, int], counts: dict[str, int]) -> None:
    for name, count in counts.items():
        totals[name] = totals.get(name, 0) + count


def run_fetch(args: argparse.Namespace) -> int:
    fetch_folder(args.input, args.out, config_from_args(args), overwrite=args.overwrite, retry_failed=args.retry_failed)
    return 0
