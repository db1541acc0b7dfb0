"""Split plain text into word tokens and into runs of adjacent words for bigrams.

A token is a run of Unicode letters and digits (``[^\\W_]``, so underscores split
words). An ASCII apostrophe or hyphen between two such runs stays inside the token:
"don't", "O'Brien", "well-known" and "Jean-Paul" are one token each, which is also how
the matching stage keeps them whole. A typographic apostrophe (U+2019) and dashes split
tokens, because the matching stage splits captions on them too.

Case is kept by default: "Apple" and "apple" are different tokens, as MetaCLIP's
entries are case-sensitive. A sentence-initial word therefore counts under its
capitalized form.

NOTE: Python's ``re`` has no class for combining marks, so a decomposed accent splits a
word. The markup stripper puts text in NFC form first, which composes nearly all
Latin, Greek and Cyrillic letters, but scripts that need combining marks (Devanagari
vowel signs, for example) split inside words.
"""

from __future__ import annotations

import re
from typing import Iterator

TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
_LETTER = re.compile(r"[^\W\d_]")


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Return the word tokens of ``text`` in order."""
    tokens = TOKEN.findall(text)
    if lowercase:
        tokens = [token.lower() for token in tokens]
    return tokens


def iter_token_runs(text: str, lowercase: bool = False) -> Iterator[list[str]]:
    """Yield runs of tokens that are separated only by spaces within one line.

    Punctuation, a line break or any other non-space character between two tokens
    ends a run, so "Paris, France" gives two runs and no bigram "Paris France".
    """
    run: list[str] = []
    previous_end = -1
    for match in TOKEN.finditer(text):
        start = match.start()
        if run:
            gap = text[previous_end:start]
            if not gap.isspace() or "\n" in gap:
                yield run
                run = []
        token = match.group()
        run.append(token.lower() if lowercase else token)
        previous_end = match.end()
    if run:
        yield run


def has_letter(token: str) -> bool:
    """Return True when ``token`` contains a letter. Tokens of digits only are never queries."""
    return _LETTER.search(token) is not None
