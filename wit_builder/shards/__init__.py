"""Write kept samples to webdataset tar shards with parquet metadata and stats.

The writer is imported on first use, because webdataset loads torch.
"""

from wit_builder.shards.keys import make_key

__all__ = ["ShardStats", "make_key", "write_shards"]


def __getattr__(name: str):
    if name in ("ShardStats", "write_shards"):
        from wit_builder.shards import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
