"""Filter and deduplicate fetched samples before they are written to shards."""

from wit_builder.filter.config import FilterConfig
from wit_builder.filter.stage import FilterStats, filter_partition

__all__ = ["FilterConfig", "FilterStats", "filter_partition"]
