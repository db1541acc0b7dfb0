"""Turn MediaWiki wikitext into the plain text a reader sees, for counting words.

The stripper works in passes, in the order MediaWiki's own parser resolves the markup:

1. comments ``<!-- -->`` (an unclosed one runs to the end of the page, as in MediaWiki);
2. tags whose content is not prose, with their content: ``<ref>``, ``<math>``,
   ``<gallery>``, ``<syntaxhighlight>`` and the others in ``DROPPED_CONTENT_TAGS``.
   ``<nowiki>`` content is kept as literal text;
3. templates, parser functions and template parameters ``{{ }}`` / ``{{{ }}}``, matched
   brace run by brace run so nesting works (an unclosed ``{{`` stays literal text);
4. tables ``{| ... |}``, line by line and nested. A table that is never closed
   ends at a blank line followed by prose, so it cannot swallow the rest of the page;
5. internal links ``[[ ]]``, innermost first so a caption can contain links:
   ``[[target|label]]`` keeps the label, ``[[target]]`` the target,
   ``[[File:...]]`` / ``[[Image:...]]`` only the caption, and category and
   interlanguage links are removed;
6. external links ``[http://x label]`` keep the label, bare URLs are removed;
7. HTML tags are removed and their inner text kept; headings, list markers, behavior
   switches such as ``__NOTOC__`` and bold/italic quote runs are removed;
8. HTML entities are decoded and the text is put in Unicode NFC form.

Each apostrophe run is removed on its own, so an unclosed ``''`` cannot hide the rest
of a page. Paragraph and line breaks survive as newlines, so callers can keep n-grams
within a line.

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
_DROPPED_SELF_CLOSING = re.compile(
    r"<(?:%s)\b[^<>]*/\s*>" % "|".join(DROPPED_CONTENT_TAGS), re.IGNORECASE
)
_DROPPED_ELEMENT = re.compile(
    r"<(%s)\b[^<>]*>.*?</\1\s*>" % "|".join(DROPPED_CONTENT_TAGS), re.IGNORECASE | re.DOTALL
)
_DROPPED_STRAY_TAG = re.compile(r"</?(?:%s)\b[^<>]*>" % "|".join(DROPPED_CONTENT_TAGS), re.IGNORECASE)
_BRACE_RUN = re.compile(r"\{{2,}|\}{2,}")
_LINK_BRACKET = re.compile(r"\[\[|\]\]")
_EXTERNAL_LINK = re.compile(
    r"\[(?:https?:|ftp:|ftps:|mailto:|news:|irc:|ircs:|gopher:|//)[^\s\[\]<>\"]*(?:\s+([^\[\]\n]*))?\]",
    re.IGNORECASE,
)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\[\]{}|\"]+", re.IGNORECASE)
_LINE_BREAK_TAG = re.compile(r"<br\s*/?\s*>|</?(?:p|div|li|tr|dd|dt|h[1-6])\b[^<>]*>", re.IGNORECASE)
_KEPT_TAG = re.compile(r"</?(?:%s)\b[^<>]*>" % "|".join(_KEPT_CONTENT_TAGS), re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*(=+)[ \t]*(.*?)[ \t]*\1[ \t]*$", re.MULTILINE)
_LIST_MARKER = re.compile(r"^[ \t]*[*#:;]+[ \t]*", re.MULTILINE)
_HORIZONTAL_RULE = re.compile(r"^[ \t]*-{4,}[ \t]*$", re.MULTILINE)
_BEHAVIOR_SWITCH = re.compile(r"__[A-Z]+__")
_QUOTE_RUN = re.compile(r"''+")
_OTHER_SPACE = re.compile(r"[\t\u00a0\u2000-\u200b\u202f\u205f\u3000]")
_SPACE_RUN = re.compile(r"  +")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*\Z")


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
        text = _COMMENT.sub("", text)
        text = _NOWIKI.sub(lambda match: match.group(1).translate(_NOWIKI_ESCAPES), text)
        text = _DROPPED_SELF_CLOSING.sub("", text)
        text = _DROPPED_ELEMENT.sub("", text)
        text = _DROPPED_STRAY_TAG.sub("", text)

        text = remove_templates(text)
        text = remove_tables(text)
        text = self.replace_links(text, link_targets)

        text = _EXTERNAL_LINK.sub(lambda match: match.group(1) or "", text)
        if "://" in text:
            text = _BARE_URL.sub("", text)
        text = _LINE_BREAK_TAG.sub("\n", text)
        text = _KEPT_TAG.sub("", text)

        text = _HEADING.sub(r"\2", text)
        text = _LIST_MARKER.sub("", text)
        text = _HORIZONTAL_RULE.sub("", text)
        text = _BEHAVIOR_SWITCH.sub("", text)
        text = _QUOTE_RUN.sub(_replace_quote_run, text)

        text = html.unescape(text)
        text = unicodedata.normalize("NFC", text)
        return _normalize_whitespace(text)

    def replace_links(self, text: str, link_targets: list[str] | None = None) -> str:
        """Replace every ``[[...]]`` link with the text MediaWiki shows for it.

        Links are matched as bracket pairs, innermost first, so a file caption that
        contains links is rendered before the caption is picked. An unclosed ``[[``
        stays as literal text together with what follows it.
        """
        stack: list[list[str]] = [[]]
        position = 0
        for match in _LINK_BRACKET.finditer(text):
            stack[-1].append(text[position : match.start()])
            position = match.end()
            if match.group() == "[[":
                stack.append([])
            elif len(stack) > 1:
                inner = "".join(stack.pop())
                stack[-1].append(self.render_link(inner, link_targets))
            else:
                stack[-1].append("]]")
        stack[-1].append(text[position:])

        while len(stack) > 1:
            unclosed = "".join(stack.pop())
            stack[-1].append("[[" + unclosed)
        return "".join(stack[0])

    def render_link(self, inner: str, link_targets: list[str] | None = None) -> str:
        """Return the displayed text of one link whose text between the brackets is ``inner``."""
        target, pipe, label = inner.partition("|")
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

        if link_targets is not None and not (in_namespace or sister_project or other_language):
            article = target.partition("#")[0].strip()
            if article:
                link_targets.append(article)

        if pipe:
            label = label.strip()
            return label if label else _pipe_trick(target)
        if sister_project or other_language:
            return rest.strip()
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


def remove_templates(text: str) -> str:
    """Remove templates, parser functions and template parameters, however deeply nested.

    Brace runs are paired the way MediaWiki's preprocessor pairs them: a closing run
    closes the nearest open run, three braces at a time when both sides have three
    (a parameter ``{{{1}}}``) and two otherwise (a template). Every paired span is
    removed. Braces left unpaired stay as literal text.
    """
    if "{{" not in text:
        return text

    open_runs: list[list[int]] = []  # [start offset, braces still open]
    spans: list[tuple[int, int]] = []
    for match in _BRACE_RUN.finditer(text):
        run_length = len(match.group())
        if match.group()[0] == "{":
            open_runs.append([match.start(), run_length])
            continue

        closing = run_length
        while closing >= 2 and open_runs:
            top = open_runs[-1]
            if top[1] < 2:
                open_runs.pop()
                continue
            paired = 3 if top[1] >= 3 and closing >= 3 else 2
            top[1] -= paired
            closing -= paired
            # The braces paired last in an opening run are its rightmost ones.
            spans.append((top[0] + top[1], match.end() - closing))
            if top[1] < 2:
                open_runs.pop()

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
    if "{|" not in text and "\n|" not in text and "\n!" not in text:
        return text

    lines = text.split("\n")
    kinds = [_table_line_kind(line) for line in lines]
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


def _replace_quote_run(match: re.Match) -> str:
    # '' is italic and ''' bold, ''''' both. MediaWiki shows the extra apostrophes of
    # four or more than five as text: '''' is an apostrophe followed by bold.
    length = len(match.group())
    if length == 4:
        return "'"
    if length > 5:
        return "'" * (length - 5)
    return ""


def _normalize_whitespace(text: str) -> str:
    text = _OTHER_SPACE.sub(" ", text)
    text = _SPACE_RUN.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def strip_markup(text: str, namespaces: Namespaces | None = None) -> str:
    """Return the plain text of wikitext ``text`` (see ``MarkupStripper``)."""
    return MarkupStripper(namespaces).strip(text)
