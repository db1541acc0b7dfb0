"""Turn MediaWiki wikitext into the plain text a reader sees, for counting words.

The stripper works in passes, in roughly the order in which MediaWiki resolves the markup:

1. comments ``<!-- -->`` (an unclosed one runs to the end of the page, as in MediaWiki);
2. tags whose content is not prose, with their content: ``<ref>``, ``<math>``,
   ``<gallery>``, ``<syntaxhighlight>`` and the others in ``DROPPED_CONTENT_TAGS``.
   ``<nowiki>`` content is kept as literal text;
3. templates, parser functions and template parameters ``{{ }}`` / ``{{{ }}}``, matched
   brace run by brace run so nesting works (an unclosed ``{{`` stays literal text);
4. tables ``{| ... |}``, line by line and nested. A table that is never closed
   ends at a blank line followed by prose, so it cannot swallow the rest of the page;
5. bold and italic quote runs, paired line by line as MediaWiki pairs them, so an
   unclosed ``''`` cannot hide the rest of a page and ``''Iliad'''s`` shows "Iliad's";
6. internal links ``[[ ]]``, innermost first so a caption can contain links:
   ``[[target|label]]`` keeps the label, ``[[target]]`` the target,
   ``[[File:...]]`` / ``[[Image:...]]`` only the caption, and category and
   interlanguage links are removed;
7. external links ``[http://x label]`` keep the label, bare URLs are removed;
8. HTML tags are removed and their inner text kept; headings, list markers and behavior
   switches such as ``__NOTOC__`` are removed;
9. HTML entities are decoded and the text is put in Unicode NFC form.

Paragraph and line breaks survive as newlines, so callers can keep n-grams within a line.

This runs on every article of a full dump, so most passes are skipped when the page lacks
the characters they need. The regular expressions start with a literal character where
possible, because Python's ``re`` then skips ahead to that character instead of trying the
pattern at every offset. Speed-ups quoted in comments were measured with CPython 3.11 on
the bundled samples/wikipedia dump.

NOTE: templates are removed, not expanded, so words that only a template prints (for
example ``{{lang|fr|mot}}`` or ``{{convert|3|m}}``) are lost.
"""

from __future__ import annotations

import html
import re
import unicodedata

from wit_builder.queries.dump import (
    CATEGORY_NAMESPACE,
    FILE_NAMESPACE,
    MEDIA_NAMESPACE,
    Namespaces,
    normalize_namespace_name,
)

#: Tags removed together with their content: references, formulas, code, galleries, maps.
DROPPED_CONTENT_TAGS = (
    "ref",
    "references",
    "math",
    "chem",
    "ce",
    "gallery",
    "imagemap",
    "timeline",
    "score",
    "hiero",
    "graph",
    "mapframe",
    "maplink",
    "syntaxhighlight",
    "source",
    "pre",
    "code",
    "templatedata",
    "templatestyles",
    "inputbox",
    "categorytree",
    "includeonly",
    "charinsert",
    "indicator",
)

# HTML and extension tags that MediaWiki renders as markup. Any other "<name>" is shown as
# literal text by MediaWiki, so it stays in the text here too ("an unknown <fox> tag").
_KEPT_CONTENT_TAGS = (
    "a abbr b bdi bdo big blockquote br caption center cite data dd del dfn div dl dt em font "
    "h1 h2 h3 h4 h5 h6 hr i ins kbd li mark nowiki noinclude ol onlyinclude p poem q rb rp rt "
    "rtc ruby s samp section small span strike strong sub sup table tbody td tfoot th thead "
    "time tr tt u ul var wbr"
).split()

# Link prefixes of sister projects. [[wikt:word]] shows the word after the prefix.
_INTERWIKI_PREFIXES = frozenset(
    "wikt wiktionary w wikipedia commons c s wikisource q wikiquote b wikibooks n wikinews "
    "v wikiversity voy wikivoyage species wikispecies d wikidata m meta mw mediawikiwiki "
    "foundation wmf f".split()
)

# Interlanguage links look like [[de:Anarchismus]] or [[zh-min-nan:...]]: a lowercase
# language code and no label. They list the same article in other languages.
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z]{2,8})*\Z")

# Image options of [[File:...]] that are not the caption (MediaWiki's image syntax help).
# NOTE: only the English option words are known. Other wikis also accept localized ones
# (German "mini", "hochkant"), so there a link without a caption shows its last option as text.
_FILE_OPTION_WORDS = frozenset(
    "thumb thumbnail frame framed frameless border right left center centre none upright "
    "baseline middle sub super text-top text-bottom top bottom loop muted".split()
)
_FILE_OPTION_KEYS = frozenset(
    "alt link upright class page lang thumb thumbnail thumbtime start end frame framed "
    "manualthumb border".split()
)
_FILE_SIZE_OPTION = re.compile(r"\A(?:\d+\s*)?(?:x\s*\d+\s*)?px\Z", re.IGNORECASE)
_FILE_UPRIGHT_OPTION = re.compile(r"\Aupright\s*=?\s*[\d.]*\Z", re.IGNORECASE)

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_NOWIKI = re.compile(r"<nowiki\s*>(.*?)</nowiki\s*>", re.IGNORECASE | re.DOTALL)
_NOWIKI_ESCAPES = str.maketrans(
    {"[": "&#91;", "]": "&#93;", "{": "&#123;", "}": "&#125;", "|": "&#124;", "'": "&#39;",
     "<": "&lt;", ">": "&gt;", "=": "&#61;", "_": "&#95;", ":": "&#58;"}
)
# Any opening, closing or self-closing tag of DROPPED_CONTENT_TAGS. Groups: slash, name, attributes.
_DROPPED_TAG = re.compile(r"<(/?)(%s)\b([^<>]*)>" % "|".join(DROPPED_CONTENT_TAGS), re.IGNORECASE)
_DROPPED_CLOSING_TAGS = {
    name: re.compile(r"</%s\s*>" % name, re.IGNORECASE) for name in DROPPED_CONTENT_TAGS
}
# Each round of link replacement scans the whole page, so the rounds are capped. Links in
# the bundled dump nest at most two deep (a link in a file caption).
_MAX_LINK_NESTING = 20
# A link with no other link inside: "[[", then text without "[[" or "]]", then "]]". The
# target cannot start with "[", so "[''[[A]]'']", which is "[[[A]]]" once quote runs are
# gone, stays a link to A in brackets.
_INNERMOST_LINK = re.compile(r"\[\[(?!\[)([^\[\]]*(?:(?:\[(?!\[)|\](?!\]))[^\[\]]*)*)\]\]")
_EXTERNAL_LINK = re.compile(
    r"\[(?:https?:|ftp:|ftps:|mailto:|news:|irc:|ircs:|gopher:|//)[^\s\[\]<>\"]*(?:\s+([^\[\]\n]*))?\]",
    re.IGNORECASE,
)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\[\]{}|\"]+", re.IGNORECASE)
_LINE_BREAK_TAG = re.compile(r"<br\s*/?\s*>|</?(?:p|div|li|tr|dd|dt|h[1-6])\b[^<>]*>", re.IGNORECASE)
_KEPT_TAG = re.compile(r"</?(?:%s)\b[^<>]*>" % "|".join(_KEPT_CONTENT_TAGS), re.IGNORECASE)
# Line-start markup. Each pattern starts with the newline before the line (the text gets one
# in front first) instead of "^" with re.MULTILINE, which is tried at every offset.
_HEADING = re.compile(r"\n[ \t]*(=+)[ \t]*(.*?)[ \t]*\1[ \t]*(?=\n|\Z)")
_LIST_MARKER = re.compile(r"\n[ \t]*[*#:;]+[ \t]*")
_HORIZONTAL_RULE = re.compile(r"\n[ \t]*-{4,}[ \t]*(?=\n|\Z)")
_BEHAVIOR_SWITCH = re.compile(r"__[A-Z]+__")
_QUOTE_RUN = re.compile(r"''+")
# Tab, no-break, typographic and zero-width spaces, each replaced by a plain space.
_OTHER_SPACES = "\t\u00a0" + "".join(map(chr, range(0x2000, 0x200C))) + "\u202f\u205f\u3000"
_SPACE_RUN = re.compile(r"  +")
_BLANK_LINES = re.compile(r"\n\n\n+")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*\Z")

_TABLE_LINE_FIRST_CHARS = frozenset(" \t:{|!")
# A line that may be table syntax: "{|", "|}", "|-", "| cell" or "! header", maybe indented.
_TABLE_SYNTAX_AT_START = re.compile(r"[ \t:]*[{|!]")
_TABLE_SYNTAX_AFTER_NEWLINE = re.compile(r"\n[ \t:]*[{|!]")


class MarkupStripper:
    """Convert wikitext to plain text, using a dump's namespace names to recognize links.

    ``strip`` does not raise on malformed markup: it leaves it as literal text or
    removes it.
    """

    def __init__(self, namespaces: Namespaces | None = None):
        namespaces = namespaces or Namespaces.default()
        self.file_prefixes = frozenset(namespaces.names_of(FILE_NAMESPACE))
        self.media_prefixes = frozenset(namespaces.names_of(MEDIA_NAMESPACE))
        self.category_prefixes = frozenset(namespaces.names_of(CATEGORY_NAMESPACE))
        self.namespace_prefixes = frozenset(namespaces.keys_by_name)

    def strip(self, text: str, link_targets: list[str] | None = None) -> str:
        """Return the plain text of ``text``.

        When ``link_targets`` is a list, the target of every article link is appended to it
        (section anchors removed, first letter as written), for counting links per title.
        """
        if "<" in text:
            text = remove_dropped_tags(text)
        text = remove_templates(text)
        text = remove_tables(text)
        # Quote runs are paired before links are replaced, so runs inside and outside a link
        # never merge: "'[[A|''b'']]" shows "'b". MediaWiki pairs them while links are placeholders.
        text = remove_quote_runs(text)
        text = self.replace_links(text, link_targets)

        if "[" in text:
            text = _EXTERNAL_LINK.sub(_external_link_label, text)
        if "://" in text:
            text = _BARE_URL.sub("", text)
        if "<" in text:
            text = _LINE_BREAK_TAG.sub("\n", text)
            text = _KEPT_TAG.sub("", text)

        text = remove_line_markup(text)
        if "__" in text:
            text = _BEHAVIOR_SWITCH.sub("", text)

        text = html.unescape(text)
        text = unicodedata.normalize("NFC", text)
        return _normalize_whitespace(text)

    def replace_links(self, text: str, link_targets: list[str] | None = None) -> str:
        """Replace every ``[[...]]`` link with the text MediaWiki shows for it.

        Each round replaces the links that contain no other link, so a file caption
        that contains links is rendered before the caption is picked. An unclosed
        ``[[`` stays as literal text together with what follows it, and so do the outer
        levels of links nested more than ``_MAX_LINK_NESTING`` deep.
        """

        def render(match: re.Match) -> str:
            return self.render_link(match.group(1), link_targets)

        for _round in range(_MAX_LINK_NESTING):
            if "[[" not in text:
                break
            text, count = _INNERMOST_LINK.subn(render, text)
            if not count:
                break
        return text

    def render_link(self, inner: str, link_targets: list[str] | None = None) -> str:
        """Return the displayed text of one link whose text between the brackets is ``inner``."""
        target, pipe, label = inner.partition("|")
        if ":" not in target:
            # Most links point to an article, and need none of the prefix checks below.
            return _render_article_link(target.strip(), pipe, label, link_targets)

        target = target.strip()
        leading_colon = target.startswith(":")
        if leading_colon:
            target = target[1:].strip()
        prefix, colon, rest = target.partition(":")
        prefix_key = normalize_namespace_name(prefix) if colon else ""
        in_namespace = prefix_key in self.namespace_prefixes
        sister_project = bool(colon) and prefix_key in _INTERWIKI_PREFIXES and not in_namespace
        other_language = (
            bool(colon) and not in_namespace and not sister_project and bool(_LANGUAGE_CODE.match(prefix.strip()))
        )

        # A leading colon turns a file, category or language link into an inline link.
        if prefix_key in self.file_prefixes and not leading_colon:
            return file_caption(label) if pipe else ""
        if prefix_key in self.media_prefixes:
            return label.strip() if pipe else ""
        if prefix_key in self.category_prefixes and not leading_colon:
            return ""
        if other_language and not pipe and not leading_colon:
            return ""

        if in_namespace or sister_project or other_language:
            if pipe:
                return _render_article_link(target, pipe, label, None)
            return rest.strip() if (sister_project or other_language) else target
        return _render_article_link(target, pipe, label, link_targets)


def _render_article_link(target: str, pipe: str, label: str, link_targets: list[str] | None) -> str:
    if link_targets is not None:
        article = target.partition("#")[0].strip()
        if article:
            link_targets.append(article)
    if pipe:
        label = label.strip()
        return label if label else _pipe_trick(target)
    return target


def file_caption(options: str) -> str:
    """Return the caption of a ``[[File:...]]`` link from the text after its first pipe.

    The caption is the last pipe-separated part that is not an image option
    (thumb, right, 220px, upright=1.2, alt=..., link=... and the like).
    """
    caption = ""
    for part in options.split("|"):
        part = part.strip()
        if part and not is_file_option(part):
            caption = part
    return caption


def is_file_option(part: str) -> bool:
    """Return True when one pipe-separated part of a file link is an image option, not caption text."""
    lowered = part.casefold()
    if lowered in _FILE_OPTION_WORDS:
        return True
    if _FILE_SIZE_OPTION.match(lowered) or _FILE_UPRIGHT_OPTION.match(lowered):
        return True
    key, equals, _value = lowered.partition("=")
    return bool(equals) and key.strip() in _FILE_OPTION_KEYS


def remove_dropped_tags(text: str) -> str:
    """Remove comments and the ``DROPPED_CONTENT_TAGS`` elements, and escape ``<nowiki>`` content.

    An element runs from its opening tag to the next closing tag of the same name, as in
    MediaWiki's preprocessor. A self-closing tag (``<ref name="a" />``), an opening tag
    that is never closed and a stray closing tag are removed on their own, so an
    unclosed ``<ref>`` does not swallow the rest of the page.
    """
    if "<!--" in text:
        text = _COMMENT.sub("", text)
    text = _NOWIKI.sub(_escape_nowiki_content, text)

    match = _DROPPED_TAG.search(text)
    if match is None:
        return text
    pieces = []
    position = 0
    unclosed_names: set[str] = set()  # names with no closing tag after the current position
    while match is not None:
        pieces.append(text[position : match.start()])
        position = match.end()
        name = match.group(2).lower()
        is_opening = not match.group(1) and not match.group(3).rstrip().endswith("/")
        if is_opening and name not in unclosed_names:
            closing = _DROPPED_CLOSING_TAGS[name].search(text, position)
            if closing is None:
                unclosed_names.add(name)
            else:
                position = closing.end()
        match = _DROPPED_TAG.search(text, position)
    pieces.append(text[position:])
    return "".join(pieces)


def _escape_nowiki_content(match: re.Match) -> str:
    return match.group(1).translate(_NOWIKI_ESCAPES)


def _external_link_label(match: re.Match) -> str:
    return match.group(1) or ""


def remove_templates(text: str) -> str:
    """Remove templates, parser functions and template parameters, however deeply nested.

    Brace runs are paired the way MediaWiki's preprocessor pairs them: a closing run
    closes the nearest open run, three braces at a time when both sides have three
    (a parameter ``{{{1}}}``) and two otherwise (a template). Every paired span is
    removed. Braces left unpaired stay as literal text.
    """
    if "{{" not in text:
        return text

    # str.find locates the runs about twice as fast as a regular expression for "{{+|}}+",
    # which has no literal prefix.
    find = text.find
    length = len(text)
    open_runs: list[list[int]] = []  # [start offset, braces still open]
    spans: list[tuple[int, int]] = []
    next_open = find("{{")
    next_close = find("}}", next_open)
    while next_close >= 0:
        if 0 <= next_open < next_close:
            end = next_open + 2
            while end < length and text[end] == "{":
                end += 1
            open_runs.append([next_open, end - next_open])
            next_open = find("{{", end)
            continue

        start = next_close
        end = start + 2
        while end < length and text[end] == "}":
            end += 1
        next_close = find("}}", end)
        if not open_runs and next_open < 0:
            break

        closing = end - start
        while closing >= 2 and open_runs:
            top = open_runs[-1]
            still_open = top[1]
            if still_open < 2:
                open_runs.pop()
                continue
            paired = 3 if still_open >= 3 and closing >= 3 else 2
            still_open -= paired
            closing -= paired
            # The braces paired last in an opening run are its rightmost ones.
            spans.append((top[0] + still_open, end - closing))
            if still_open < 2:
                open_runs.pop()
            else:
                top[1] = still_open

    return _delete_spans(text, spans)


def _delete_spans(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    spans.sort()
    pieces = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        if start > position:
            pieces.append(text[position:start])
        position = max(position, end)
    pieces.append(text[position:])
    return "".join(pieces)


def _table_line_kind(line: str) -> str | None:
    stripped = line.lstrip(" \t:")
    if stripped.startswith("{|"):
        return "open"
    stripped = line.lstrip()
    if stripped.startswith("|}"):
        return "close"
    if stripped.startswith(("|", "!")):
        return "row"
    return None


def remove_tables(text: str) -> str:
    """Remove wiki tables ``{| ... |}``, nested ones included, line by line.

    A table that is never closed (for example one closed by an ``{{end}}`` template,
    which is already removed) ends at the first blank line followed by a line that is
    not table syntax.
    Stray row lines outside any table (``|-``, ``| cell``, ``! header``), which
    table templates leave behind, are removed too.
    """
    if not _TABLE_SYNTAX_AT_START.match(text) and not _TABLE_SYNTAX_AFTER_NEWLINE.search(text):
        return text

    lines = text.split("\n")
    kinds = [_table_line_kind(line) if line[:1] in _TABLE_LINE_FIRST_CHARS else None for line in lines]
    keep = [True] * len(lines)
    index = 0
    while index < len(lines):
        kind = kinds[index]
        if kind is None:
            index += 1
            continue
        if kind != "open":
            keep[index] = False
            index += 1
            continue

        end = _table_end(kinds, lines, index)
        for removed in range(index, end + 1):
            keep[removed] = False
        index = end + 1

    return "\n".join(line for line, kept in zip(lines, keep) if kept)


def _table_end(kinds: list[str | None], lines: list[str], start: int) -> int:
    # Index of the last line of the table that opens on line ``start``.
    depth = 0
    for index in range(start, len(lines)):
        if kinds[index] == "open":
            depth += 1
        elif kinds[index] == "close":
            depth -= 1
            if depth == 0:
                return index

    # Never closed: the table runs over row lines and multi-line cells, and ends before
    # a blank line that prose follows, or else at its last row line.
    last_syntax_line = start
    for index in range(start + 1, len(lines)):
        if kinds[index] is not None:
            last_syntax_line = index
            continue
        if lines[index].strip():
            continue
        following = index + 1
        while following < len(lines) and not lines[following].strip():
            following += 1
        if following >= len(lines) or kinds[following] is None:
            return index - 1
    return last_syntax_line


def _pipe_trick(target: str) -> str:
    # [[Help:Foo (bar)|]] shows "Foo": the namespace and a trailing parenthetical are dropped.
    _prefix, colon, rest = target.partition(":")
    shown = rest if colon else target
    return _PARENTHETICAL.sub("", shown).strip()


def remove_line_markup(text: str) -> str:
    """Remove heading markers (keeping the title), list and indent markers and horizontal rules."""
    text = "\n" + text
    if "=" in text:
        text = _HEADING.sub(r"\n\2", text)
    text = _LIST_MARKER.sub("\n", text)
    if "----" in text:
        text = _HORIZONTAL_RULE.sub("\n", text)
    return text[1:]


def remove_quote_runs(text: str) -> str:
    """Remove the bold and italic apostrophe runs, keeping the apostrophes MediaWiki shows as text.

    Runs are read per line, as MediaWiki's ``doQuotes`` reads them. ``''`` is italic,
    ``'''`` bold and ``'''''`` both. Four apostrophes are one apostrophe and bold, and
    more than five show the extra ones. When a line has an odd number of both italic
    and bold runs, one bold run is read as an apostrophe followed by italic, which is
    how ``''Iliad'''s`` shows "Iliad's". Every run is removed on its own, so an unclosed
    ``''`` does not hide the rest of the page.
    """
    if "''" not in text:
        return text

    pieces = []
    position = 0
    line: list[re.Match] = []
    line_end = -1
    for match in _QUOTE_RUN.finditer(text):
        if match.start() > line_end and line:
            position = _append_quote_line(text, line, position, pieces)
            line = []
        if not line:
            line_end = text.find("\n", match.start())
            if line_end < 0:
                line_end = len(text)
        line.append(match)
    position = _append_quote_line(text, line, position, pieces)
    pieces.append(text[position:])
    return "".join(pieces)


def _append_quote_line(text: str, runs: list[re.Match], position: int, pieces: list[str]) -> int:
    # Append the text of one line up to its last quote run, with every run replaced by the
    # apostrophes MediaWiki shows, and return the offset after that run.
    lengths = [run.end() - run.start() for run in runs]
    italics = sum(1 for length in lengths if length == 2 or length >= 5)
    bolds = sum(1 for length in lengths if length >= 3)
    split_bold = _bold_run_read_as_italic(text, runs, lengths) if italics % 2 and bolds % 2 else None

    for index, run in enumerate(runs):
        pieces.append(text[position : run.start()])
        length = lengths[index]
        if length == 4:
            pieces.append("'")
        elif length > 5:
            pieces.append("'" * (length - 5))
        if index == split_bold:
            pieces.append("'")
        position = run.end()
    return position


def _bold_run_read_as_italic(text: str, runs: list[re.Match], lengths: list[int]) -> int | None:
    # MediaWiki picks the first bold run after a one-letter word ("l'''amour"), else the
    # first after a longer word, else the first after a space.
    after_word = None
    after_space = None
    previous_end = text.rfind("\n", 0, runs[0].start()) + 1
    for index, run in enumerate(runs):
        length = lengths[index]
        before = text[max(previous_end, run.start() - 2) : run.start()]
        previous_end = run.end()
        if length not in (3, 4):
            continue
        if length == 4:
            before = (before + "'")[-2:]  # the first apostrophe of four is text
        last = before[-1:]
        second_last = before[-2:-1] if len(before) >= 2 else before[:1]
        if last == " ":
            if after_space is None:
                after_space = index
        elif second_last == " ":
            return index
        elif after_word is None:
            after_word = index
    return after_word if after_word is not None else after_space


def _normalize_whitespace(text: str) -> str:
    # One str.replace per character that occurs is about twice as fast as a character class.
    spaces = "\t" if text.isascii() else _OTHER_SPACES
    for space in spaces:
        if space in text:
            text = text.replace(space, " ")
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    text = "\n".join([line.strip() for line in text.split("\n")])
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def strip_markup(text: str, namespaces: Namespaces | None = None) -> str:
    """Return the plain text of wikitext ``text`` (see ``MarkupStripper``)."""
    return MarkupStripper(namespaces).strip(text)
