"""Resolve and normalize the http(s) URLs of harvested images and links.

Two spellings of one URL should give one candidate id, so every URL is brought to one form.
The scheme and host are lowercased, and the host is IDNA-encoded (punycode). Default ports, dot
segments and the fragment are removed. The path and query are percent-encoded the way a browser
sends them. Spaces, control characters, non-ASCII characters (as UTF-8) and the characters that
the WHATWG URL standard escapes in paths and queries are encoded. The hex digits of existing
escapes are uppercased. Existing escapes are never encoded a second time, and they are not
decoded either, because servers may treat ``%2F`` and ``/`` differently.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin, urlsplit

import idna

DEFAULT_PORTS = {"http": 80, "https": 443}

# The WHATWG URL standard's path and query percent-encode sets, besides controls, space and non-ASCII.
_PATH_ESCAPED = re.compile(r"[^\x21-\x7e]|[\"<>`{}]")
_QUERY_ESCAPED = re.compile(r"[^\x21-\x7e]|[\"<>']")
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_REMOVED_FROM_REFERENCES = str.maketrans("", "", "\t\n\r")
# A scheme as urlsplit reads it: a letter, then letters, digits, "+", "-" or ".", then a colon.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# URLs that are already in normal form: lowercase ASCII host, no port, no dot segment, only
# characters that need no escaping, and uppercase escapes. Most image URLs are, and skip the parsing.
_NORMAL_URL = re.compile(
    r"https?://[a-z0-9\-]+(?:\.[a-z0-9\-]+)*"
    r"/(?:[!$&'()*+,\-./0-9:;=@A-Z\[\]^_a-z|~]|%[0-9A-F]{2})*"
    r"(?:\?(?:[!$&()*+,\-./0-9:;=?@A-Z\[\\\]^_`a-z{|}~]|%[0-9A-F]{2})*)?"
)
# Code points that cannot appear in a host, from the WHATWG URL standard's forbidden host code points.
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


def _percent_encode(match: re.Match) -> str:
    return quote(match.group(), safe="", errors="replace")


def _uppercase_escape(match: re.Match) -> str:
    return match.group().upper()


def normalize_component(text: str, escaped: re.Pattern) -> str:
    """Percent-encode the characters of a path or query that ``escaped`` matches and uppercase existing escapes."""
    if "%" in text:
        text = _ESCAPE.sub(_uppercase_escape, text)
    return escaped.sub(_percent_encode, text)


def remove_dot_segments(path: str) -> str:
    """Remove ``.`` and ``..`` segments from an absolute path as RFC 3986 section 5.2.4 does."""
    if "." not in path:
        return path
    segments = path.split("/")
    if not any(segment in (".", "..") for segment in segments):
        return path

    output: list[str] = []
    for segment in segments[1:]:
        if segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
            continue
        output.append(segment)
    # A path ending in "." or ".." names a folder, so it keeps its trailing slash.
    if segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


def normalize_host(host: str) -> str | None:
    """Return the host lowercased and IDNA-encoded, or None when it is not a valid host name or IP literal."""
    if host.startswith("["):
        return host.lower() if host.endswith("]") else None
    if "%" in host:
        host = unquote(host)
    if host.isascii():
        host = host.lower()
    else:
        host = _idna_encode(host)
        if host is None:
            return None
    if not host or _FORBIDDEN_HOST.search(host):
        return None
    return host


def _idna_encode(host: str) -> str | None:
    """Encode a non-ASCII host with UTS 46 and IDNA 2008, label by label when the whole host fails."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        pass

    # Hosts in the wild mix non-ASCII labels with ASCII labels that IDNA 2008 rejects, such as
    # labels with underscores. Browsers accept them, so only the non-ASCII labels are encoded.
    labels = []
    for label in host.replace("\u3002", ".").split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.encode(label, uts46=True).decode("ascii"))
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    return ".".join(labels)


@functools.lru_cache(maxsize=65536)
def normalize_url(url: str) -> str | None:
    """Return the normalized form of an absolute http(s) URL, or None when it is not a valid one."""
    if _NORMAL_URL.fullmatch(url) and "/." not in url and "#" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme
    if scheme not in DEFAULT_PORTS:
        return None

    userinfo, _at, host_and_port = parts.netloc.rpartition("@")
    host = _host_part(host_and_port)
    host = normalize_host(host) if host else None
    if host is None:
        return None

    netloc = host
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"

    path = remove_dot_segments(normalize_component(parts.path, _PATH_ESCAPED) or "/")
    url = f"{scheme}://{netloc}{path}"
    if parts.query:
        url = f"{url}?{normalize_component(parts.query, _QUERY_ESCAPED)}"
    return url


def _host_part(host_and_port: str) -> str:
    if host_and_port.startswith("["):
        end = host_and_port.find("]")
        return host_and_port[: end + 1] if end != -1 else host_and_port
    return host_and_port.rsplit(":", 1)[0] if ":" in host_and_port else host_and_port


@dataclass(frozen=True)
class BaseParts:
    """The prefixes of an http(s) base URL that references are appended to.

    ``scheme`` is the base's scheme, ``origin`` is ``scheme://authority``, ``directory`` is the
    base up to the last slash of its path, and ``document`` is the base without its query.
    ``directory`` and ``document`` are None for a base that is not an http(s) URL with a lowercase
    scheme, whose relative references go through urljoin.
    """

    scheme: str
    origin: str
    directory: str | None
    document: str | None


@functools.lru_cache(maxsize=4096)
def base_parts(base_url: str) -> BaseParts:
    """Split a base URL into the prefixes of ``BaseParts``; cached, because every link of a page has the same base."""
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if not base_url.startswith(("http://", "https://")) or parts.scheme not in DEFAULT_PORTS:
        return BaseParts(parts.scheme, origin, None, None)
    # A base without a path ("http://host") resolves "a.jpg" to "http://host/a.jpg" (RFC 3986 section 5.2.3).
    path = parts.path or "/"
    return BaseParts(parts.scheme, origin, origin + path[: path.rfind("/") + 1], origin + parts.path)


def _join_relative(reference: str, base: BaseParts, base_url: str) -> str:
    """Join a relative reference without a scheme to the base as RFC 3986 does, leaving dot segments to normalize_url."""
    # urljoin reads a bare "?" as no query at all and keeps the base's query, and that result is kept here.
    if base.directory is None or base.document is None or reference == "?":
        return urljoin(base_url, reference)
    if reference.startswith("?"):
        return base.document + reference
    if reference.startswith("#"):
        return base_url.partition("#")[0] + reference
    return base.directory + reference


def resolve_url(reference: str, base_url: str) -> str | None:
    """Join a reference to the base URL and normalize it; None unless the result is a valid http(s) URL."""
    # The URL standard strips leading and trailing spaces and removes every tab and newline.
    reference = reference.strip()
    if "\t" in reference or "\n" in reference or "\r" in reference:
        reference = reference.translate(_REMOVED_FROM_REFERENCES)
    if "\\" in reference:
        # In http(s) URLs browsers read a backslash before the query as a slash.
        before_query, mark, query = reference.partition("?")
        reference = before_query.replace("\\", "/") + mark + query

    # Absolute, scheme-relative, root-relative and relative references without a scheme are the
    # common cases and skip urljoin. normalize_url removes the dot segments of the joined URL.
    try:
        if reference.startswith(("http://", "https://")):
            absolute = reference
        elif reference.startswith("//"):
            absolute = f"{base_parts(base_url).scheme}:{reference}"
        elif reference.startswith("/"):
            absolute = base_parts(base_url).origin + reference
        elif reference and _SCHEME.match(reference) is None:
            absolute = _join_relative(reference, base_parts(base_url), base_url)
        else:
            absolute = urljoin(base_url, reference)
    except ValueError:
        return None
    return normalize_url(absolute)
