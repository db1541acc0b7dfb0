"""On-disk cache of compiled query lists, so that each process need not rebuild the automaton.

Building the automaton of 500,000 queries takes seconds, and every worker process
of a run needs it, so the first build is pickled to ``CACHE_DIR/automaton-KEY.pickle``.
KEY is a hash of the query file's bytes, the matching options and the versions that
change the automaton (the normal form, pyahocorasick, ICU and Python), so an edited
query list or another option gets a new file.

A cache file is one JSON header line, with the key and a BLAKE2b digest of the
payload, then the pickled ``CompiledQueries``. A file whose header names another key
is stale; a file whose payload does not match its digest, or that fails to unpickle,
is corrupt. Both are rebuilt with a warning. The digest is checked before unpickling,
because pyahocorasick reads a damaged automaton without checks. Like any pickle, a
cache file runs code when loaded, so the cache folder must be writable only by
trusted users.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import pickle
import sys
import time
from pathlib import Path

from wit_builder.match.matcher import MATCHER_FORMAT, CompiledQueries, compile_queries
from wit_builder.queries.build import load_queries

logger = logging.getLogger(__name__)

CACHE_PREFIX = "automaton-"
CACHE_SUFFIX = ".pickle"


def query_file(path: str | os.PathLike) -> Path:
    """Return the file that ``load_queries`` reads for ``path`` (a build folder is read through its list)."""
    path = Path(path).resolve()
    if path.is_dir():
        for name in ("queries.parquet", "queries.txt"):
            if (path / name).is_file():
                return path / name
    if not path.is_file():
        raise FileNotFoundError(f"query list not found: {path} (expected queries.parquet or a text file with one query a line)")
    return path


def _icu_version() -> str | None:
    try:
        import icu
    except ImportError:
        return None
    return icu.ICU_VERSION


def cache_key(queries_path: Path, ignore_case: bool) -> str:
    """Return the hex key of a query file's compiled form under the given options."""
    digest = hashlib.blake2b(digest_size=16)
    with open(queries_path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    versions = {
        "format": MATCHER_FORMAT,
        "ignore_case": ignore_case,
        "pyahocorasick": importlib.metadata.version("pyahocorasick"),
        "icu": _icu_version(),
        "python": list(sys.version_info[:2]),
    }
    digest.update(json.dumps(versions, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    """Return the cache file of ``key`` in ``cache_dir``."""
    return Path(cache_dir) / f"{CACHE_PREFIX}{key}{CACHE_SUFFIX}"


def read_cache(path: Path, key: str) -> CompiledQueries | None:
    """Load a cache file, or return None with a warning when it is stale or corrupt; None when absent."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
            payload = handle.read()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        logger.warning("automaton cache %s is unreadable (%s); rebuilding it", path, error)
        return None

    if not isinstance(header, dict) or header.get("key") != key:
        logger.warning("automaton cache %s was written for another query list, option or version; rebuilding it", path)
        return None
    if hashlib.blake2b(payload, digest_size=16).hexdigest() != header.get("digest"):
        logger.warning("automaton cache %s is corrupt (its digest does not match); rebuilding it", path)
        return None
    try:
        compiled = pickle.loads(payload)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as error:
        logger.warning("automaton cache %s does not unpickle (%s); rebuilding it", path, error)
        return None
    if not isinstance(compiled, CompiledQueries):
        logger.warning("automaton cache %s contains a %s, not compiled queries; rebuilding it", path, type(compiled).__name__)
        return None
    return compiled


def write_cache(path: Path, key: str, compiled: CompiledQueries) -> bool:
    """Write a cache file through a temporary file and a rename; return False with a warning on OSError."""
    payload = pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL)
    header = {"key": key, "digest": hashlib.blake2b(payload, digest_size=16).hexdigest(), "format": MATCHER_FORMAT}
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(json.dumps(header).encode("utf-8") + b"\n")
            handle.write(payload)
        os.replace(temporary, path)
    except OSError as error:
        logger.warning("could not write the automaton cache %s (%s); the next process will build the automaton again", path, error)
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True


def load_or_compile(queries_path: str | os.PathLike, ignore_case: bool, cache_dir: str | os.PathLike | None) -> CompiledQueries:
    """Return the compiled query list from ``cache_dir``, building and caching it when missing.

    With ``cache_dir`` None the automaton is built and nothing is written.
    """
    path = query_file(queries_path)
    if cache_dir is None:
        return compile_queries(load_queries(path), ignore_case)

    key = cache_key(path, ignore_case)
    cached = cache_path(Path(cache_dir), key)
    started = time.perf_counter()
    compiled = read_cache(cached, key)
    if compiled is not None:
        logger.info("loaded the automaton of %s from %s in %.2f s", path.name, cached, time.perf_counter() - started)
        return compiled

    compiled = compile_queries(load_queries(path), ignore_case)
    built = time.perf_counter()
    if write_cache(cached, key, compiled):
        logger.info("built the automaton of %s in %.2f s and cached it in %s", path.name, built - started, cached)
    return compiled


def remove_other_caches(cache_dir: str | os.PathLike, keep: str) -> int:
    """Delete the cache files in ``cache_dir`` other than the one of key ``keep``; return how many."""
    removed = 0
    for path in Path(cache_dir).glob(f"{CACHE_PREFIX}*{CACHE_SUFFIX}"):
        if path != cache_path(Path(cache_dir), keep):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
