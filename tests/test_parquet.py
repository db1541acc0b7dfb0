"""RecordWriter: row groups as records come, an atomic rename, and nothing left behind on error."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from wit_builder.parquet import RecordWriter, read_records, write_records
from wit_builder.records import FetchResult


def result(number: int) -> FetchResult:
    return FetchResult(key=f"{number:04d}", url=f"https://example.org/{number}.jpg", caption="a dog", status="ok", image=bytes([number]) * 10, query_ids=[number])


def test_writes_row_groups_and_renames_on_close(tmp_path):
    path = tmp_path / "part-00000.parquet"
    with RecordWriter(path, FetchResult, row_group_size=3) as writer:
        for number in range(7):
            writer.write(result(number))
        assert not path.exists()
        assert len(list(tmp_path.glob(".part-00000.parquet.tmp-*"))) == 1

    assert pq.ParquetFile(path).num_row_groups == 3
    assert read_records(path, FetchResult) == [result(number) for number in range(7)]
    assert not list(tmp_path.glob(".*tmp*"))

    # The same records give the same rows as a one-shot write.
    write_records(tmp_path / "whole.parquet", [result(number) for number in range(7)], FetchResult)
    assert read_records(tmp_path / "whole.parquet", FetchResult) == read_records(path, FetchResult)


def test_error_keeps_the_previous_file(tmp_path):
    path = tmp_path / "part-00000.parquet"
    write_records(path, [result(1)], FetchResult)
    before = path.read_bytes()

    with pytest.raises(RuntimeError, match="stopped"):
        with RecordWriter(path, FetchResult, row_group_size=2) as writer:
            for number in range(5):
                writer.write(result(number))
            raise RuntimeError("stopped")

    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp*"))


def test_empty_writer_writes_an_empty_file(tmp_path):
    path = tmp_path / "empty.parquet"
    RecordWriter(path, FetchResult).close()
    assert read_records(path, FetchResult) == []
    with pytest.raises(ValueError, match="row_group_size"):
        RecordWriter(path, FetchResult, row_group_size=0)


def test_image_column_stored_plain(tmp_path):
    path = tmp_path / "part-00000.parquet"
    with RecordWriter(path, FetchResult) as writer:
        writer.write(result(1))
    write_records(tmp_path / "whole.parquet", [result(1)], FetchResult)

    for written in (path, tmp_path / "whole.parquet"):
        row_group = pq.ParquetFile(written).metadata.row_group(0)
        codecs = {row_group.column(index).path_in_schema: row_group.column(index).compression for index in range(row_group.num_columns)}
        assert codecs["image"] == "UNCOMPRESSED"
        assert codecs["caption"] == "SNAPPY"
