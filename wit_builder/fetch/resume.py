"""Resuming a fetch: which existing output partitions can be kept.

``write_records`` writes each output partition to a temporary file and renames it
when complete, so a killed run leaves finished partitions under their final names and
at most a ``.part-*.parquet.tmp-PID`` file for the partition it was writing. A kept
partition must also belong to the current input: the same keys in the same order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

#: Temporary files that ``atomic_write_table`` leaves behind when a run is killed while writing.
TEMPORARY_PATTERN = ".part-*.parquet.tmp-*"


def stale_output_reason(in_path: Path, out_path: Path) -> str | None:
    """Return why ``out_path`` is not the fetch output of ``in_path``, or None when it is.

    Only the key columns are read: the output's ``key`` must equal the input's
    ``candidate_id`` row by row.
    """
    try:
        output_keys = pq.read_table(out_path, columns=["key"]).column("key").to_pylist()
    except (OSError, KeyError, pa.ArrowException) as error:
        return f"cannot be read ({type(error).__name__}: {error})"
    input_keys = pq.read_table(in_path, columns=["candidate_id"]).column("candidate_id").to_pylist()

    if len(output_keys) != len(input_keys):
        return f"has {len(output_keys)} rows but its input has {len(input_keys)}"
    for row, (output_key, input_key) in enumerate(zip(output_keys, input_keys)):
        if output_key != input_key:
            return f"row {row} has key {output_key!r} but the input row has {input_key!r}"
    return None


def remove_temporary_files(out_dir: Path) -> int:
    """Delete the temporary partition files that killed runs left in ``out_dir``; return how many."""
    removed = 0
    for path in sorted(Path(out_dir).glob(TEMPORARY_PATTERN)):
        logger.info("deleting %s, left by an interrupted run", path)
        path.unlink(missing_ok=True)
        removed += 1
    return removed
