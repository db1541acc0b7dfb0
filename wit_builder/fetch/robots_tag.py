"""X-Robots-Tag checks: honour site opt-outs sent with the image response.

Like img2dataset, the fetch stage drops images whose X-Robots-Tag header contains
noai, noimageai, noindex or noimageindex for all agents or for this crawler.
"""

from __future__ import annotations

DISALLOWING_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})

# Directives that carry a value after a colon, so "name: value" is not an agent prefix.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})


def robots_tag_disallows(
    header: str | None,
    agent_token: str = "wit-builder",
    disallowing: frozenset[str] = DISALLOWING_DIRECTIVES,
) -> str | None:
    """Return the directive of an X-Robots-Tag value that forbids use, or None.

    ``header`` may combine several header lines with commas. A directive list may
    start with an agent prefix ("googlebot: noindex, nofollow"), and the directives
    after it apply only to that agent until the next prefix.
    """
    if not header:
        return None

    agent = None  # None: the directives apply to every agent
    for item in header.split(","):
        item = item.strip().lower()
        if not item:
            continue
        prefix, colon, rest = item.partition(":")
        prefix = prefix.strip()
        # A product token has no spaces, so the "03 dec 2025 10" that a date with a
        # comma leaves after splitting is not an agent prefix.
        if colon and prefix and prefix not in _VALUED_DIRECTIVES and not any(char.isspace() for char in prefix):
            agent = prefix
            item = rest.strip()
        if agent is not None and agent != agent_token.lower():
            continue
        if item in disallowing:
            return item
    return None
