"""Inputs of the archive harvest: their format, path lists, and opening them as byte streams.

An input is a local path, an http(s) URL (streamed, see ``httpstream``), or a URI that
``pyarrow.fs.FileSystem.from_uri`` opens, such as ``s3://``, ``gs://`` or ``file://``. Lists of
inputs use Common Crawl's ``warc.paths.gz`` layout: plain or gzip text with one path a line,
where relative paths are joined to a base prefix such as ``https://data.commoncrawl.org/``.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

__all__ = [
    "ArchiveFormat",
    "HarvestInput",
    "InputOpenError",
    "StreamConfig",
    "detect_format",
    "join_location",
    "open_input",
    "read_paths_list",
    "resolve_inputs",
]

#: Compression suffixes that FastWARC recognises by content, stripped before the format suffix is read.
COMPRESSION_SUFFIXES = (".gz", ".zst", ".lz4")

_READ_BUFFER_BYTES = 1024 * 1024


class ArchiveFormat(str, enum.Enum):
    """Common Crawl archive format: WARC (HTTP responses), WAT (JSON metadata) or WET (plain text)."""

    WARC = "warc"
    WAT = "wat"
    WET = "wet"


@dataclass
class StreamConfig:
    """Settings of streamed HTTP inputs. Times are in seconds."""

    #: Allow loopback, private, link-local and other non-public addresses (local test servers only).
    allow_private: bool = False
    #: Maximum time to open the TCP (and TLS) connection.
    connect_timeout_s: float = 30.0
    #: Maximum wait for the next bytes of a response; reading that the consumer paused does not count.
    read_timeout_s: float = 120.0
    #: Range requests for the rest of a body after its connection dropped.
    retries: int = 3
    #: Wait before the first Range request; it doubles after each one.
    backoff_s: float = 1.0
    #: Maximum number of redirects followed.
    max_redirects: int = 5
    #: Bytes handed to the reader at a time.
    chunk_bytes: int = 256 * 1024
    #: Chunks read ahead of the reader.
    queue_chunks: int = 32
    #: User-Agent header; None uses "wit-builder/VERSION".
    user_agent: str | None = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "chunk_bytes", "queue_chunks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"StreamConfig.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("retries", "backoff_s", "max_redirects"):
            if getattr(self, name) < 0:
                raise ValueError(f"StreamConfig.{name} must not be negative, got {getattr(self, name)!r}")


class InputOpenError(OSError):
    """An input that cannot be opened: missing file, HTTP error, blocked address, unknown file system."""


@dataclass(frozen=True)
class HarvestInput:
    """One archive to harvest and the format to read it as."""

    location: str
    format: ArchiveFormat

    @property
    def name(self) -> str:
        """The last path segment, for log lines."""
        path = urlsplit(self.location).path if "://" in self.location else self.location
        return path.rstrip("/").rsplit("/", 1)[-1] or self.location


def _is_url(location: str) -> bool:
    scheme = location.split("://", 1)[0] if "://" in location else ""
    # A single letter before ":" is a Windows drive, not a scheme.
    return len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()


def detect_format(location: str) -> ArchiveFormat | None:
    """Return the format that a file name implies (.warc.gz, .warc.wat.gz, .warc.wet.gz), or None."""
    name = urlsplit(location).path if _is_url(location) else location
    name = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith(".wat") or name.endswith(".wat.json"):
        return ArchiveFormat.WAT
    if name.endswith(".wet"):
        return ArchiveFormat.WET
    if name.endswith(".warc"):
        return ArchiveFormat.WARC
    return None


def join_location(path: str, base_url: str | None) -> str:
    """Join a path of a list file to ``base_url``; URLs, absolute paths and paths without a base stay as they are."""
    if base_url is None or _is_url(path) or os.path.isabs(path):
        return path
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


@contextlib.contextmanager
def open_input(location: str, config: StreamConfig | None = None) -> Iterator[BinaryIO]:
    """Open an input for reading its bytes as stored; raises InputOpenError when it cannot be opened."""
    config = config or StreamConfig()
    if not _is_url(location):
        try:
            handle: BinaryIO = open(location, "rb", buffering=_READ_BUFFER_BYTES)
        except OSError as error:
            raise InputOpenError(f"cannot open {location}: {error.strerror or error}") from error
        with handle:
            yield handle
        return

    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        # The HTTP client is imported only for http(s) inputs, because aiohttp takes long to import.
        from wit_builder.harvest.httpstream import HttpOpenError, HttpStream

        try:
            stream = HttpStream(location, config)
        except HttpOpenError as error:
            raise InputOpenError(str(error)) from error
        with stream:
            yield stream
        return

    with _open_with_pyarrow(location) as stream:
        yield stream


@contextlib.contextmanager
def _open_with_pyarrow(location: str) -> Iterator[BinaryIO]:
    import pyarrow
    import pyarrow.fs

    try:
        filesystem, path = pyarrow.fs.FileSystem.from_uri(location)
        # compression=None keeps .gz files compressed: the archive readers decompress them.
        stream = filesystem.open_input_stream(path, compression=None, buffer_size=_READ_BUFFER_BYTES)
    except (OSError, pyarrow.ArrowException, ValueError) as error:
        raise InputOpenError(f"cannot open {location}: {error}") from error
    with stream:
        yield stream


def read_paths_list(location: str, base_url: str | None = None, config: StreamConfig | None = None) -> list[str]:
    """Return the locations listed in a paths file, one a line, joined to ``base_url``.

    The file may be plain or gzip text, local or remote like any input. Blank lines and lines
    starting with ``#`` are skipped. Raises InputOpenError when the list cannot be read.
    """
    with open_input(location, config) as stream:
        try:
            data = stream.read()
        except OSError as error:
            raise InputOpenError(f"cannot read the paths list {location}: {error}") from error
    if data.startswith(b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputOpenError(f"cannot decompress the paths list {location}: {error}") from error

    locations = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            locations.append(join_location(line, base_url))
    return locations


def resolve_inputs(
    locations: Iterable[str | os.PathLike] = (),
    paths_files: Iterable[str | os.PathLike] = (),
    base_url: str | None = None,
    format: ArchiveFormat | str | None = None,
    config: StreamConfig | None = None,
) -> list[HarvestInput]:
    """Return the inputs named directly and in path lists, each with its format.

    ``format`` reads every input as that format; without it the format comes from each name,
    and a name without a known suffix raises ValueError. Inputs named directly are joined to
    ``base_url`` too when they are relative and a base is given.
    """
    override = ArchiveFormat(format) if format is not None else None
    names = [join_location(os.fspath(location), base_url) for location in locations]
    for paths_file in paths_files:
        listed = read_paths_list(os.fspath(paths_file), base_url, config)
        logger.info("%s lists %d inputs", paths_file, len(listed))
        names.extend(listed)

    inputs = []
    mismatched = 0
    for name in names:
        detected = detect_format(name)
        if override is None:
            if detected is None:
                raise ValueError(f"cannot tell the format of {name} from its name: "
                                 "expected .warc.gz, .warc.wat.gz or .warc.wet.gz, or pass the format explicitly")
            inputs.append(HarvestInput(name, detected))
            continue
        if detected is not None and detected is not override:
            mismatched += 1
            if mismatched == 1:
                logger.warning("%s looks like a %s file but is read as %s as requested", name,
                               detected.value.upper(), override.value.upper())
        inputs.append(HarvestInput(name, override))
    if mismatched > 1:
        logger.warning("%d inputs in all have names of another format than %s", mismatched, override.value.upper())
    return inputs

