"""Run health of the image downloader: error rates over the most recent requests.

``RunHealth`` counts the outcome of every request attempt over a sliding window. It
gives a short summary for the progress bar, logs the counts of the window every
``log_interval_s``, and warns when one problem (HTTP 429, 5xx, timeouts, DNS or
connection errors) reaches ``warn_fraction`` of the window, with what to change.
Each warning repeats at most once per ``warn_interval_s`` for the same problem.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Callable

from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

#: Problems that trigger a warning: the label, how the warning names it, and what to change.
PROBLEMS = {
    "http_429": (
        "HTTP 429 (Too Many Requests)",
        "lower --per-host or raise --host-delay (http.max_per_host, politeness.host_delay_s)",
    ),
    "http_5xx": (
        "HTTP 5xx server errors",
        "servers may be overloaded: raise --host-delay or lower --per-host",
    ),
    "timeout": (
        "timeouts",
        "raise --timeout, or lower --concurrency if the network link is saturated",
    ),
    "dns_error": (
        "DNS errors",
        "the resolver may be overloaded: lower --concurrency or use a local caching resolver",
    ),
    "connection_error": (
        "connection errors",
        "lower --concurrency or --per-host, and check the network connection",
    ),
}


@dataclass
class HealthConfig:
    """Settings of the error-rate monitor of the fetch stage."""

    #: Number of most recent request attempts that the rates are computed over.
    window: int = 500
    #: Share of the window that one problem must reach for a warning, from 0 to 1.
    warn_fraction: float = 0.2
    #: Minimum attempts in the window before any warning.
    min_requests: int = 100
    #: Minimum seconds between two warnings about the same problem.
    warn_interval_s: float = 300.0
    #: Seconds between two log lines with the counts of the window; 0 turns them off.
    log_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"HealthConfig.window must be positive, got {self.window}")
        if not 0 < self.warn_fraction <= 1:
            raise ValueError(f"HealthConfig.warn_fraction must be in (0, 1], got {self.warn_fraction}")
        for name in ("min_requests", "warn_interval_s", "log_interval_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"HealthConfig.{name} must not be negative, got {getattr(self, name)!r}")


def request_label(status: FetchStatus | str, http_status: int | None) -> str:
    """Return the label that one request attempt counts under: the status, with HTTP errors split by class.

    HTTP errors become http_429, http_5xx or http_4xx. An HTTP error without a code (an
    invalid response) keeps the label http_error.
    """
    value = status.value if isinstance(status, FetchStatus) else status
    if value != FetchStatus.HTTP_ERROR.value or http_status is None:
        return value
    if http_status == 429:
        return "http_429"
    if 500 <= http_status < 600:
        return "http_5xx"
    if 400 <= http_status < 500:
        return "http_4xx"
    return value


class RunHealth:
    """Sliding-window counts of request outcomes, with a rate-limited warning per problem."""

    def __init__(self, config: HealthConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.config = config or HealthConfig()
        self.clock = clock
        self.total = 0
        self.warnings = 0
        self._recent: collections.deque[str] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()
        self._last_warned: dict[str, float] = {}
        self._started = clock()
        self._last_logged = self._started
        self._total_at_last_log = 0

    def record(self, label: str) -> None:
        """Count one request attempt under ``label`` (see ``request_label``), then log or warn if due."""
        self._recent.append(label)
        self._counts[label] += 1
        if len(self._recent) > self.config.window:
            dropped = self._recent.popleft()
            self._counts[dropped] -= 1
            if not self._counts[dropped]:
                del self._counts[dropped]
        self.total += 1

        now = self.clock()
        self._warn_if_due(label, now)
        if self.config.log_interval_s and now - self._last_logged >= self.config.log_interval_s:
            self._log_window(now)

    def counts(self) -> dict[str, int]:
        """Return the attempts of the window per label, most frequent first."""
        return dict(self._counts.most_common())

    def summary(self, labels: int = 4) -> str:
        """Return the shares of the ``labels`` most frequent labels of the window, such as "ok 91% http_429 6%"."""
        size = len(self._recent)
        if not size:
            return ""
        parts = [f"{label} {count / size:.0%}" for label, count in self._counts.most_common(labels)]
        return " ".join(parts)

    def _warn_if_due(self, label: str, now: float) -> None:
        problem = PROBLEMS.get(label)
        size = len(self._recent)
        if problem is None or size < max(self.config.min_requests, 1):
            return
        share = self._counts[label] / size
        if share < self.config.warn_fraction:
            return
        last = self._last_warned.get(label)
        if last is not None and now - last < self.config.warn_interval_s:
            return

        self._last_warned[label] = now
        self.warnings += 1
        name, advice = problem
        logger.warning("%.0f%% of the last %d requests failed with %s: %s", share * 100, size, name, advice)

    def _log_window(self, now: float) -> None:
        elapsed = now - self._last_logged
        rate = (self.total - self._total_at_last_log) / elapsed if elapsed > 0 else 0.0
        self._last_logged = now
        self._total_at_last_log = self.total
        logger.info(
            "last %d requests: %s (%.1f requests/s, %d in total)",
            len(self._recent),
            ", ".join(f"{label} {count}" for label, count in self._counts.most_common()),
            rate,
            self.total,
        )
