"""Retry policy of the fetch stage, within a run and in a later run with ``--retry-failed``.

Within a run, the downloader retries timeouts, connection errors, truncated bodies,
429 and 5xx, the same failures that ``http_get`` retries. A later run also retries
DNS errors and robots_unreachable, which often pass within hours, and URLs of hosts
that were stopped before they were requested. A 4xx other than 429, a protocol error,
a non-image, a robots.txt or X-Robots-Tag opt-out and the other content failures
would give the same result again, so they are never retried.
"""

from __future__ import annotations

import random

from wit_builder.net.client import HttpConfig
from wit_builder.records import FetchStatus

#: HTTP statuses by which a server requests that clients slow down.
THROTTLING_HTTP_STATUSES = frozenset({429, 503})

_TRANSIENT_STATUSES = frozenset({FetchStatus.TIMEOUT.value, FetchStatus.CONNECTION_ERROR.value, FetchStatus.TRUNCATED.value})
_LATER_STATUSES = _TRANSIENT_STATUSES | {FetchStatus.DNS_ERROR.value, FetchStatus.ROBOTS_UNREACHABLE.value}


def _value(status: FetchStatus | str) -> str:
    return status.value if isinstance(status, FetchStatus) else status


def is_transient(status: FetchStatus | str, http_status: int | None) -> bool:
    """Return whether a failed request attempt is worth retrying within the run.

    An http_error without an HTTP status is a request that was never sent because its
    host was stopped, and counts as transient.
    """
    value = _value(status)
    if value in _TRANSIENT_STATUSES:
        return True
    if value == FetchStatus.HTTP_ERROR.value:
        return http_status is None or http_status == 429 or http_status >= 500
    return False


def is_retryable(status: FetchStatus | str, http_status: int | None) -> bool:
    """Return whether ``--retry-failed`` fetches a sample with this final status again."""
    return _value(status) in _LATER_STATUSES or is_transient(status, http_status)


def backoff_delay_s(attempt: int, config: HttpConfig) -> float:
    """Return the wait before retry number ``attempt`` (1 for the first): exponential, with up to 25 % jitter."""
    wait_s = config.backoff_s * 2 ** (attempt - 1) * random.uniform(1.0, 1.25)
    return min(wait_s, config.max_backoff_s)
