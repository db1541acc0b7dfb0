"""Harvest stage: (image URL, text) candidates from crawled pages and WARC files."""

from wit_builder.harvest.crawler import CrawlConfig, crawl, crawl_async
from wit_builder.harvest.extract import PageExtraction, extract_candidates, extract_links, extract_page
from wit_builder.harvest.stats import HarvestStats
from wit_builder.harvest.warc import harvest_warc, harvest_warcs

__all__ = [
    "CrawlConfig",
    "HarvestStats",
    "PageExtraction",
    "crawl",
    "crawl_async",
    "extract_candidates",
    "extract_links",
    "extract_page",
    "harvest_warc",
    "harvest_warcs",
]
