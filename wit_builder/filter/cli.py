"""The ``wit filter`` subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wit_builder.filter.config import FilterConfig
from wit_builder.filter.stage import filter_partition
from wit_builder.parquet import list_parts

_DEFAULTS = FilterConfig()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``filter`` subcommand on ``subparsers``."""
    parser = subparsers.add_parser(
        "filter",
        help="filter and deduplicate fetched samples",
        description=(
            "Write one FilterDecision per fetched sample with status ok to OUT/part-NNNNN.parquet, "
            "and counts per reason to OUT/stats.json. Dedup runs across all partitions of FETCHED."
        ),
    )
    parser.add_argument("--fetched", type=Path, required=True, help="folder of fetched part-*.parquet files")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the decisions")

    parser.add_argument(
        "--min-caption-chars",
        type=int,
        default=_DEFAULTS.min_caption_chars,
        help="minimum caption length in characters (default: %(default)s)",
    )
    parser.add_argument(
        "--max-caption-chars",
        type=int,
        default=_DEFAULTS.max_caption_chars,
        help="maximum caption length in characters (default: %(default)s)",
    )
    parser.add_argument(
        "--min-caption-words",
        type=int,
        default=_DEFAULTS.min_caption_words,
        help="minimum number of words in a caption (default: %(default)s)",
    )
    parser.add_argument(
        "--languages",
        default=None,
        help="comma-separated langdetect codes to keep, such as en,de (default: keep all)",
    )

    parser.add_argument(
        "--min-image-side",
        type=int,
        default=_DEFAULTS.min_image_side,
        help="minimum shorter side of the original image in pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--max-aspect-ratio",
        type=float,
        default=_DEFAULTS.max_aspect_ratio,
        help="maximum ratio of longer to shorter image side (default: %(default)s)",
    )

    parser.add_argument(
        "--no-pixel-dedup",
        action="store_true",
        help="keep samples whose pixels equal those of an earlier sample",
    )
    parser.add_argument(
        "--no-image-dedup",
        action="store_true",
        help="skip near-duplicate image detection by perceptual hash",
    )
    parser.add_argument(
        "--phash-max-distance",
        type=int,
        default=_DEFAULTS.phash_max_distance,
        help="maximum perceptual-hash Hamming distance in bits of near-duplicate images "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--no-caption-dedup",
        action="store_true",
        help="skip near-duplicate caption detection by MinHash",
    )
    parser.add_argument(
        "--caption-dedup-threshold",
        type=float,
        default=_DEFAULTS.caption_dedup_threshold,
        help="minimum MinHash Jaccard similarity of near-duplicate captions (default: %(default)s)",
    )
    parser.add_argument(
        "--caption-num-perm",
        type=int,
        default=_DEFAULTS.caption_num_perm,
        help="MinHash permutations per caption (default: %(default)s)",
    )
    parser.add_argument(
        "--caption-shingle-size",
        type=int,
        default=_DEFAULTS.caption_shingle_size,
        help="words per caption shingle (default: %(default)s)",
    )
    parser.add_argument(
        "--caption-min-shingles",
        type=int,
        default=_DEFAULTS.caption_min_shingles,
        help="captions with fewer distinct shingles skip caption dedup (default: %(default)s)",
    )

    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that decode images and detect languages (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the filter stage from parsed arguments and return the exit code."""
    parts = list_parts(args.fetched)
    if not parts:
        print(f"error: no part-*.parquet files found in {args.fetched}", file=sys.stderr)
        return 2

    languages = None
    if args.languages:
        languages = tuple(code.strip() for code in args.languages.split(",") if code.strip())
    try:
        config = FilterConfig(
            min_caption_chars=args.min_caption_chars,
            max_caption_chars=args.max_caption_chars,
            min_caption_words=args.min_caption_words,
            languages=languages,
            min_image_side=args.min_image_side,
            max_aspect_ratio=args.max_aspect_ratio,
            dedup_pixels=not args.no_pixel_dedup,
            dedup_images=not args.no_image_dedup,
            phash_max_distance=args.phash_max_distance,
            dedup_captions=not args.no_caption_dedup,
            caption_dedup_threshold=args.caption_dedup_threshold,
            caption_num_perm=args.caption_num_perm,
            caption_shingle_size=args.caption_shingle_size,
            caption_min_shingles=args.caption_min_shingles,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    stats = filter_partition(parts, args.out, config, workers=args.workers)
    print(
        f"filter: kept {stats.kept} of {stats.ok_rows} ok samples from {stats.input_rows} rows; "
        f"wrote {args.out}"
    )
    return 0
