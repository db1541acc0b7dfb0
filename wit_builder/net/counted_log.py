"""Log repeated events by count so that a million failed downloads do not flood the log."""

from __future__ import annotations

import collections
import logging
import threading


class CountedLog:
    """Count events per kind and log the 1st, 10th, 100th, ... occurrence of each kind.

    Each logged line carries the running count and the latest event's message, so the
    log grows with the logarithm of the number of events. ``counts`` contains every count.
    """

    def __init__(self, logger: logging.Logger, level: int = logging.INFO, name: str = "event"):
        self.logger = logger
        self.level = level
        self.name = name
        self.counts: collections.Counter[str] = collections.Counter()
        self._next_logged: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, kind: str, message: str, *args: object) -> None:
        """Count one event of ``kind`` and log it when its count reaches the next power of ten."""
        with self._lock:
            self.counts[kind] += 1
            count = self.counts[kind]
            threshold = self._next_logged.get(kind, 1)
            if count < threshold:
                return
            self._next_logged[kind] = threshold * 10

        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "%s %s: %d so far, latest: " + message, self.name, kind, count, *args)
