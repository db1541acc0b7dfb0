"""Run cc2dataset's per-file WAT extraction on local WAT files and print what it produced as JSON.

This is the cc2dataset side of the harvest comparison, run in the cc2dataset venv
(bench/.venv-cc2dataset), never in the project venv. cc2dataset 1.5.0 runs
``process_wat(path, document_type)`` from ``cc2dataset.main`` once per WAT file inside a
Spark job. That function reads the whole file into memory (through fsspec) and iterates
its ``metadata`` records with FastWARC, parsing each JSON payload with pysimdjson. It
yields ``(uid, url, alt, cc_filename, page_url)`` for every ``IMG@/src`` link with a
non-empty ``alt``. The URL is made absolute against the page URL (or ``<base>``), and
only http(s) URLs are kept. ``uid`` is the MD5 of alt + url.

This script calls ``process_wat`` directly on each file, with no Spark. Then it does in
plain Python what the Spark job does next with the rows of one part. It drops rows
whose ``uid`` was seen before (the job's ``dropDuplicates(["uid"])``), and with
``--out`` it writes the rest to one Parquet file with pyarrow. Importing
``cc2dataset.main`` imports pyspark, but no Spark session or Java process starts.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from importlib import metadata
from pathlib import Path

COLUMNS = ("uid", "url", "alt", "cc_filename", "page_url")

# Messages that cc2dataset 1.5.0 logs with loguru, at INFO, instead of raising.
SHARD_FAILED = "A shard failed to parse"
RECORD_FAILED = "A shard record failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wats", nargs="+", type=Path, metavar="WAT", help="WAT files (.warc.wat.gz)")
    parser.add_argument(
        "--document-type", default="image", help="process_wat's document_type (default: image, the (url, alt) rows)"
    )
    parser.add_argument("--out", type=Path, help="folder for part-00000.parquet with the rows left after dropping repeated uids")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.wats if not path.is_file()]
    if missing:
        parser.error(f"WAT files not found: {', '.join(missing)}")

    started = time.perf_counter()
    from loguru import logger

    from cc2dataset.main import process_wat

    # Keep cc2dataset's warnings on stderr, and count its INFO messages about failed shards and records.
    messages: collections.Counter[str] = collections.Counter()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logger.add(lambda message: messages.update([message.record["message"]]), level="INFO")
    if args.out is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq
    imported = time.perf_counter()

    rows = []
    rows_per_file = {}
    for path in args.wats:
        before = len(rows)
        rows.extend(process_wat(str(path), args.document_type))
        rows_per_file[str(path)] = len(rows) - before
    extracted = time.perf_counter()

    seen: set[str] = set()
    unique_rows = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            unique_rows.append(row)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        columns = {name: [row[index] for row in unique_rows] for index, name in enumerate(COLUMNS)}
        pq.write_table(pa.table(columns), args.out / "part-00000.parquet")
    finished = time.perf_counter()

    summary = {
        "versions": {name: metadata.version(name) for name in ("cc2dataset", "fastwarc", "pysimdjson", "pyspark", "pyarrow")},
        "document_type": args.document_type,
        "files": len(args.wats),
        "rows": len(rows),
        "rows_per_file": rows_per_file,
        "unique_uids": len(unique_rows),
        "distinct_urls": len({row[1] for row in rows}),
        "distinct_pages": len({row[4] for row in rows}),
        "failed_shards": messages[SHARD_FAILED],
        "failed_records": messages[RECORD_FAILED],
        "import_s": round(imported - started, 3),
        "extract_s": round(extracted - imported, 3),
        "dedup_write_s": round(finished - extracted, 3),
        "elapsed_s": round(finished - imported, 3),
    }
    json.dump(summary, sys.stdout)
    print()
    return 1 if summary["failed_shards"] else 0


if __name__ == "__main__":
    sys.exit(main())
