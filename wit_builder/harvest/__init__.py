"""Harvest stage: (image URL, text) candidates from crawled pages and Common Crawl archives.

The names below are imported on first use, so that importing one submodule, such as the
WAT reader, does not import the crawler and its HTTP stack as well.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CrawlConfig": "wit_builder.harvest.crawler",
    "crawl": "wit_builder.harvest.crawler",
    "crawl_async": "wit_builder.harvest.crawler",
    "PageExtraction": "wit_builder.harvest.extract",
    "extract_candidates": "wit_builder.harvest.extract",
    "extract_links": "wit_builder.harvest.extract",
    "extract_page": "wit_builder.harvest.extract",
    "HarvestStats": "wit_builder.harvest.stats",
    "harvest_warc": "wit_builder.harvest.warc",
    "harvest_warcs": "wit_builder.harvest.warc",
    "ArchiveOptions": "wit_builder.harvest.archives",
    "HarvestRun": "wit_builder.harvest.archives",
    "InputOutcome": "wit_builder.harvest.archives",
    "harvest_input": "wit_builder.harvest.archives",
    "harvest_inputs": "wit_builder.harvest.archives",
    "ArchiveFormat": "wit_builder.harvest.sources",
    "HarvestInput": "wit_builder.harvest.sources",
    "StreamConfig": "wit_builder.harvest.sources",
    "resolve_inputs": "wit_builder.harvest.sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
