"""Crawl frontier: the URLs of a crawl in SQLite, and per-host queues that space the requests.

``FrontierStore`` keeps one row per normalized URL with its depth, host, state and outcome,
and one row per host with its counters, in a SQLite database in WAL mode. A URL moves from
``queued`` to ``in_flight`` when its request starts, and to ``done`` or ``failed`` only when
the crawler commits it together with the part file that contains its candidates. A killed
crawl therefore leaves every unfinished URL ``in_flight``, and ``recover`` queues them again.

``HostQueues`` keeps the queued URLs in memory, one priority queue per host ordered by
depth and discovery, and picks the next URL of a host whose concurrency and delay allow it.
"""

from __future__ import annotations

import enum
import heapq
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from wit_builder.harvest.robots import RobotsRules

#: Version of the database layout; a frontier with another version is rejected.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    depth INTEGER NOT NULL,
    redirects INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'in_flight', 'done', 'failed')),
    status TEXT,
    http_status INTEGER,
    content_type TEXT
);
CREATE INDEX IF NOT EXISTS urls_by_state ON urls (state, depth, id);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    seed INTEGER NOT NULL DEFAULT 0,
    pages_fetched INTEGER NOT NULL DEFAULT 0,
    limit_hit INTEGER NOT NULL DEFAULT 0,
    robots TEXT,
    crawl_delay_s REAL,
    delay_s REAL,
    skipped TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class UrlState(str, enum.Enum):
    """Life cycle of a frontier URL."""

    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"


def host_of(url: str) -> str:
    """Return ``scheme://host:port`` of a URL, lower case, with the scheme's default port filled in.

    Politeness, limits and robots.txt all apply per value of this key.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    hostname = (parts.hostname or "").lower()
    if ":" in hostname:
        hostname = f"[{hostname}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return f"{scheme}://{hostname}:{port}"


@dataclass(frozen=True, order=True)
class FrontierEntry:
    """One queued URL; entries sort by depth, then by discovery order."""

    depth: int
    id: int
    url: str = field(compare=False)
    host: str = field(compare=False)
    #: Redirect hops that led to this URL from a linked or seed URL.
    redirects: int = field(default=0, compare=False)


@dataclass
class PageRecord:
    """Final outcome of one URL, written to the frontier when its batch is committed."""

    url_id: int
    host: str
    state: UrlState
    status: str
    http_status: int | None = None
    content_type: str | None = None
    #: Whether a request was sent, so that the URL counts against the page limits.
    requested: bool = False


@dataclass
class HostRow:
    """Persisted counters and robots.txt facts of one host."""

    host: str
    #: Host of a seed or of a seed's redirect target, whose links same_host_only follows.
    seed: bool = False
    pages_fetched: int = 0
    limit_hit: bool = False
    robots: str | None = None
    crawl_delay_s: float | None = None
    delay_s: float | None = None
    skipped: str | None = None


class FrontierStore:
    """SQLite store of a crawl's URLs, host counters and metadata.

    Use it from one thread. ``add`` and ``mark_in_flight`` write at once, and
    ``commit_pages`` writes page outcomes and metadata in one transaction.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.connection = sqlite3.connect(self.path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL keeps every commit across a crash of the process; only a power
        # loss can drop the latest commits.
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta({"schema_version": str(SCHEMA_VERSION)})
        elif int(version) != SCHEMA_VERSION:
            self.connection.close()
            raise ValueError(
                f"frontier {self.path} has schema version {version}, expected {SCHEMA_VERSION}; rerun with --restart"
            )

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "FrontierStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_meta(self, key: str) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, values: dict[str, str]) -> None:
        with self.connection:
            self._write_meta(values)

    def _write_meta(self, values: dict[str, str]) -> None:
        self.connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def recover(
        self, retry_statuses: frozenset[str] = frozenset(), meta: dict[str, str] | None = None
    ) -> tuple[int, dict[str, int]]:
        """Queue the in-flight URLs of an interrupted run, and the failed ones with a status in ``retry_statuses``.

        ``meta`` is written in the same transaction. Returns the number of in-flight URLs
        queued again, and the number of failed URLs queued again per status.
        """
        retried = {}
        with self.connection:
            in_flight = self.connection.execute(
                "UPDATE urls SET state = 'queued' WHERE state = 'in_flight'"
            ).rowcount
            for status in sorted(retry_statuses):
                count = self.connection.execute(
                    "UPDATE urls SET state = 'queued', status = NULL, http_status = NULL, content_type = NULL "
                    "WHERE state = 'failed' AND status = ?",
                    (status,),
                ).rowcount
                if count:
                    retried[status] = count
            self._write_meta(meta or {})
        return in_flight, retried

    def add(self, url: str, host: str, depth: int, redirects: int = 0) -> FrontierEntry | None:
        """Insert a queued URL and return its entry, or None when the URL is in the frontier already."""
        with self.connection:
            cursor = self.connection.execute(
                "INSERT INTO urls (url, host, depth, redirects) VALUES (?, ?, ?, ?) ON CONFLICT (url) DO NOTHING",
                (url, host, depth, redirects),
            )
        if cursor.rowcount != 1:
            return None
        return FrontierEntry(depth=depth, id=cursor.lastrowid, url=url, host=host, redirects=redirects)

    def add_many(self, entries: list[tuple[str, str, int, int]]) -> list[FrontierEntry]:
        """Insert ``(url, host, depth, redirects)`` tuples in one transaction; return the new entries."""
        added = []
        with self.connection:
            for url, host, depth, redirects in entries:
                cursor = self.connection.execute(
                    "INSERT INTO urls (url, host, depth, redirects) VALUES (?, ?, ?, ?) ON CONFLICT (url) DO NOTHING",
                    (url, host, depth, redirects),
                )
                if cursor.rowcount == 1:
                    added.append(FrontierEntry(depth=depth, id=cursor.lastrowid, url=url, host=host, redirects=redirects))
        return added

    def queued(self, max_depth: int | None = None) -> list[FrontierEntry]:
        """Return the queued URLs in crawl order, those deeper than ``max_depth`` left out."""
        query = "SELECT depth, id, url, host, redirects FROM urls WHERE state = 'queued'"
        parameters: tuple = ()
        if max_depth is not None:
            query += " AND depth <= ?"
            parameters = (max_depth,)
        rows = self.connection.execute(query + " ORDER BY depth, id", parameters)
        return [FrontierEntry(depth=row[0], id=row[1], url=row[2], host=row[3], redirects=row[4]) for row in rows]

    def mark_in_flight(self, url_id: int) -> None:
        with self.connection:
            self.connection.execute("UPDATE urls SET state = 'in_flight' WHERE id = ?", (url_id,))

    def commit_pages(self, records: list[PageRecord], meta: dict[str, str]) -> None:
        """Write the outcomes of ``records``, add their requests to the host counters, and write ``meta``, atomically."""
        fetched: dict[str, int] = {}
        for record in records:
            if record.requested:
                fetched[record.host] = fetched.get(record.host, 0) + 1

        with self.connection:
            self.connection.executemany(
                "UPDATE urls SET state = ?, status = ?, http_status = ?, content_type = ? WHERE id = ?",
                [
                    (record.state.value, record.status, record.http_status, record.content_type, record.url_id)
                    for record in records
                ],
            )
            for host, count in fetched.items():
                self._ensure_host(host)
                self.connection.execute(
                    "UPDATE hosts SET pages_fetched = pages_fetched + ? WHERE host = ?", (count, host)
                )
            self._write_meta(meta)

    def _ensure_host(self, host: str) -> None:
        self.connection.execute("INSERT INTO hosts (host) VALUES (?) ON CONFLICT (host) DO NOTHING", (host,))

    def update_host(self, host: str, **values: object) -> None:
        """Set columns of a host row, creating the row when needed."""
        columns = {"seed", "limit_hit", "robots", "crawl_delay_s", "delay_s", "skipped"}
        unknown = set(values) - columns
        if unknown:
            raise ValueError(f"unknown host column(s) {sorted(unknown)}; valid: {sorted(columns)}")
        with self.connection:
            self._ensure_host(host)
            for name, value in values.items():
                self.connection.execute(f"UPDATE hosts SET {name} = ? WHERE host = ?", (value, host))

    def hosts(self) -> dict[str, HostRow]:
        rows = self.connection.execute(
            "SELECT host, seed, pages_fetched, limit_hit, robots, crawl_delay_s, delay_s, skipped FROM hosts"
        )
        return {
            row[0]: HostRow(row[0], bool(row[1]), row[2], bool(row[3]), row[4], row[5], row[6], row[7]) for row in rows
        }

    def state_counts(self) -> dict[str, int]:
        rows = self.connection.execute("SELECT state, COUNT(*) FROM urls GROUP BY state")
        return {state: count for state, count in rows}

    def status_counts(self) -> dict[str, int]:
        """Return how many finished URLs have each status."""
        rows = self.connection.execute(
            "SELECT status, COUNT(*) FROM urls WHERE state IN ('done', 'failed') GROUP BY status"
        )
        return {status: count for status, count in rows}

    def failed_status_counts(self) -> dict[str, int]:
        """Return how many failed URLs have each status."""
        rows = self.connection.execute("SELECT status, COUNT(*) FROM urls WHERE state = 'failed' GROUP BY status")
        return {status: count for status, count in rows}

    def http_status_counts(self) -> dict[int, int]:
        rows = self.connection.execute(
            "SELECT http_status, COUNT(*) FROM urls WHERE state IN ('done', 'failed') AND http_status IS NOT NULL "
            "GROUP BY http_status"
        )
        return {code: count for code, count in rows}

    def content_type_counts(self, status: str = "ok") -> dict[str, int]:
        """Return how many finished URLs with ``status`` have each media type; "(none)" when the header was missing."""
        rows = self.connection.execute(
            "SELECT COALESCE(content_type, '(none)'), COUNT(*) FROM urls "
            "WHERE state IN ('done', 'failed') AND status = ? GROUP BY 1",
            (status,),
        )
        return {content_type: count for content_type, count in rows}

    def urls_with_state(self, state: UrlState) -> list[str]:
        return [row[0] for row in self.connection.execute("SELECT url FROM urls WHERE state = ?", (state.value,))]

    def load_json(self, key: str) -> dict:
        value = self.get_meta(key)
        return json.loads(value) if value else {}


@dataclass
class HostState:
    """In-memory state of one host during a run."""

    host: str
    #: Queued entries, a heap ordered by depth and discovery.
    queue: list[FrontierEntry] = field(default_factory=list)
    #: Requests running now, robots.txt included.
    active: int = 0
    #: Event loop time before which no request to the host may start.
    next_start: float = 0.0
    #: Seconds between two request starts.
    delay_s: float = 0.0
    #: Page requests counted against the per-host limit, earlier runs included.
    fetched: int = 0
    rules: RobotsRules | None = None
    robots_pending: bool = False
    #: Status given to every URL of the host without a request, once set.
    blocked_status: str | None = None

    @property
    def robots_known(self) -> bool:
        return self.rules is not None


class HostQueues:
    """Per-host queues of frontier entries with the politeness rules of a crawl.

    A host is ready when it has queued URLs, runs fewer than ``max_per_host`` requests,
    has not reached ``max_pages_per_host`` (0 for no limit), is not blocked, and the loop
    time has reached its ``next_start``. Among the ready hosts, the one whose next URL is
    shallowest (then oldest) goes first, which keeps the crawl breadth-first.

    NOTE: every queued URL is kept in memory and ``pick`` scans all hosts, so memory and
    dispatch time grow with the frontier. Only frontiers of a few thousand URLs were tested.
    """

    def __init__(self, max_per_host: int, max_pages_per_host: int = 0):
        self.max_per_host = max_per_host
        self.max_pages_per_host = max_pages_per_host
        self.hosts: dict[str, HostState] = {}

    def state(self, host: str) -> HostState:
        """Return the state of ``host``, creating it on first use."""
        state = self.hosts.get(host)
        if state is None:
            state = self.hosts[host] = HostState(host)
        return state

    def push(self, entry: FrontierEntry) -> HostState:
        state = self.state(entry.host)
        heapq.heappush(state.queue, entry)
        return state

    def pop(self, state: HostState) -> FrontierEntry:
        return heapq.heappop(state.queue)

    def limit_reached(self, state: HostState) -> bool:
        return 0 < self.max_pages_per_host <= state.fetched

    def _waiting_for_slot(self, state: HostState) -> bool:
        """Return whether the host has work that only concurrency or time hold back."""
        return (
            bool(state.queue)
            and state.blocked_status is None
            and not state.robots_pending
            and not self.limit_reached(state)
        )

    def pick(self, now: float) -> HostState | None:
        """Return the ready host whose next URL goes first, or None when no host is ready."""
        best: HostState | None = None
        for state in self.hosts.values():
            if not self._waiting_for_slot(state):
                continue
            if state.active >= self.max_per_host or state.next_start > now:
                continue
            if best is None or state.queue[0] < best.queue[0]:
                best = state
        return best

    def next_ready_at(self) -> float | None:
        """Return the earliest ``next_start`` of a host that waits only for its delay, or None."""
        times = [
            state.next_start
            for state in self.hosts.values()
            if self._waiting_for_slot(state) and state.active < self.max_per_host
        ]
        return min(times) if times else None

    def has_work(self) -> bool:
        """Return whether any host still has URLs that it may fetch in this run."""
        return any(
            state.queue and state.blocked_status is None and not self.limit_reached(state)
            for state in self.hosts.values()
        )

    def drain(self, state: HostState) -> list[FrontierEntry]:
        """Remove and return every queued entry of a host."""
        entries = sorted(state.queue)
        state.queue.clear()
        return entries
