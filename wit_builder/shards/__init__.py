"""Write kept samples to webdataset tar shards with parquet metadata and stats."""

from wit_builder.shards.keys import make_key
from wit_builder.shards.writer import ShardStats, write_shards

__all__ = ["ShardStats", "make_key", "write_shards"]
