"""Split plain text into word tokens and into runs of adjacent words for bigrams.

Scripts written with spaces
---------------------------
A token is a run of Unicode letters, digits and combining marks (general categories
L, N and Mn/Mc/Me) that starts with a letter or digit, so Devanagari vowel signs
("नहीं") and decomposed accents stay inside their words. An underscore splits words.
An ASCII apostrophe or hyphen between two such runs stays inside the token: "don't",
"O'Brien", "well-known" and "Jean-Paul" are one token each, which is also how the
matching stage keeps them whole. A typographic apostrophe (U+2019) and dashes split
tokens, because the matching stage splits captions on them too.

Scripts written without spaces
------------------------------
Chinese, Japanese, Thai, Lao, Khmer and Burmese put no spaces between words. Each
maximal run of letters, digits and marks of their Unicode blocks (``_NO_SPACE_BLOCKS``)
goes to ICU's word break iterator, which splits these scripts with its dictionaries,
and each segment is a token. The segments of one run form a run for bigrams, and
``join_tokens`` writes their pair without a space: "日本" and "政府" give "日本政府".
Punctuation, including the katakana middle dot "・", ends a run. A segment that starts
with a modifier letter or a mark, such as an iteration mark (ゝ, ๆ), joins the segment
before it. ICU comes from the pip package pyicu-wheels (2.15.2 bundles ICU 77.1) and
is imported on first use.

Case is kept by default: "Apple" and "apple" are different tokens, as MetaCLIP's
entries are case-sensitive. A sentence-initial word therefore counts under its
capitalized form.

Limits: ICU has one dictionary for Chinese and Japanese together, so a string of Han
characters can split differently from how a reader of the language would split it.
Words missing from the dictionary come out in pieces: the name "余伟文" gives "余",
"伟" and "文", and "スマホ" gives "スマ" and "ホ". The tests check Japanese, Chinese and
Thai. Lao, Khmer and Burmese go through ICU's dictionaries too, but no real text of
them is checked. Korean is written with spaces and takes the ordinary path.

Speed: text with no combining mark, no character beyond U+FFFF and no letter of a
script written without spaces, which is most English text, takes a fast path of one
regular expression. The test for that misses a few rare marks (see ``_utf8_prefixes``).
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Iterator

# Tokens of text that has no combining mark, no character beyond U+FFFF and no letter of
# a script written without spaces. Possessive quantifiers match the same tokens as
# greedy ones here and skip the backtracking bookkeeping.
_FAST_TOKEN = re.compile(r"[^\W_]++(?:['\-][^\W_]++)*+")
# A run of fast-path tokens with only spaces or tabs between them, never a line break:
# the same runs that ``_iter_fast_runs`` groups token by token.
_FAST_RUN = re.compile(r"[^\W_]++(?:['\-][^\W_]++)*+(?:[^\S\n]++[^\W_]++(?:['\-][^\W_]++)*+)*+")
_LETTER = re.compile(r"[^\W\d_]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

#: Unicode blocks (first, last code point) of the scripts that ICU segments with
#: dictionaries. Only their letters, digits and marks count as letters of a script
#: written without spaces, so punctuation in these blocks (、。・) ends a run.
_NO_SPACE_BLOCKS = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3000, 0x303F),  # CJK Symbols and Punctuation: 々 〆 〇 and the kana repeat marks
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA9E0, 0xA9FF),  # Myanmar Extended-B
    (0xAA60, 0xAA7F),  # Myanmar Extended-A
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Halfwidth Katakana
    (0x1AFF0, 0x1B16F),  # Kana Extended-B, Kana Supplement, Kana Extended-A, Small Kana Extension
)
# Planes 2 and 3 hold only CJK ideographs. They count whole, so ideographs newer than
# Python's Unicode database are letters too.
_IDEOGRAPHIC_PLANES = (0x20000, 0x3FFFF)

# Code points whose general category is read from unicodedata: the Basic Multilingual
# Plane, plane 1 and the variation selectors of plane 14. Planes 2 and 3 are all
# ideographs, and the other planes have no letters, digits or marks.
_CATEGORY_RANGES = (range(0x0000, 0x20000), range(0xE0000, 0xE1000))


def join_tokens(first: str, second: str) -> str:
    """Return the query for the bigram of two adjacent tokens.

    Two tokens of a script written without spaces are joined directly ("日本政府"). Any
    other pair gets one space ("New York", "iPhone 発売").
    """
    nospace = _patterns().nospace_char
    if nospace.fullmatch(first[-1:]) and nospace.fullmatch(second[:1]):
        return first + second
    return f"{first} {second}"


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Return the word tokens of ``text`` in order."""
    if _needs_full_path(text):
        tokens = _full_path_tokens(text)
    else:
        tokens = _FAST_TOKEN.findall(text)
    if lowercase:
        tokens = [token.lower() for token in tokens]
    return tokens


def iter_token_runs(text: str, lowercase: bool = False) -> Iterator[list[str]]:
    """Yield runs of adjacent tokens within one line.

    Two tokens are adjacent when only spaces separate them, or when ICU split them out
    of one run of a script written without spaces. Punctuation, a line break or any
    other character between two tokens ends a run, so "Paris, France" gives two runs
    and no bigram "Paris France". A space between two runs of a script written without
    spaces also ends a run, because Thai uses spaces between phrases, not words.
    """
    if _needs_full_path(text):
        runs = _group_runs(_iter_full_path_tokens(text))
    else:
        runs = _iter_fast_runs(text)
    for run in runs:
        yield [token.lower() for token in run] if lowercase else run


def token_run_texts(text: str, lowercase: bool = False) -> list[str]:
    """Return the runs of ``iter_token_runs`` as strings, tokens separated by whitespace.

    ``str.split()`` on a run gives its tokens. On the fast path one regular expression
    finds whole runs, which is about twice as fast as grouping tokens one by one.
    """
    if not _needs_full_path(text):
        runs = _FAST_RUN.findall(text)
    else:
        # Runs never cross a line break, so each line can take its own path: one Han
        # character in an English article sends only its own line down the slow path.
        runs = []
        for line in text.split("\n"):
            if _needs_full_path(line):
                runs += [" ".join(run) for run in _group_runs(_iter_full_path_tokens(line))]
            else:
                runs += _FAST_RUN.findall(line)
    if lowercase:
        runs = [run.lower() for run in runs]
    return runs


def has_letter(token: str) -> bool:
    """Return True when ``token`` contains a letter. Tokens of digits only are never queries."""
    return _LETTER.search(token) is not None


def _needs_full_path(text: str) -> bool:
    """Return True when ``text`` has a combining mark, a no-space letter or a character beyond U+FFFF.

    A regular expression scan of every character would add about 15% to the time that
    tokenizing English text takes (measured on the bundled dump). So the UTF-8 bytes of
    the text are first searched for the lead bytes that such characters start with.
    ``bytes.__contains__`` finds one byte at memory speed, and most English text has
    none of those lead bytes.
    """
    if text.isascii():
        return False
    patterns = _patterns()
    data = text.encode("utf-8", "surrogatepass")
    for prefix in patterns.full_path_utf8_prefixes:
        if prefix in data:
            return patterns.full_path_char.search(text) is not None
    return False


def _full_path_tokens(text: str) -> list[str]:
    patterns = _patterns()
    # With one capturing group, split() returns the text between runs of a no-space
    # script at even indexes and the runs themselves at odd indexes.
    pieces = patterns.nospace_run.split(text)
    tokens = patterns.word.findall(pieces[0])
    for index in range(1, len(pieces), 2):
        tokens.extend(_segment(pieces[index], patterns.joiners))
        tokens.extend(patterns.word.findall(pieces[index + 1]))
    return tokens


def _iter_fast_runs(text: str) -> Iterator[list[str]]:
    run: list[str] = []
    previous_end = -1
    for match in _FAST_TOKEN.finditer(text):
        start = match.start()
        if run:
            gap = text[previous_end:start]
            if not gap.isspace() or "\n" in gap:
                yield run
                run = []
        run.append(match.group())
        previous_end = match.end()
    if run:
        yield run


def _group_runs(tokens: Iterator[tuple[str, bool]]) -> Iterator[list[str]]:
    run: list[str] = []
    for token, new_run in tokens:
        if new_run and run:
            yield run
            run = []
        run.append(token)
    if run:
        yield run


def _iter_full_path_tokens(text: str) -> Iterator[tuple[str, bool]]:
    """Yield each token of ``text`` with True when it starts a new run."""
    patterns = _patterns()
    previous_end = -1
    previous_nospace = False
    for match in patterns.full_path_token.finditer(text):
        nospace = match.lastgroup == "nospace"
        gap = text[previous_end : match.start()]
        new_run = (
            previous_end < 0
            or not gap.isspace()
            or "\n" in gap
            or (nospace and previous_nospace)
        )
        if nospace:
            for segment in _segment(match.group(), patterns.joiners):
                yield segment, new_run
                new_run = False
        else:
            yield match.group(), new_run
        previous_end = match.end()
        previous_nospace = nospace


def _segment(run: str, joiners: str) -> list[str]:
    """Split a run of a script written without spaces into words with ICU.

    A segment that starts with a modifier letter or a mark joins the segment before it.
    At the start of the run, its leading joiners are dropped, and so is the segment if
    nothing else is left.
    """
    breaker = _word_breaker()
    breaker.setText(run)
    # ICU returns offsets in UTF-16 code units. They match Python's indexes unless the run
    # has characters beyond U+FFFF, which take two units each.
    boundaries = list(breaker)
    if _ASTRAL.search(run):
        boundaries = _utf16_to_indexes(run, boundaries)
    segments: list[str] = []
    start = 0
    for end in boundaries:
        segment = run[start:end]
        start = end
        if segment[0] in joiners:
            if segments:
                segments[-1] += segment
                continue
            segment = segment.lstrip(joiners)
            if not segment:
                continue
        segments.append(segment)
    return segments


def _utf16_to_indexes(run: str, offsets: list[int]) -> list[int]:
    index_of_offset = {}
    offset = 0
    for index, char in enumerate(run):
        index_of_offset[offset] = index
        offset += 2 if char > "\uffff" else 1
    index_of_offset[offset] = len(run)
    return [index_of_offset[offset] for offset in offsets]


_breakers = threading.local()


def _word_breaker():
    """Return this thread's ICU word break iterator.

    A BreakIterator keeps the text it splits and its position, so threads must not share one.
    """
    breaker = getattr(_breakers, "word", None)
    if breaker is None:
        try:
            import icu
        except ImportError as error:
            raise ImportError(
                "Splitting Chinese, Japanese, Thai, Lao, Khmer or Burmese text into words "
                "needs ICU: install the pip package pyicu-wheels (or PyICU). "
                f"Importing the module icu failed: {error}"
            ) from error
        breaker = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
        _breakers.word = breaker
    return breaker


@dataclass(frozen=True)
class _Patterns:
    """Character classes built from Python's Unicode database on first use."""

    full_path_char: re.Pattern  # a character that the fast path cannot handle
    full_path_utf8_prefixes: tuple[bytes, ...]  # UTF-8 bytes that every such character starts with
    word: re.Pattern  # a token of a script written with spaces
    nospace_run: re.Pattern  # a run of a script written without spaces, captured
    full_path_token: re.Pattern  # a word, or a run of a no-space script in group "nospace"
    nospace_char: re.Pattern  # one letter, digit or mark of a script written without spaces
    joiners: str  # modifier letters and marks of those scripts, which join the segment before


@functools.cache
def _patterns() -> _Patterns:
    """Build the character classes from ``unicodedata`` (tens of milliseconds, once per process)."""
    nospace: list[int] = []
    letters_digits: list[int] = []
    marks: list[int] = []
    joiners: list[str] = []
    in_nospace_block = {code_point for first, last in _NO_SPACE_BLOCKS for code_point in range(first, last + 1)}
    for code_points in _CATEGORY_RANGES:
        for code_point in code_points:
            category = unicodedata.category(chr(code_point))
            if category[0] not in "LNM":
                continue
            if code_point in in_nospace_block:
                nospace.append(code_point)
                if category == "Lm" or category[0] == "M":
                    joiners.append(chr(code_point))
            elif category[0] == "M":
                marks.append(code_point)
            else:
                letters_digits.append(code_point)

    nospace_class = _char_class(_ranges(nospace) + [_IDEOGRAPHIC_PLANES])
    bmp_nospace = [code_point for code_point in nospace if code_point <= 0xFFFF]
    bmp_word = [code_point for code_point in letters_digits if code_point <= 0xFFFF]
    bmp_mark = [code_point for code_point in marks if code_point <= 0xFFFF]
    astral_word = [code_point for code_point in letters_digits if code_point > 0xFFFF]
    astral_mark = [code_point for code_point in marks if code_point > 0xFFFF]

    # A class with characters beyond U+FFFF tests them one range after another, which is
    # slow for every character that fails the class. The lookahead on one range lets
    # characters of the Basic Multilingual Plane skip those ranges.
    astral_guard = r"(?=[\U00010000-\U0001ffff\U000e0000-\U000effff])"
    word_start = (
        f"(?:[{_char_class(_ranges(bmp_word))}]"
        f"|{astral_guard}[{_char_class(_ranges(astral_word))}])"
    )
    word_rest = (
        f"(?:[{_char_class(_ranges(sorted(bmp_word + bmp_mark)))}]++"
        f"|{astral_guard}[{_char_class(_ranges(sorted(astral_word + astral_mark)))}]++)*+"
    )
    word = f"{word_start}{word_rest}(?:['\\-]{word_start}{word_rest})*+"

    full_path_bmp = sorted(bmp_nospace + bmp_mark)
    full_path_class = _char_class(_ranges(full_path_bmp) + [(0x10000, 0x10FFFF)])
    return _Patterns(
        full_path_char=re.compile(f"[{full_path_class}]"),
        full_path_utf8_prefixes=_utf8_prefixes(full_path_bmp),
        word=re.compile(word),
        nospace_run=re.compile(f"([{nospace_class}]++)"),
        full_path_token=re.compile(f"(?P<nospace>[{nospace_class}]++)|{word}"),
        nospace_char=re.compile(f"[{nospace_class}]"),
        joiners="".join(joiners),
    )


def _utf8_prefixes(bmp_code_points: list[int]) -> tuple[bytes, ...]:
    """Return the UTF-8 lead bytes of ``bmp_code_points`` and of every character beyond U+FFFF.

    Lead byte E2 (U+2000 to U+2FFF) is left out, because nearly every English text has
    a dash or quote there and would fail the filter.
    """
    # NOTE: the marks in that range (U+20D0-20FF for symbols, U+2CEF-2CF1 Coptic, U+2D7F
    # Tifinagh, U+2DE0-2DFF Cyrillic Extended-A) therefore split words in a text that has
    # no other character of the full path. A search for their two-byte prefixes would
    # stop at every dash and quote, which made it slower than the regular expression scan.
    leads = {chr(code_point).encode("utf-8")[0] for code_point in bmp_code_points}
    leads.discard(0xE2)
    leads.update(range(0xF0, 0xF5))
    return tuple(bytes([lead]) for lead in sorted(leads))


def _ranges(code_points: list[int]) -> list[tuple[int, int]]:
    """Return the (first, last) ranges of consecutive values in sorted ``code_points``."""
    ranges: list[tuple[int, int]] = []
    for code_point in code_points:
        if ranges and ranges[-1][1] == code_point - 1:
            ranges[-1] = (ranges[-1][0], code_point)
        else:
            ranges.append((code_point, code_point))
    return ranges


def _char_class(ranges: list[tuple[int, int]]) -> str:
    """Return the inside of a regular expression class (the text between [ and ])."""
    parts = []
    for first, last in ranges:
        parts.append(_escape(first) if first == last else f"{_escape(first)}-{_escape(last)}")
    return "".join(parts)


def _escape(code_point: int) -> str:
    return f"\\u{code_point:04x}" if code_point <= 0xFFFF else f"\\U{code_point:08x}"
