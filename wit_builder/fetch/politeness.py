"""Per-host pacing of image downloads: concurrency, spacing and adaptive backoff.

``HostScheduler`` keeps the queued requests of every host and decides which one may
start next. A host is ready when it has fewer than ``max_per_host`` requests in flight
and its next start time has passed. Ready hosts take turns, so a slow or throttled
host occupies at most ``max_per_host`` of the global slots while the other hosts keep the
rest busy. The scheduler has no clock and does no I/O: callers pass the current time,
which keeps it testable and cheap (O(log hosts) per request).

Spacing: a host's requests start at least ``delay_s`` apart. ``delay_s`` starts at
``PolitenessConfig.host_delay_s`` (or a longer robots.txt Crawl-delay), doubles after
each throttling response (429 or 503), up to ``max_host_delay_s``, and shrinks back by
``RECOVERY_FACTOR`` after each other response. A throttling response also pauses the
whole host for its Retry-After, so every URL of the host waits, not just the one that
was rejected.
"""

from __future__ import annotations

import collections
import enum
import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

JobT = TypeVar("JobT")

#: Factor applied to a raised host delay after each response that is not throttling.
RECOVERY_FACTOR = 0.9


@dataclass
class PolitenessConfig:
    """Per-host request pacing of the fetch stage. Times are in seconds.

    Per-host and global concurrency stay in ``HttpConfig`` (``max_per_host`` and
    ``max_concurrency``), as do the retry count and the backoff of single URLs.
    """

    #: Minimum time between the starts of two requests to one host; 0 turns spacing off.
    host_delay_s: float = 0.1
    #: Spacing of a host after its first throttling response (429 or 503), when longer than its delay.
    throttle_delay_s: float = 1.0
    #: Maximum spacing that throttling responses raise a host's delay to.
    max_host_delay_s: float = 30.0
    #: Stop requesting a host after this many throttling responses in a row; 0 never stops.
    #: Its remaining URLs get http_error without a request, and --retry-failed retries them.
    max_throttled_in_row: int = 10
    #: Use a robots.txt Crawl-delay longer than ``host_delay_s`` as the host's spacing.
    respect_crawl_delay: bool = True
    #: URLs of an origin whose Crawl-delay is longer than this get robots_disallowed.
    max_crawl_delay_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("host_delay_s", "throttle_delay_s", "max_host_delay_s", "max_throttled_in_row", "max_crawl_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"PolitenessConfig.{name} must not be negative, got {getattr(self, name)!r}")
        if self.max_host_delay_s < self.host_delay_s:
            raise ValueError(
                f"PolitenessConfig.max_host_delay_s ({self.max_host_delay_s}) must not be smaller than "
                f"host_delay_s ({self.host_delay_s})"
            )


class Response(enum.Enum):
    """Effect of a finished request on the pacing of its host."""

    #: The host sent a response other than 429 or 503, so a raised delay shrinks.
    ANSWERED = "answered"
    #: The host responded with 429 or 503, so the delay doubles and the host pauses.
    THROTTLED = "throttled"
    #: No response (timeout, connection error), so the pacing stays as it is.
    NO_ANSWER = "no_answer"


@dataclass
class HostState(Generic[JobT]):
    """Queue and pacing of one host. The fields are read by tests and stats."""

    key: str
    delay_s: float
    #: Delay that the host returns to after throttling: host_delay_s or a longer Crawl-delay.
    base_delay_s: float
    #: Queued jobs as a heap of (not_before, order, sequence, job).
    jobs: list = field(default_factory=list)
    active: int = 0
    next_start: float = 0.0
    throttled_in_row: int = 0
    throttled_total: int = 0
    requests: int = 0
    #: Reason why the host gets no more requests, once it is stopped.
    stopped: str | None = None
    in_ready: bool = False
    wake_at: float | None = None


class HostScheduler(Generic[JobT]):
    """Queues of jobs per host; ``pop_ready`` returns the next job allowed to start.

    Within one host, jobs start in ``order`` (the input position), except that a job
    waits until its ``not_before`` time, which is how retries back off.
    """

    def __init__(self, config: PolitenessConfig, max_per_host: int):
        if max_per_host <= 0:
            raise ValueError(f"max_per_host must be positive, got {max_per_host}")
        self.config = config
        self.max_per_host = max_per_host
        self.hosts: dict[str, HostState[JobT]] = {}
        self.queued = 0
        self._ready: collections.deque[HostState[JobT]] = collections.deque()
        self._timers: list[tuple[float, int, HostState[JobT]]] = []
        self._sequence = itertools.count()

    def host(self, key: str) -> HostState[JobT]:
        """Return the state of host ``key``, creating it on first use."""
        state = self.hosts.get(key)
        if state is None:
            delay = self.config.host_delay_s
            state = self.hosts[key] = HostState(key=key, delay_s=delay, base_delay_s=delay)
        return state

    def add(self, key: str, job: JobT, order: int, now: float, not_before: float = 0.0) -> None:
        """Queue ``job`` on host ``key``; it starts no earlier than ``not_before``."""
        state = self.host(key)
        heapq.heappush(state.jobs, (not_before, order, next(self._sequence), job))
        self.queued += 1
        self._place(state, now)

    def pop_ready(self, now: float) -> tuple[str, JobT] | None:
        """Start the next job that may start at ``now`` and return (host key, job), or None.

        The host's spacing counts from this start, and its in-flight count grows by one
        until ``finish`` is called for it.
        """
        self._fire_timers(now)
        while self._ready:
            state = self._ready.popleft()
            state.in_ready = False
            ready_at = self._ready_time(state)
            if ready_at is None:
                continue
            if ready_at > now:
                self._place(state, now)
                continue

            _, _, _, job = heapq.heappop(state.jobs)
            self.queued -= 1
            state.active += 1
            state.requests += 1
            state.next_start = now + state.delay_s
            # Back of the queue: the other ready hosts go first.
            self._place(state, now)
            return state.key, job
        return None

    def next_wakeup(self) -> float | None:
        """Return the earliest time at which a waiting host may become ready, or None.

        The time can be early (a host whose wait grew since), never late.
        """
        return self._timers[0][0] if self._timers else None

    def finish(self, key: str, now: float, response: Response, retry_after_s: float | None = None) -> bool:
        """Release the slot of a finished job and adapt the host's pacing to the response.

        ``retry_after_s`` is the Retry-After of a throttling response. Returns True when
        this response made the host reach ``max_throttled_in_row``, so the caller
        should stop it with ``stop``.
        """
        state = self.hosts[key]
        state.active -= 1
        reached_limit = False

        if response is Response.THROTTLED:
            state.throttled_in_row += 1
            state.throttled_total += 1
            state.delay_s = min(self.config.max_host_delay_s, max(state.delay_s * 2, self.config.throttle_delay_s))
            pause_s = max(state.delay_s, retry_after_s or 0.0)
            state.next_start = max(state.next_start, now + pause_s)
            limit = self.config.max_throttled_in_row
            reached_limit = bool(limit) and state.throttled_in_row >= limit and state.stopped is None
        elif response is Response.ANSWERED:
            state.throttled_in_row = 0
            if state.delay_s > state.base_delay_s:
                state.delay_s = max(state.base_delay_s, state.delay_s * RECOVERY_FACTOR)

        self._place(state, now)
        return reached_limit

    def pause(self, key: str, until: float) -> None:
        """Start no request to host ``key`` before ``until``."""
        state = self.host(key)
        state.next_start = max(state.next_start, until)

    def raise_base_delay(self, key: str, delay_s: float) -> None:
        """Space the requests to host ``key`` at least ``delay_s`` apart from now on, as a Crawl-delay requests."""
        state = self.host(key)
        if delay_s > state.base_delay_s:
            state.base_delay_s = delay_s
            state.delay_s = max(state.delay_s, delay_s)

    def stop(self, key: str, reason: str) -> list[JobT]:
        """Stop host ``key`` for ``reason`` and return its queued jobs in input order.

        A stopped host starts no more jobs, and jobs added to it later stay queued, so
        callers check ``stopped_reason`` before they queue a retry.
        """
        state = self.host(key)
        state.stopped = reason
        return self._drain(state)

    def stopped_reason(self, key: str) -> str | None:
        """Return why host ``key`` was stopped, or None while it is not."""
        state = self.hosts.get(key)
        return state.stopped if state is not None else None

    def _drain(self, state: HostState[JobT]) -> list[JobT]:
        jobs = [entry[3] for entry in sorted(state.jobs)]
        state.jobs.clear()
        self.queued -= len(jobs)
        return jobs

    def _ready_time(self, state: HostState[JobT]) -> float | None:
        """Return when the host may start its next job, or None when it has none to start now."""
        if not state.jobs or state.active >= self.max_per_host or state.stopped is not None:
            return None
        return max(state.next_start, state.jobs[0][0])

    def _place(self, state: HostState[JobT], now: float) -> None:
        """Put the host in the ready queue or on a timer, according to its next start time."""
        if state.in_ready:
            return
        ready_at = self._ready_time(state)
        if ready_at is None:
            return
        if ready_at <= now:
            state.in_ready = True
            state.wake_at = None
            self._ready.append(state)
        elif state.wake_at is None or ready_at < state.wake_at:
            state.wake_at = ready_at
            heapq.heappush(self._timers, (ready_at, next(self._sequence), state))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            wake_at, _, state = heapq.heappop(self._timers)
            if state.wake_at != wake_at:
                continue  # superseded by an earlier timer of the same host
            state.wake_at = None
            self._place(state, now)
