"""Shared HTTP client with an address guard, used by the crawler and the image downloader."""

from wit_builder.net.client import (
    HostLimiter,
    HttpConfig,
    HttpResult,
    default_user_agent,
    http_get,
    make_session,
    parse_retry_after,
)
from wit_builder.net.guard import (
    BlockedAddressError,
    GuardedResolver,
    GuardedSocketFactory,
    InvalidURLError,
    check_url,
    is_allowed_address,
    is_blocked_address,
)

__all__ = [
    "BlockedAddressError",
    "GuardedResolver",
    "GuardedSocketFactory",
    "HostLimiter",
    "HttpConfig",
    "HttpResult",
    "InvalidURLError",
    "check_url",
    "default_user_agent",
    "http_get",
    "is_allowed_address",
    "is_blocked_address",
    "make_session",
    "parse_retry_after",
]
