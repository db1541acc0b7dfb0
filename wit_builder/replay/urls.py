"""URL normalization shared by the replay index and the replay server.

Both sides pass URLs through yarl, which the fetch client also uses to build its request
lines, so an archived ``%2C`` and a requested ``,`` give the same key.
"""

from __future__ import annotations

from yarl import URL

SCHEMES = ("http", "https")


def normalize_url(url: str) -> str:
    """Return the lookup key of an http(s) URL.

    The key has a lowercase scheme and host, no user information, no default port
    (80 for http, 443 for https), no fragment, "/" for an empty path, and percent-escapes
    requoted by yarl. Raises ValueError for an unparsable URL, another scheme or a URL
    without a host.
    """
    try:
        parsed = URL(url.strip())
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid URL {url[:200]!r}: {error}") from None
    if parsed.scheme.lower() not in SCHEMES:
        raise ValueError(f"invalid URL {url[:200]!r}: scheme is not http or https")
    if not parsed.raw_host:
        raise ValueError(f"invalid URL {url[:200]!r}: no host")

    # origin() lowercases scheme and host, drops user information and the default port.
    key = str(parsed.origin()) + (parsed.raw_path or "/")
    if parsed.raw_query_string:
        key += "?" + parsed.raw_query_string
    return key


def swap_scheme(key: str) -> str:
    """Return the normalized key of the same URL with http replaced by https, or the reverse."""
    scheme, rest = key.split(":", 1)
    return normalize_url(("https" if scheme == "http" else "http") + ":" + rest)
