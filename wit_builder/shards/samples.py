"""Shard samples: the tar members and the metadata row of one kept sample."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from wit_builder.records import FetchResult, FilterDecision
from wit_builder.shards.keys import make_key


#: Samples per shard, the size webdataset and img2dataset users expect.
DEFAULT_SAMPLES_PER_SHARD = 10_000


@dataclass
class ShardSample:
    """Metadata of one sample in a shard: a row of NNNNN.parquet and the key.json member.

    ``key`` is the tar member key from ``make_key``, and ``source_key`` is the key that the
    fetch stage assigned. ``sha256`` is the digest of the JPEG bytes in key.jpg, and
    ``pixel_hash`` the filter's hash of the decoded pixels, equal for samples that
    share one image under several captions.
    """

    key: str
    source_key: str
    url: str
    caption: str
    status: str
    width: int | None
    height: int | None
    original_width: int | None
    original_height: int | None
    sha256: str
    language: str | None = None
    pixel_hash: str | None = None
    page_url: str | None = None
    text_source: str | None = None
    query_ids: list[int] = field(default_factory=list)


def build_sample(result: FetchResult, decision: FilterDecision | None) -> ShardSample:
    """Build the shard metadata of a fetched sample with status ok."""
    return ShardSample(
        key=make_key(result.key),
        source_key=result.key,
        url=result.url,
        caption=result.caption,
        status=result.status,
        width=result.width,
        height=result.height,
        original_width=result.original_width,
        original_height=result.original_height,
        sha256=hashlib.sha256(result.image or b"").hexdigest(),
        language=decision.language if decision is not None else None,
        pixel_hash=decision.pixel_hash if decision is not None else None,
        page_url=result.page_url,
        text_source=result.text_source,
        query_ids=list(result.query_ids or []),
    )


def tar_members(sample: ShardSample, image: bytes) -> dict[str, bytes | str]:
    """Return the webdataset sample dict: key.jpg, key.txt (caption) and key.json (metadata).

    The JSON has sorted keys so that equal metadata always gives equal bytes.
    """
    metadata = json.dumps(dataclasses.asdict(sample), sort_keys=True, ensure_ascii=False)
    return {
        "__key__": sample.key,
        "jpg": image,
        "txt": sample.caption.encode("utf-8"),
        "json": metadata.encode("utf-8"),
    }
