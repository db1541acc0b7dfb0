"""Text statistics of Common Crawl WET files.

WET files hold the plain text of each page in ``conversion`` records, so they contain no
images and give no candidates. The harvest still accepts them and counts their records,
characters and identified languages, which stats.json reports as ``text``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from fastwarc.warc import WarcRecordType

from wit_builder.harvest.reader import ArchiveReader
from wit_builder.harvest.stats import HarvestStats

#: Text bytes counted from one record. Longer texts are counted up to this size.
MAX_TEXT_BYTES = 64 * 1024 * 1024

UNDETECTED = "undetected"


@dataclass
class TextStats:
    """Counts of the text records of WET files.

    ``languages`` counts records by the first code of WARC-Identified-Content-Language (ISO 639-3,
    such as ``eng``), which Common Crawl detects; records without it count as ``undetected``.
    """

    records: int = 0
    characters: int = 0
    bytes: int = 0
    languages: collections.Counter = field(default_factory=collections.Counter)

    def merge(self, other: TextStats) -> None:
        """Add the counts of another partition to this one."""
        self.records += other.records
        self.characters += other.characters
        self.bytes += other.bytes
        self.languages.update(other.languages)

    def to_json(self) -> dict:
        """Return the counts for the ``text`` field of stats.json."""
        return {
            "records": self.records,
            "characters": self.characters,
            "bytes": self.bytes,
            "languages": dict(self.languages.most_common()),
        }


def primary_language(value: str | None) -> str:
    """Return the first code of a WARC-Identified-Content-Language value such as ``eng,deu``."""
    code = (value or "").split(",", 1)[0].strip().lower()
    return code or UNDETECTED


def count_wet_stream(reader: ArchiveReader, stats: HarvestStats, text: TextStats) -> None:
    """Count the text records of a WET stream into ``text`` and every record into ``stats``."""
    for record in reader:
        if record.record_type != WarcRecordType.conversion:
            continue
        payload = reader.read_payload(record, MAX_TEXT_BYTES)
        if payload is None:
            break
        data, cut = payload
        if cut:
            stats.extra["text_records_cut_at_limit"] += 1
        text.records += 1
        text.bytes += len(data)
        text.characters += len(data.decode("utf-8", errors="replace"))
        text.languages[primary_language(record.headers.get("WARC-Identified-Content-Language"))] += 1

    stats.extra["records"] = reader.records
    stats.extra["text_records"] = text.records
    stats.extra["text_characters"] = text.characters
