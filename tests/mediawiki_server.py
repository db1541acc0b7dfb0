"""A MediaWiki-like action API on 127.0.0.1 for tests of `wit queries fetch`.

The server handles the requests that wikipediaapi 0.16.0 sends to ``/w/api.php``:
``action=query`` with ``prop=extracts``, ``info``, ``links`` (``plcontinue`` paging) or
``categories``, and ``list=categorymembers`` (``cmcontinue`` paging). Responses use
``formatversion=1``, the default that the library relies on: ``pages`` is an object
keyed by page id, a missing page has the key ``"-1"`` and a ``missing`` flag, and
``normalized`` and ``redirects`` lists come before ``pages``.

Titles are normalized as on Wikipedia: underscores become spaces and the first letter
of the title (after a namespace prefix) becomes upper case, so "paris" names the page
"Paris" while "PARIS" is another title. ``build_sample_wiki`` fills the wiki with real
articles from the bundled enwiki dump fragment. Its categories, one redirect and the
namespace-4 link on every article are assigned here for the tests.

Every request is logged with its path, query, headers and ``time.monotonic()``
timestamp. ``MiniWiki.faults`` makes requests for chosen titles return HTTP 500,
invalid JSON or a slow response.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from wit_builder.queries.dump import DumpReader
from wit_builder.queries.markup import MarkupStripper

API_PATH = "/w/api.php"
SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

ARTICLE_NAMESPACE = 0
PROJECT_NAMESPACE = 4
TEMPLATE_NAMESPACE = 10
CATEGORY_NAMESPACE = 14
NAMESPACE_NAMES = {
    "talk": (1, "Talk"),
    "wikipedia": (PROJECT_NAMESPACE, "Wikipedia"),
    "template": (TEMPLATE_NAMESPACE, "Template"),
    "category": (CATEGORY_NAMESPACE, "Category"),
}

# Characters that MediaWiki rejects in titles (a subset of its legal-character rule).
_ILLEGAL_TITLE = re.compile(r"[#<>\[\]|{}]")
_HEADING_LINE = re.compile(r"^(={2,6})\s*(.+?)\s*\1\s*$", re.MULTILINE)

FAULT_HTTP_500 = "http_500"
FAULT_INVALID_JSON = "invalid_json"
FAULT_SLOW = "slow"

# Sample articles and the categories assigned to them for the tests.
SAMPLE_ARTICLES = {
    "Aardvark": ["Category:Mammals"],
    "Aardwolf": ["Category:Hyenas"],
    "Actrius": ["Category:Films"],
    "Allan Dwan": ["Category:Film directors"],
    "Adventure": ["Category:Culture"],
    "Alain Connes": ["Category:Mathematicians"],
    "Animalia (book)": [],
    "Aa River": [],
}
# Category pages with their own parent categories. "Category:Film directors" lists
# "Category:Culture" again, so a walk must stop at categories it has seen.
SAMPLE_CATEGORIES = {
    "Category:Culture": [],
    "Category:Films": ["Category:Culture"],
    "Category:Film directors": ["Category:Films"],
    "Category:Mammals": [],
    "Category:Hyenas": ["Category:Mammals"],
    "Category:Mathematicians": [],
    "Category:Empty": [],
}
# Members that are neither articles nor categories, which a fetch of pages must skip.
SAMPLE_OTHER_MEMBERS = {
    "Template:Mammals": (TEMPLATE_NAMESPACE, ["Category:Mammals"]),
}
SAMPLE_REDIRECTS = {"Orycteropus afer": "Aardvark"}
# Every sample article links to this project page, as a maintenance template would.
PROJECT_LINK = "Wikipedia:Verifiability"


def normalize_title(title: str) -> tuple[int, str]:
    """Return the namespace and the normalized form of ``title``, as MediaWiki stores it."""
    title = " ".join(title.replace("_", " ").split())
    namespace = ARTICLE_NAMESPACE
    prefix, colon, rest = title.partition(":")
    known = NAMESPACE_NAMES.get(prefix.strip().lower()) if colon else None
    if known is not None:
        namespace, canonical = known
        rest = rest.strip()
        return namespace, f"{canonical}:{rest[:1].upper()}{rest[1:]}"
    return namespace, title[:1].upper() + title[1:]


def is_valid_title(title: str) -> bool:
    """Return True unless ``title`` is empty, has an illegal character or no name after its prefix."""
    if not title or _ILLEGAL_TITLE.search(title):
        return False
    return not title.endswith(":")


@dataclass
class WikiPage:
    """One page of the in-memory wiki. ``redirect_to`` is set on redirect pages."""

    page_id: int
    namespace: int
    title: str
    text: str = ""
    links: list[tuple[int, str]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    redirect_to: str | None = None


@dataclass
class RequestRecord:
    """One request as the server received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    timestamp: float


@dataclass
class MiniWiki:
    """Pages of the test wiki plus the server's behaviour settings.

    ``faults`` maps a normalized title to ``FAULT_HTTP_500``, ``FAULT_INVALID_JSON`` or
    ``FAULT_SLOW``; a request naming that title misbehaves that way. ``batch_limit`` caps
    the number of links or category members per response, so small values force the
    client to follow continuation.
    """

    pages: dict[str, WikiPage] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    slow_s: float = 1.0
    batch_limit: int = 500
    requests: list[RequestRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_id: int = 1

    def add_page(self, title: str, **fields) -> WikiPage:
        """Add a page under its normalized title and return it."""
        namespace, title = normalize_title(title)
        page = WikiPage(page_id=self._next_id, namespace=namespace, title=title, **fields)
        self._next_id += 1
        self.pages[title] = page
        return page

    def members_of(self, category: str) -> list[WikiPage]:
        """Return the pages in ``category``, sorted by title as a category listing is."""
        members = [page for page in self.pages.values() if category in page.categories]
        return sorted(members, key=lambda page: page.title)

    def log_request(self, request: web.Request) -> None:
        record = RequestRecord(
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            timestamp=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)

    def request_log(self) -> list[RequestRecord]:
        """Return a copy of the request log."""
        with self._lock:
            return list(self.requests)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()


def split_sections(wikitext: str, stripper: MarkupStripper, links: list[str]) -> str:
    """Convert wikitext to the plain text that TextExtracts returns with ``exsectionformat=wiki``.

    The lead and each section body are stripped separately, and each heading becomes
    "\\n\\n== Heading ==\\n", the form that wikipediaapi splits into sections.
    """
    parts: list[str] = []
    position = 0
    for match in _HEADING_LINE.finditer(wikitext):
        parts.append(stripper.strip(wikitext[position : match.start()], links))
        marks = match.group(1)
        heading = stripper.strip(match.group(2))
        parts.append(f"\n\n{marks} {heading} {marks}\n")
        position = match.end()
    parts.append(stripper.strip(wikitext[position:], links))
    return "".join(parts).strip()


def build_sample_wiki(samples_dir: Path) -> MiniWiki:
    """Build a wiki from real articles of the bundled dump fragment, with assigned categories."""
    reader = DumpReader(samples_dir / SAMPLE_DUMP)
    wikitexts = {page.title: page.text for page in reader if page.title in SAMPLE_ARTICLES}
    absent = sorted(set(SAMPLE_ARTICLES) - set(wikitexts))
    if absent:
        raise ValueError(f"sample articles not found in {SAMPLE_DUMP}: {absent}")
    stripper = MarkupStripper(reader.namespaces)

    wiki = MiniWiki()
    for title, categories in SAMPLE_ARTICLES.items():
        targets: list[str] = []
        text = split_sections(wikitexts[title], stripper, targets)
        links = {normalize_title(target) for target in targets if is_valid_title(target)}
        links.add(normalize_title(PROJECT_LINK))
        wiki.add_page(title, text=text, links=sorted(links), categories=list(categories))
    for title, parents in SAMPLE_CATEGORIES.items():
        wiki.add_page(title, text=f"Pages about {title.partition(':')[2].lower()}.", categories=list(parents))
    for title, (_namespace, categories) in SAMPLE_OTHER_MEMBERS.items():
        wiki.add_page(title, text="", categories=list(categories))
    for title, target in SAMPLE_REDIRECTS.items():
        wiki.add_page(title, text=f"#REDIRECT [[{target}]]", redirect_to=target)
    return wiki


def api_error(code: str, info: str) -> web.Response:
    """Return an API error the way MediaWiki does: HTTP 200 with an ``error`` object."""
    return web.json_response({"error": {"code": code, "info": info}, "servedby": "mw-test"})


class ApiHandler:
    """aiohttp handler of ``/w/api.php`` over one ``MiniWiki``."""

    def __init__(self, wiki: MiniWiki):
        self.wiki = wiki

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.wiki.log_request(request)
        query = request.query
        if query.get("action") != "query":
            return api_error("badvalue", f'Unrecognized value for parameter "action": {query.get("action")}.')
        if query.get("format") != "json":
            return api_error("badvalue", "This server answers format=json only.")
        if query.get("formatversion", "1") != "1":
            return api_error("badvalue", "This server answers formatversion=1 only.")

        named = query.get("titles") or query.get("cmtitle") or ""
        fault = self.wiki.faults.get(normalize_title(named)[1])
        if fault == FAULT_HTTP_500:
            return web.Response(status=500, text="Internal Server Error")
        if fault == FAULT_INVALID_JSON:
            return web.Response(text='{"batchcomplete":"","query":{"pages":{"12":', content_type="application/json")
        if fault == FAULT_SLOW:
            await asyncio.sleep(self.wiki.slow_s)

        if query.get("list") == "categorymembers":
            return self.category_members(query)
        if "titles" in query:
            return self.page_props(query)
        return api_error("missingparam", "The titles or list parameter must be set.")

    def page_props(self, query) -> web.Response:
        titles = query["titles"].split("|")
        if len(titles) != 1:
            # wikipediaapi requests one title at a time, and a batch would need ids -1, -2, ...
            return api_error("toomanyvalues", "This server accepts one title per request.")
        props = set(query.get("prop", "").split("|")) - {""}
        result: dict = {}

        requested = titles[0]
        if not is_valid_title(requested.strip()):
            pages = {"-1": {"title": requested, "invalidreason": "The requested page title is invalid.", "invalid": ""}}
            return web.json_response({"batchcomplete": "", "query": {**result, "pages": pages}})

        namespace, title = normalize_title(requested)
        if title != requested:
            result["normalized"] = [{"from": requested, "to": title}]
        page = self.wiki.pages.get(title)
        if page is not None and page.redirect_to is not None and query.get("redirects"):
            target_namespace, target = normalize_title(page.redirect_to)
            result["redirects"] = [{"from": title, "to": target}]
            namespace, title = target_namespace, target
            page = self.wiki.pages.get(title)

        if page is None:
            entry = {"ns": namespace, "title": title, "missing": ""}
            if "info" in props:
                entry.update(contentmodel="wikitext", pagelanguage="en", pagelanguagedir="ltr")
            result["pages"] = {"-1": entry}
            return web.json_response({"batchcomplete": "", "query": result})

        entry = {"pageid": page.page_id, "ns": page.namespace, "title": page.title}
        response: dict = {}
        if "info" in props:
            entry.update(self.info_fields(page))
        if "extracts" in props:
            entry["extract"] = page.text
        if "categories" in props:
            entry["categories"] = [{"ns": CATEGORY_NAMESPACE, "title": name} for name in sorted(page.categories)]
        if "links" in props:
            links, next_offset = self.batch(page.links, query.get("pllimit"), query.get("plcontinue"))
            if links:
                entry["links"] = [{"ns": ns, "title": link} for ns, link in links]
            if next_offset is not None:
                response["continue"] = {"plcontinue": f"{page.page_id}|{next_offset}", "continue": "||"}
        result["pages"] = {str(page.page_id): entry}
        if "continue" not in response:
            response["batchcomplete"] = ""
        response["query"] = result
        return web.json_response(response)

    def info_fields(self, page: WikiPage) -> dict:
        url = f"https://en.wikipedia.org/wiki/{page.title.replace(' ', '_')}"
        fields = {
            "contentmodel": "wikitext",
            "pagelanguage": "en",
            "pagelanguagehtmlcode": "en",
            "pagelanguagedir": "ltr",
            "touched": "2024-01-01T00:00:00Z",
            "lastrevid": 1000 + page.page_id,
            "length": len(page.text.encode("utf-8")),
            "protection": [],
            "restrictiontypes": ["edit", "move"],
            "fullurl": url,
            "editurl": f"{url}?action=edit",
            "canonicalurl": url,
            "readable": "",
            "displaytitle": page.title,
        }
        if page.redirect_to is not None:
            fields["redirect"] = ""
        return fields

    def category_members(self, query) -> web.Response:
        cmtitle = query.get("cmtitle", "")
        if not is_valid_title(cmtitle.strip()):
            return api_error("invalidtitle", f"Bad title \"{cmtitle}\".")
        namespace, title = normalize_title(cmtitle)
        if namespace != CATEGORY_NAMESPACE:
            return api_error("invalidcategory", "The category name you entered is not valid.")

        # Like MediaWiki, a category without a page or members lists nothing and is no error.
        members = [(page.namespace, page.title, page.page_id) for page in self.wiki.members_of(title)]
        batch, next_offset = self.batch(members, query.get("cmlimit"), query.get("cmcontinue"))
        response: dict = {}
        if next_offset is not None:
            response["continue"] = {"cmcontinue": f"page|{next_offset}", "continue": "-||"}
        else:
            response["batchcomplete"] = ""
        response["query"] = {
            "categorymembers": [{"pageid": page_id, "ns": ns, "title": member} for ns, member, page_id in batch]
        }
        return web.json_response(response)

    def batch(self, items: list, limit: str | None, token: str | None) -> tuple[list, int | None]:
        """Return one response's share of ``items`` and the offset of the next, or None at the end.

        The continuation token is opaque to clients. Here it carries the offset after
        a "|", with the page id first for ``plcontinue`` as MediaWiki's does.
        """
        size = min(int(limit) if limit and limit.isdigit() else 10, 500, self.wiki.batch_limit)
        offset = int(token.rpartition("|")[2]) if token else 0
        end = offset + size
        return items[offset:end], (end if end < len(items) else None)


def make_app(wiki: MiniWiki) -> web.Application:
    """Return the aiohttp application that serves ``wiki`` at ``/w/api.php``."""
    app = web.Application()
    app.router.add_get(API_PATH, ApiHandler(wiki).handle)
    return app
