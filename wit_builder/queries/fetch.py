"""Fetch Wikipedia articles live through the wikipedia-api package, for `wit queries fetch`.

``WikipediaFetcher`` takes article titles and/or a category with a depth and returns a
``FetchReport``: the plain text and article links of every article found, the titles
and categories that do not exist, and the per-page errors. It

- sends a User-Agent "wit-builder/VERSION (CONTACT)" and rejects an empty contact, as
  the Wikimedia User-Agent policy requires;
- spaces every HTTP request, retries included, at least 1/rate seconds apart;
- stores each result in an on-disk cache keyed by API URL, language, title and kind
  of request, so a rerun with the same inputs sends no request;
- accepts an API URL other than Wikipedia's only when it passes the address guard
  of ``wit_builder.net.guard``.

Titles follow MediaWiki's rule: the server upper-cases the first letter ("paris" is
"Paris") and keeps the case of the rest ("PARIS" is another title). Redirects are
followed by the API (``redirects=1``, which wikipediaapi always sends), and each
result records the title it resolved to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import wikipediaapi

from wit_builder import __version__
from wit_builder.net.guard import BlockedAddressError, InvalidURLError, check_url, is_blocked_address
from wit_builder.queries.dump import normalize_title

logger = logging.getLogger(__name__)

DEFAULT_RATE = 1.0
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_WAIT_S = 1.0
CATEGORY_PREFIX = "Category:"

#: Kinds of cached request: an article's text and links, or a category's member list.
KIND_ARTICLE = "article"
KIND_CATEGORY = "categorymembers"

STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_NOT_ARTICLE = "not_article"
STATUS_HTTP_ERROR = "http_error"
STATUS_RATE_LIMITED = "rate_limited"
STATUS_TIMEOUT = "timeout"
STATUS_CONNECTION_ERROR = "connection_error"
STATUS_INVALID_JSON = "invalid_json"
STATUS_INVALID_RESPONSE = "invalid_response"

# Wikipedia language codes: "en", "simple", "zh-min-nan", "be-tarask".
_LANGUAGE_CODE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_CONTACT_URL = re.compile(r"https?://[^\s/?#]+\S*", re.IGNORECASE)
_EMAIL = re.compile(r"(?:mailto:)?[^\s@()]+@[^\s@()]+\.[^\s@()]+", re.IGNORECASE)
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_MAX_CONTACT_CHARS = 200


class FetchSetupError(ValueError):
    """A fetch setting that is missing or invalid, found before any request is sent."""


@dataclass
class FetchConfig:
    """Settings of one fetch. Times are in seconds, ``rate`` in requests per second."""

    #: URL or e-mail address where Wikipedia operators can reach the operator of the fetch.
    contact: str
    language: str = "en"
    #: MediaWiki action API endpoint; None means https://LANGUAGE.wikipedia.org/w/api.php.
    api_url: str | None = None
    rate: float = DEFAULT_RATE
    #: Folder of the on-disk cache; None disables the cache.
    cache_dir: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Retries of a request after HTTP 429, 5xx, a timeout or a connection error.
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Base wait before a retry; it doubles with each attempt, and Retry-After overrides it.
    retry_wait_s: float = DEFAULT_RETRY_WAIT_S
    #: Allow an ``api_url`` on a loopback, private or otherwise non-public address.
    allow_private: bool = False
    #: Stop after this many articles (titles first, then category members); None fetches all.
    max_pages: int | None = None


@dataclass
class PageResult:
    """The outcome of fetching one article title.

    ``title`` is the title that the request resolved to after normalization and
    redirects, empty when the title does not exist or the request failed. ``links``
    are the article (namespace 0) titles that the page links to.
    """

    requested_title: str
    status: str
    title: str = ""
    text: str = ""
    links: list[str] = field(default_factory=list)
    message: str = ""
    http_status: int | None = None
    from_cache: bool = False

    @property
    def redirected(self) -> bool:
        """True when the request resolved through a redirect, not only through title normalization."""
        return bool(self.title) and normalize_title(self.requested_title) != self.title


@dataclass
class CategoryResult:
    """The outcome of listing one category's members.

    ``depth`` is 0 for the requested category and grows by one per subcategory level.
    ``page_exists`` is None when the category has members, because then the existence
    of its description page was not asked.
    """

    title: str
    depth: int
    status: str
    articles: list[str] = field(default_factory=list)
    subcategories: list[str] = field(default_factory=list)
    other_members: int = 0
    page_exists: bool | None = None
    message: str = ""
    http_status: int | None = None
    from_cache: bool = False


@dataclass
class FetchError:
    """A title or category whose request failed, with the status and the error message."""

    title: str
    kind: str
    status: str
    message: str
    http_status: int | None = None


@dataclass
class FetchReport:
    """Everything one fetch found, missed and counted."""

    api_url: str
    language: str
    user_agent: str
    titles_requested: list[str]
    category: str | None
    depth: int
    articles: list[PageResult] = field(default_factory=list)
    resolved: dict[str, str] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    missing_titles: list[str] = field(default_factory=list)
    missing_categories: list[str] = field(default_factory=list)
    errors: list[FetchError] = field(default_factory=list)
    categories: list[CategoryResult] = field(default_factory=list)
    not_fetched: int = 0
    requests: int = 0
    cache_hits: int = 0
    cache_dir: str | None = None
    rate: float = DEFAULT_RATE
    started_at: str = ""
    elapsed_s: float = 0.0

    def as_record(self) -> dict:
        """Return the report as a JSON-ready dict, without the article texts."""
        return {
            "source": "wikipedia-api",
            "wikipedia_api_version": importlib.metadata.version("wikipedia-api"),
            "api_url": self.api_url,
            "language": self.language,
            "user_agent": self.user_agent,
            "titles_requested": self.titles_requested,
            "category": self.category,
            "depth": self.depth,
            "articles": [article.title for article in self.articles],
            "resolved": self.resolved,
            "redirects": self.redirects,
            "missing_titles": self.missing_titles,
            "missing_categories": self.missing_categories,
            "errors": [dataclasses.asdict(error) for error in self.errors],
            "categories": [
                {
                    "title": listing.title,
                    "depth": listing.depth,
                    "status": listing.status,
                    "articles": len(listing.articles),
                    "subcategories": listing.subcategories,
                    "other_members": listing.other_members,
                }
                for listing in self.categories
            ],
            "not_fetched": self.not_fetched,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "cache_dir": self.cache_dir,
            "rate_per_s": self.rate,
            "started_at": self.started_at,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def default_api_url(language: str) -> str:
    """Return the action API endpoint of the Wikipedia in ``language``."""
    return f"https://{language}.wikipedia.org/w/api.php"


def validate_language(language: str) -> str:
    """Return ``language`` lower-cased, or raise FetchSetupError unless it is a Wikipedia language code."""
    code = language.strip().lower()
    if not _LANGUAGE_CODE.fullmatch(code) or len(code) > 20:
        raise FetchSetupError(
            f"invalid language code {language!r}: expected a Wikipedia code such as 'en' or 'zh-min-nan'"
        )
    return code


def build_user_agent(contact: str | None) -> str:
    """Return "wit-builder/VERSION (CONTACT)", or raise FetchSetupError for a missing or invalid contact.

    ``contact`` is an http(s) URL or an e-mail address.
    """
    contact = (contact or "").strip()
    if not contact:
        raise FetchSetupError(
            "missing contact: set --contact to a URL or e-mail address where Wikipedia operators can reach you; "
            "the Wikimedia User-Agent policy requires one"
        )
    if len(contact) > _MAX_CONTACT_CHARS or _CONTROL_CHARACTER.search(contact):
        raise FetchSetupError(
            f"invalid --contact {contact[:80]!r}: use one line of at most {_MAX_CONTACT_CHARS} characters"
        )
    if not (_CONTACT_URL.fullmatch(contact) or _EMAIL.fullmatch(contact)):
        raise FetchSetupError(f"invalid --contact {contact!r}: expected an http(s) URL or an e-mail address")
    return f"wit-builder/{__version__} ({contact})"


def check_api_url(url: str, allow_private: bool) -> str:
    """Return ``url`` if wikipediaapi may send requests to it, else raise FetchSetupError.

    The scheme must be http or https. Unless ``allow_private`` is set, the host must not
    be, or resolve to, a loopback, private, link-local or other non-public address, as
    ``wit_builder.net.guard.is_blocked_address`` defines them. A host name is resolved
    here once.
    """
    try:
        parsed = check_url(url, allow_private=allow_private)
    except (InvalidURLError, BlockedAddressError) as error:
        raise FetchSetupError(f"rejected --api-url {url}: {_guard_message(error)}") from None
    if allow_private:
        return url

    # NOTE: httpx resolves the host again when it connects, so a name whose DNS answer
    # changes after this check (DNS rebinding) is not caught. The aiohttp client of
    # wit_builder.net checks the connected address instead.
    host = parsed.raw_host.strip("[]")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchSetupError(f"rejected --api-url {url}: host {host} could not be resolved ({error})") from None
    for *_rest, address in answers:
        if is_blocked_address(address[0]):
            message = _guard_message(BlockedAddressError(host, address[0]))
            raise FetchSetupError(f"rejected --api-url {url}: {message}") from None
    return url


def _guard_message(error: Exception) -> str:
    # The guard's message names its Python parameter; the command line calls it --allow-private.
    return str(error).replace("set allow_private", "pass --allow-private")


def category_title(name: str) -> str:
    """Return the full title of a category given with or without its "Category:" prefix."""
    name = " ".join(name.replace("_", " ").split())
    prefix, colon, rest = name.partition(":")
    if colon and prefix.strip().lower() == "category":
        name = rest.strip()
    return CATEGORY_PREFIX + normalize_title(name)


class RateLimitedTransport(httpx.BaseTransport):
    """httpx transport that starts requests at least 1/``rate`` seconds apart and counts them.

    wikipediaapi passes every request, retries included, through the ``transport`` of
    its httpx client, so this is where the rate limit holds. Waiting happens under a
    lock, so concurrent callers queue in turn.
    """

    def __init__(self, rate: float, transport: httpx.BaseTransport | None = None):
        if not rate > 0:
            raise FetchSetupError(f"invalid rate {rate}: it must be more than 0 requests per second")
        self.interval_s = 1.0 / rate
        self.requests = 0
        self._transport = transport or httpx.HTTPTransport()
        self._lock = threading.Lock()
        self._next_start = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            wait_s = self._next_start - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            self._next_start = time.monotonic() + self.interval_s
            self.requests += 1
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


class WikipediaClient(wikipediaapi.Wikipedia):
    """``wikipediaapi.Wikipedia`` that sends its requests to ``api_url``.

    wikipediaapi 0.16.0 has no option for the API endpoint: ``SyncHTTPClient._get``
    calls the static method ``_build_url(language)``, which returns
    https://LANGUAGE.wikipedia.org/w/api.php. Overriding that one method changes only
    the endpoint. A custom httpx transport (the library's documented hook) could
    rewrite the URL instead, but then the library's log lines and exceptions would
    name wikipedia.org for requests sent elsewhere.
    """

    def __init__(self, api_url: str, **kwargs):
        self.api_url = api_url
        super().__init__(**kwargs)

    def _build_url(self, language: str) -> str:
        return self.api_url


class PageCache:
    """On-disk cache of fetch results: one JSON file per API URL, language, title and kind.

    Files live at ``folder/LANGUAGE/KIND/SHA256.json``, where the hash covers the API
    URL and the title, so a test server and Wikipedia never share entries. Each file
    repeats its key, and a file whose key differs or that cannot be read counts as
    a miss. Only successful results and missing titles are stored, so failed requests
    are sent again on the next run.
    """

    def __init__(self, folder: Path, api_url: str):
        self.folder = Path(folder)
        self.api_url = api_url

    def path_for(self, language: str, title: str, kind: str) -> Path:
        digest = hashlib.sha256(f"{self.api_url}\n{title}".encode("utf-8")).hexdigest()
        return self.folder / language / kind / f"{digest}.json"

    def get(self, language: str, title: str, kind: str) -> dict | None:
        """Return the stored result for this key, or None when there is none."""
        path = self.path_for(language, title, kind)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable cache file %s: %s", path, error)
            return None
        key = {"api_url": self.api_url, "language": language, "title": title, "kind": kind}
        if not isinstance(entry, dict) or any(entry.get(name) != value for name, value in key.items()):
            return None
        return entry.get("result")

    def put(self, language: str, title: str, kind: str, result: dict) -> None:
        """Store ``result`` for this key, replacing the file atomically."""
        path = self.path_for(language, title, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "api_url": self.api_url,
            "language": language,
            "title": title,
            "kind": kind,
            "stored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "result": result,
        }
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        temporary.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)


def _error_details(error: wikipediaapi.WikipediaException) -> tuple[str, str, int | None]:
    """Return the status, message and HTTP status of an error that wikipediaapi raised."""
    url = getattr(error, "url", "")
    if isinstance(error, wikipediaapi.WikiRateLimitError):
        return STATUS_RATE_LIMITED, f"HTTP 429 (rate limited) from {url}", 429
    if isinstance(error, wikipediaapi.WikiHttpError):
        return STATUS_HTTP_ERROR, f"HTTP {error.status_code} from {url}", error.status_code
    if isinstance(error, wikipediaapi.WikiHttpTimeoutError):
        return STATUS_TIMEOUT, f"request to {url} timed out", None
    if isinstance(error, wikipediaapi.WikiInvalidJsonError):
        return STATUS_INVALID_JSON, f"invalid JSON from {url}", None
    if isinstance(error, wikipediaapi.WikiConnectionError):
        return STATUS_CONNECTION_ERROR, f"connection to {url} failed", None
    return STATUS_INVALID_RESPONSE, f"{type(error).__name__}: {error}", None


# Raised by wikipediaapi when valid JSON lacks the fields it reads ("query", "pages", ...).
_MALFORMED_RESPONSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class WikipediaFetcher:
    """Fetch articles and category members through wikipediaapi with a rate limit and a cache.

    The constructor checks the contact, language, API URL and rate and raises
    FetchSetupError before any request is sent.
    """

    def __init__(self, config: FetchConfig):
        self.config = config
        self.language = validate_language(config.language)
        # wikipediaapi appends its own name and version to the User-Agent it is given.
        self.user_agent = f"{build_user_agent(config.contact)} {wikipediaapi.USER_AGENT}"
        if config.api_url is None:
            self.api_url = default_api_url(self.language)
        else:
            self.api_url = check_api_url(config.api_url, config.allow_private)
        if config.max_pages is not None and config.max_pages < 1:
            raise FetchSetupError(f"invalid max_pages {config.max_pages}: it must be at least 1, or None for all")
        if config.max_retries < 0:
            raise FetchSetupError(f"invalid max_retries {config.max_retries}: it must be 0 or more")
        if not config.timeout_s > 0:
            raise FetchSetupError(f"invalid timeout {config.timeout_s}: it must be more than 0 seconds")

        self.transport = RateLimitedTransport(config.rate)
        self.cache = PageCache(config.cache_dir, self.api_url) if config.cache_dir is not None else None
        self.cache_hits = 0
        self._wiki = WikipediaClient(
            self.api_url,
            user_agent=build_user_agent(config.contact),
            language=self.language,
            extract_format=wikipediaapi.ExtractFormat.WIKI,
            max_retries=config.max_retries,
            retry_wait=config.retry_wait_s,
            timeout=config.timeout_s,
            transport=self.transport,
        )

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self.transport.requests

    def fetch(self, titles: list[str], category: str | None = None, depth: int = 0) -> FetchReport:
        """Fetch ``titles`` and the articles of ``category`` and its subcategories down to ``depth``.

        Depth 0 takes the category's own articles, depth 1 adds those of its
        subcategories, and so on. Each article is fetched once, however many inputs
        lead to it. Missing titles and categories and failed requests are recorded
        in the report; only FetchSetupError is raised.
        """
        if depth < 0:
            raise FetchSetupError(f"invalid depth {depth}: it must be 0 or more")
        started = time.monotonic()
        report = FetchReport(
            api_url=self.api_url,
            language=self.language,
            user_agent=self.user_agent,
            titles_requested=list(titles),
            category=category_title(category) if category else None,
            depth=depth,
            cache_dir=str(self.config.cache_dir) if self.config.cache_dir is not None else None,
            rate=self.config.rate,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        logger.info(
            "fetching %d titles%s from %s at %.2f requests/s as %r",
            len(titles),
            f" and {report.category} to depth {depth}" if report.category else "",
            self.api_url,
            self.config.rate,
            self.user_agent,
        )

        pending = [title.strip() for title in titles if title.strip()]
        if report.category:
            pending.extend(self._walk_category(report.category, depth, report))
        pending = list(dict.fromkeys(pending))
        if self.config.max_pages is not None and len(pending) > self.config.max_pages:
            report.not_fetched = len(pending) - self.config.max_pages
            pending = pending[: self.config.max_pages]
            logger.warning(
                "fetching only the first %d articles: %d not fetched", self.config.max_pages, report.not_fetched
            )

        fetched_titles: set[str] = set()
        for title in pending:
            self._record_article(self.fetch_article(title), report, fetched_titles)

        report.requests = self.requests
        report.cache_hits = self.cache_hits
        report.elapsed_s = time.monotonic() - started
        self._log_summary(report)
        return report

    def fetch_article(self, title: str) -> PageResult:
        """Return the text and article links of ``title``, from the cache when it has them."""
        cached = self._cached(title, KIND_ARTICLE)
        if cached is not None:
            return PageResult(**{**cached, "from_cache": True})
        result = self._request_article(title)
        if result.status in (STATUS_OK, STATUS_MISSING, STATUS_NOT_ARTICLE):
            self._store(title, KIND_ARTICLE, dataclasses.asdict(result))
        return result

    def list_category(self, title: str, depth: int = 0) -> CategoryResult:
        """Return the members of the category ``title`` (with its prefix), from the cache when it has them."""
        cached = self._cached(title, KIND_CATEGORY)
        if cached is not None:
            return CategoryResult(**{**cached, "depth": depth, "from_cache": True})
        result = self._request_category(title, depth)
        if result.status in (STATUS_OK, STATUS_MISSING):
            self._store(title, KIND_CATEGORY, dataclasses.asdict(result))
        return result

    def close(self) -> None:
        """Close the HTTP connections."""
        self.transport.close()

    def __enter__(self) -> WikipediaFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request_article(self, title: str) -> PageResult:
        page = self._wiki.page(title)
        try:
            text = page.text
            # The extracts response contains the page id, so exists() sends no request of its own.
            if not page.exists():
                return PageResult(title, STATUS_MISSING)
            if page.ns != wikipediaapi.Namespace.MAIN:
                message = f"{page.title} is in namespace {page.ns}, not 0"
                return PageResult(title, STATUS_NOT_ARTICLE, title=page.title, message=message)
            linked = page.links
        except wikipediaapi.WikipediaException as error:
            status, message, http_status = _error_details(error)
            return PageResult(title, status, message=message, http_status=http_status)
        except _MALFORMED_RESPONSE_ERRORS as error:
            return PageResult(title, STATUS_INVALID_RESPONSE, message=f"unexpected API response: {error!r}")

        links = [link for link, target in linked.items() if target.ns == wikipediaapi.Namespace.MAIN]
        return PageResult(title, STATUS_OK, title=page.title, text=text, links=links)

    def _request_category(self, title: str, depth: int) -> CategoryResult:
        page = self._wiki.page(title, ns=wikipediaapi.Namespace.CATEGORY)
        try:
            members = page.categorymembers
            # MediaWiki lists no members, and raises no error, for a category that does not
            # exist. Only the existence of the category page distinguishes the two.
            page_exists = None if members else page.exists()
        except wikipediaapi.WikipediaException as error:
            status, message, http_status = _error_details(error)
            return CategoryResult(title, depth, status, message=message, http_status=http_status)
        except _MALFORMED_RESPONSE_ERRORS as error:
            return CategoryResult(title, depth, STATUS_INVALID_RESPONSE, message=f"unexpected API response: {error!r}")

        if not members and not page_exists:
            return CategoryResult(title, depth, STATUS_MISSING, page_exists=False)
        result = CategoryResult(title, depth, STATUS_OK, page_exists=page_exists)
        for member_title, member in members.items():
            if member.ns == wikipediaapi.Namespace.MAIN:
                result.articles.append(member_title)
            elif member.ns == wikipediaapi.Namespace.CATEGORY:
                result.subcategories.append(member_title)
            else:
                result.other_members += 1
        return result

    def _walk_category(self, root: str, depth: int, report: FetchReport) -> list[str]:
        """List ``root`` and its subcategories breadth first and return their article titles in order."""
        articles: list[str] = []
        seen = {root}
        queue = deque([(root, 0)])
        while queue:
            title, level = queue.popleft()
            listing = self.list_category(title, level)
            report.categories.append(listing)
            if listing.status == STATUS_MISSING:
                report.missing_categories.append(title)
                continue
            if listing.status != STATUS_OK:
                error = FetchError(title, KIND_CATEGORY, listing.status, listing.message, listing.http_status)
                self._record_error(report, error)
                continue
            logger.debug(
                "%s (depth %d): %d articles, %d subcategories",
                title,
                level,
                len(listing.articles),
                len(listing.subcategories),
            )
            articles.extend(listing.articles)
            if level < depth:
                for subcategory in listing.subcategories:
                    if subcategory not in seen:
                        seen.add(subcategory)
                        queue.append((subcategory, level + 1))
        return articles

    def _record_article(self, result: PageResult, report: FetchReport, fetched_titles: set[str]) -> None:
        if result.status == STATUS_MISSING:
            report.missing_titles.append(result.requested_title)
            return
        if result.status != STATUS_OK:
            error = FetchError(result.requested_title, KIND_ARTICLE, result.status, result.message, result.http_status)
            self._record_error(report, error)
            return
        report.resolved[result.requested_title] = result.title
        if result.redirected:
            report.redirects[result.requested_title] = result.title
        if result.title not in fetched_titles:
            fetched_titles.add(result.title)
            report.articles.append(result)

    @staticmethod
    def _record_error(report: FetchReport, error: FetchError) -> None:
        report.errors.append(error)
        logger.warning("fetching %s %r failed: %s (%s)", error.kind, error.title, error.message, error.status)

    def _cached(self, title: str, kind: str) -> dict | None:
        if self.cache is None:
            return None
        result = self.cache.get(self.language, title, kind)
        if result is not None:
            self.cache_hits += 1
        return result

    def _store(self, title: str, kind: str, result: dict) -> None:
        if self.cache is not None:
            result.pop("from_cache", None)
            self.cache.put(self.language, title, kind, result)

    @staticmethod
    def _log_summary(report: FetchReport) -> None:
        if report.missing_titles:
            logger.warning(
                "%d missing titles: %s", len(report.missing_titles), ", ".join(map(repr, report.missing_titles[:20]))
            )
        if report.missing_categories:
            logger.warning(
                "%d missing categories: %s",
                len(report.missing_categories),
                ", ".join(map(repr, report.missing_categories[:20])),
            )
        logger.info(
            "fetched %d articles (%d redirects followed), %d missing titles, %d missing categories, %d errors; "
            "%d requests, %d cache hits in %.1f s",
            len(report.articles),
            len(report.redirects),
            len(report.missing_titles),
            len(report.missing_categories),
            len(report.errors),
            report.requests,
            report.cache_hits,
            report.elapsed_s,
        )
