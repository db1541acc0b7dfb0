"""Read and write lists of record dataclasses as parquet files.

Writes go to a temporary file in the same folder and are renamed when complete,
so a reader never sees a half-written file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Iterator, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

RecordT = TypeVar("RecordT")

_SCALAR_TYPES = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}


def _arrow_type(hint: object) -> pa.DataType:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported union type for parquet column: {hint}")
        return _arrow_type(members[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        return pa.list_(_arrow_type(item))
    if hint in _SCALAR_TYPES:
        return _SCALAR_TYPES[hint]
    raise TypeError(f"unsupported type for parquet column: {hint}")


def schema_for(record_type: type) -> pa.Schema:
    """Build the arrow schema of a record dataclass from its type hints."""
    hints = typing.get_type_hints(record_type)
    return pa.schema(
        [pa.field(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(record_type)]
    )


def atomic_write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
    return path


def write_records(path: str | os.PathLike, records: list, record_type: type) -> Path:
    """Write a list of ``record_type`` instances as one parquet file."""
    schema = schema_for(record_type)
    # Records are flat dataclasses, so reading the fields is enough; dataclasses.asdict
    # deep-copies every value and costs about ten times more.
    names = [field.name for field in dataclasses.fields(record_type)]
    rows = [{name: getattr(record, name) for name in names} for record in records]
    table = pa.Table.from_pylist(rows, schema=schema)
    return atomic_write_table(table, path)


def read_records(path: str | os.PathLike, record_type: type[RecordT]) -> list[RecordT]:
    """Read a parquet file written by ``write_records`` back into dataclasses.

    Columns that the dataclass does not declare are ignored, so older readers
    keep working when a stage adds a column.
    """
    return list(iter_records(path, record_type))


def iter_records(path: str | os.PathLike, record_type: type[RecordT], batch_size: int = 1024) -> Iterator[RecordT]:
    """Yield records from a parquet file, reading ``batch_size`` rows at a time.

    Keep ``batch_size`` small for rows that carry image bytes, because each batch is
    held in memory whole.
    """
    names = {f.name for f in dataclasses.fields(record_type)}
    parquet_file = pq.ParquetFile(path)
    columns = [name for name in parquet_file.schema_arrow.names if name in names]
    for batch in parquet_file.iter_batches(batch_size=batch_size, columns=columns):
        for row in batch.to_pylist():
            yield record_type(**row)


def list_parts(folder: str | os.PathLike, pattern: str = "part-*.parquet") -> list[Path]:
    """Return the partition files of a stage's output folder in name order."""
    return sorted(Path(folder).glob(pattern))


def clear_parts(folder: str | os.PathLike, pattern: str = "part-*.parquet") -> int:
    """Delete a stage's old partition files before it writes new ones; return how many."""
    removed = 0
    for part in Path(folder).glob(pattern):
        part.unlink()
        removed += 1
    return removed
