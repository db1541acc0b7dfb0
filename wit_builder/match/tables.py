"""Arrow helpers for the match and balance stages, which filter whole record batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa

from wit_builder.parquet import schema_for


def required_columns(record_type: type) -> list[str]:
    """Return the fields of a record dataclass that have no default value."""
    return [
        field.name
        for field in dataclasses.fields(record_type)
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]


def check_columns(schema: pa.Schema, record_type: type, path: Path, provided: tuple[str, ...] = ()) -> None:
    """Raise ValueError naming the file when it lacks a column that ``record_type`` requires.

    ``provided`` names columns that the stage adds itself.
    """
    missing = [name for name in required_columns(record_type) if name not in schema.names and name not in provided]
    if missing:
        raise ValueError(f"{path} is missing the column(s) {missing}; expected a file of {record_type.__name__} rows")


def conform_table(table: pa.Table, record_type: type, extra: pa.Schema | None = None) -> pa.Table:
    """Return ``table`` with exactly the columns of ``record_type`` (plus ``extra``), in order and cast.

    Missing optional columns are added as nulls, and columns the record does not
    declare are dropped.
    """
    fields = list(schema_for(record_type))
    if extra is not None:
        fields += list(extra)
    columns = []
    for field in fields:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
