"""Typed records passed between pipeline stages.

Each stage reads and writes parquet files whose rows are one of these dataclasses.
The parquet schema of each class comes from its type hints (see ``wit_builder.parquet``),
so adding a field here adds a column everywhere.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field


class QueryKind(str, enum.Enum):
    """Source of a query entry."""

    UNIGRAM = "unigram"
    BIGRAM = "bigram"
    TITLE = "title"
    WORDNET = "wordnet"


class TextSource(str, enum.Enum):
    """HTML attribute or element that a candidate's text came from."""

    ALT = "alt"
    TITLE = "title"
    FIGCAPTION = "figcaption"


class FetchStatus(str, enum.Enum):
    """Outcome of fetching and decoding one sample. Every input sample gets exactly one."""

    OK = "ok"
    INVALID_URL = "invalid_url"
    BLOCKED_ADDRESS = "blocked_address"
    ROBOTS_DISALLOWED = "robots_disallowed"
    #: The origin's robots.txt returned 429 or 5xx, or no response, so RFC 9309 disallows the origin.
    ROBOTS_UNREACHABLE = "robots_unreachable"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    TOO_LARGE = "too_large"
    TRUNCATED = "truncated"
    #: The response broke HTTP/1.1 or its Content-Encoding, e.g. bytes after the declared end of the body.
    PROTOCOL_ERROR = "protocol_error"
    NOT_AN_IMAGE = "not_an_image"
    #: The body is an SVG document (or served as image/svg+xml); vector images are not rasterized.
    UNSUPPORTED_SVG = "unsupported_svg"
    IMAGE_TOO_LARGE = "image_too_large"
    DECODE_ERROR = "decode_error"
    #: Decoding exceeded the per-image CPU or wall-clock limit and its worker process was killed.
    DECODE_TIMEOUT = "decode_timeout"


#: Statuses worth another attempt in a later run.
RETRYABLE_STATUSES = frozenset(
    {
        FetchStatus.DNS_ERROR,
        FetchStatus.CONNECTION_ERROR,
        FetchStatus.TIMEOUT,
        FetchStatus.HTTP_ERROR,
        FetchStatus.TRUNCATED,
        FetchStatus.ROBOTS_UNREACHABLE,
    }
)


def candidate_id(url: str, text: str) -> str:
    """Return a stable 16-hex-digit id for an (image URL, text) pair."""
    digest = hashlib.blake2b(f"{url}\x00{text}".encode("utf-8"), digest_size=8)
    return digest.hexdigest()


@dataclass
class QueryEntry:
    """One row of a query list.

    ``count`` means occurrences for unigrams and bigrams, links from other articles for
    titles, and synsets for WordNet names. ``pageviews`` is set for titles when pageview
    files were given.
    """

    query: str
    kind: str
    count: int
    pmi: float | None = None
    pageviews: int | None = None


@dataclass
class Candidate:
    """An (image URL, text) pair found on a web page or in a web archive."""

    candidate_id: str
    url: str
    text: str
    text_source: str
    page_url: str
    source: str
    page_language: str | None = None


@dataclass
class MatchedCandidate(Candidate):
    """A candidate whose text contains at least one query."""

    query_ids: list[int] = field(default_factory=list)


@dataclass
class FetchResult:
    """Outcome of fetching, validating and resizing one matched candidate.

    ``image`` contains the resized JPEG bytes when ``status`` is ``ok`` and is None otherwise.
    """

    key: str
    url: str
    caption: str
    status: str
    error: str | None = None
    http_status: int | None = None
    bytes_downloaded: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    width: int | None = None
    height: int | None = None
    image: bytes | None = None
    query_ids: list[int] = field(default_factory=list)
    page_url: str | None = None
    text_source: str | None = None


@dataclass
class FilterDecision:
    """Whether one fetched sample goes into the shards, and why not."""

    key: str
    keep: bool
    reason: str | None
    language: str
    caption_chars: int
    caption_words: int
    pixel_hash: str | None = None
    phash: str | None = None
    duplicate_of: str | None = None
