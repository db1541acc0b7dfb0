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


def writer_options(schema: pa.Schema) -> dict:
    """Return parquet writer options: binary columns stored plain, the others with snappy and dictionaries.

    Binary columns contain encoded images, which neither compression nor a dictionary
    makes smaller, and trying both costs CPU time on every row group.
    """
    binary = {field.name for field in schema if pa.types.is_binary(field.type)}
    if not binary:
        return {}
    return {
        "compression": {name: "none" if name in binary else "snappy" for name in schema.names},
        "use_dictionary": [name for name in schema.names if name not in binary],
    }


def atomic_write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, temporary, **writer_options(table.schema))
    os.replace(temporary, path)
    return path


def records_table(records: list, record_type: type, schema: pa.Schema | None = None) -> pa.Table:
    """Convert ``record_type`` instances into an arrow table with the schema of their type hints."""
    # Records are flat dataclasses, so reading the fields column by column is enough;
    # dataclasses.asdict deep-copies every value and costs about ten times more.
    names = [field.name for field in dataclasses.fields(record_type)]
    columns = {name: [getattr(record, name) for record in records] for name in names}
    return pa.table(columns, schema=schema or schema_for(record_type))


def write_records(path: str | os.PathLike, records: list, record_type: type) -> Path:
    """Write a list of ``record_type`` instances as one parquet file."""
    return atomic_write_table(records_table(records, record_type), path)


class RecordWriter:
    """Write records to one parquet file as they come, a row group every ``row_group_size`` records.

    Only the records of the current row group stay in memory. The file is written
    under a temporary name, and ``close`` renames it to ``path``. ``abort``, or leaving
    a ``with`` block by an exception, deletes it instead. The bytes depend only on the
    records and ``row_group_size``.
    """

    def __init__(self, path: str | os.PathLike, record_type: type, row_group_size: int = 1024):
        if row_group_size <= 0:
            raise ValueError(f"row_group_size must be positive, got {row_group_size}")
        self.path = Path(path)
        self.record_type = record_type
        self.row_group_size = row_group_size
        self.schema = schema_for(record_type)
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._temporary, self.schema, **writer_options(self.schema))
        self._buffer: list = []

    def write(self, record: object) -> None:
        self._buffer.append(record)
        self.rows += 1
        if len(self._buffer) >= self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(records_table(self._buffer, self.record_type, self.schema))
            self._buffer = []

    def close(self) -> Path:
        """Write the last row group and move the file to ``path``."""
        if self._writer is None:
            raise RuntimeError(f"{self.path} is already closed")
        self._flush()
        self._writer.close()
        self._writer = None
        os.replace(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._buffer = []
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._writer is not None:
            self.close()


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
