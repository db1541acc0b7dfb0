"""Reader of WordNet synset names, used as queries, from a WordNet 3.0 database folder.

The folder is the ``dict`` folder of the Princeton release, which Debian's
``wordnet-base`` package installs as ``/usr/share/wordnet``. Only the four data
files are read (``data.noun``, ``data.verb``, ``data.adj``, ``data.adv``), in the
format that the wndb(5WN) manual page documents:

    synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt ... | gloss

Lines that start with two spaces are the licence header. ``w_cnt`` is a two-digit
hexadecimal number. In ``data.adj`` a word may end in a syntactic marker: "(a)",
"(p)" or "(ip)".

NLTK names a synset after its first word: the word lower-cased and without its
marker, then the part of speech and the sense number ("hot_dog.n.01"). The query is
that first word with "_" as space ("hot dog"). It is the name up to the ".pos.NN"
suffix, not up to the first ".", because 26 first words of WordNet 3.0 contain a
"." themselves (".22_caliber", "st._petersburg").
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable that names the WordNet database folder. It is checked first.
WORDNET_DIR_ENV = "WORDNET_DIR"
#: The WordNet library's own variable for its database folder (see wn(1WN)).
WNSEARCHDIR_ENV = "WNSEARCHDIR"
#: Folders checked after the environment variables, in this order: Debian and Ubuntu
#: (package wordnet-base), then the default install folder of the Princeton release.
DEFAULT_WORDNET_FOLDERS = (
    Path("/usr/share/wordnet"),
    Path("/usr/local/WordNet-3.0/dict"),
)

#: Data files in the order their synsets are read, with the synset types each may hold.
DATA_FILES = {
    "data.noun": frozenset({"n"}),
    "data.verb": frozenset({"v"}),
    "data.adj": frozenset({"a", "s"}),
    "data.adv": frozenset({"r"}),
}

# Syntactic markers of adjectives in data.adj, as wninput(5WN) lists them.
_ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)\Z")
_VERSION_LINE = re.compile(r"WordNet (\d+\.\d+) Copyright")
_LICENCE_PREFIX = "  "


class WordNetFormatError(ValueError):
    """A WordNet data file has a line that does not follow the wndb(5WN) format."""


@dataclass
class WordNetNames:
    """Queries formed from WordNet synset names, with the counts of what was read.

    ``names`` maps each query to the number of synsets whose name it is the first part
    of. Its order is the order of first appearance in data.noun, data.verb, data.adj,
    then data.adv. ``synsets_by_type`` counts synsets by their ``ss_type`` letter:
    n (noun), v (verb), a (adjective), s (adjective satellite) and r (adverb).
    """

    folder: Path
    names: dict[str, int] = field(default_factory=dict)
    synsets_by_type: dict[str, int] = field(default_factory=dict)
    version: str | None = None

    @property
    def synset_count(self) -> int:
        """Number of synsets read from all four data files."""
        return sum(self.synsets_by_type.values())


def missing_data_files(folder: Path) -> list[str]:
    """Return the names of the WordNet data files that ``folder`` lacks."""
    return [name for name in DATA_FILES if not (folder / name).is_file()]


def find_wordnet_folder() -> Path | None:
    """Return the first WordNet database folder found, or None when there is none.

    Checks the folder named by ``$WORDNET_DIR``, then ``$WNSEARCHDIR``, then
    ``DEFAULT_WORDNET_FOLDERS``. A folder named by either variable must contain the
    data files, so a wrong setting raises FileNotFoundError and is not skipped.
    """
    for variable in (WORDNET_DIR_ENV, WNSEARCHDIR_ENV):
        value = os.environ.get(variable)
        if not value:
            continue
        folder = Path(value)
        missing = missing_data_files(folder)
        if missing:
            raise FileNotFoundError(
                f"${variable} is {folder}, but that folder lacks the WordNet data files {', '.join(missing)}. "
                f"Point ${variable} at a WordNet 3.0 dict folder or unset it."
            )
        return folder

    for folder in DEFAULT_WORDNET_FOLDERS:
        if not missing_data_files(folder):
            return folder
    return None


def query_of_word(word: str) -> str:
    """Return the query of a synset's first word as data files spell it ("Hot_dog" -> "hot dog")."""
    word = _ADJECTIVE_MARKER.sub("", word)
    return word.lower().replace("_", " ")


def read_synset_names(folder: str | os.PathLike) -> WordNetNames:
    """Read the name of every synset in a WordNet database folder and form its query.

    Raises FileNotFoundError when a data file is missing, and WordNetFormatError on a
    file that is not UTF-8 text or a line that is not a synset, naming the file and line.
    """
    folder = Path(folder)
    missing = missing_data_files(folder)
    if missing:
        raise FileNotFoundError(
            f"WordNet data files {', '.join(missing)} not found in {folder}. Install them with "
            f"'apt-get install wordnet-base' (Debian, Ubuntu) or pass the dict folder of a WordNet 3.0 release."
        )

    result = WordNetNames(folder=folder)
    names: Counter[str] = Counter()
    synsets_by_type: Counter[str] = Counter()
    for file_name, synset_types in DATA_FILES.items():
        path = folder / file_name
        version = _read_data_file(path, synset_types, names, synsets_by_type)
        if result.version is None:
            result.version = version

    result.names = dict(names)
    result.synsets_by_type = dict(synsets_by_type)
    if result.version != "3.0":
        # NOTE: the parser follows the WordNet 3.0 format, and only 3.0 is tested.
        logger.warning(
            "WordNet folder %s has version %s, but the names were checked against WordNet 3.0 only",
            folder,
            result.version,
        )
    logger.info(
        "read %d synsets and %d distinct synset names from WordNet %s in %s",
        result.synset_count,
        len(result.names),
        result.version,
        folder,
    )
    return result


def _read_data_file(
    path: Path, synset_types: frozenset[str], names: Counter[str], synsets_by_type: Counter[str]
) -> str | None:
    """Add the query of each synset in one data file to ``names``.

    Returns the version that the licence header names, or None without one.
    """
    try:
        return _read_data_lines(path, synset_types, names, synsets_by_type)
    except UnicodeDecodeError as error:
        # The Princeton files are ASCII, a subset of UTF-8.
        raise WordNetFormatError(f"{path} is not a WordNet data file: it is not UTF-8 text ({error})") from error


def _read_data_lines(
    path: Path, synset_types: frozenset[str], names: Counter[str], synsets_by_type: Counter[str]
) -> str | None:
    version = None
    with path.open(encoding="utf-8", newline="\n") as lines:
        for line_number, line in enumerate(lines, start=1):
            if line.startswith(_LICENCE_PREFIX):
                match = _VERSION_LINE.search(line)
                if match is not None and version is None:
                    version = match.group(1)
                continue
            synset_type, first_word = _parse_synset_line(line, path, line_number)
            if synset_type not in synset_types:
                raise WordNetFormatError(
                    f"{path}:{line_number}: synset type {synset_type!r} does not belong in {path.name} "
                    f"(expected {', '.join(sorted(synset_types))})"
                )
            synsets_by_type[synset_type] += 1
            names[query_of_word(first_word)] += 1
    return version


def _parse_synset_line(line: str, path: Path, line_number: int) -> tuple[str, str]:
    """Return the ss_type and the first word of one synset line."""
    fields = line.split(" ", 5)
    if len(fields) < 6:
        raise WordNetFormatError(f"{path}:{line_number}: expected a synset line, got {line[:80]!r}")
    offset, lex_filenum, synset_type, word_count, first_word = fields[:5]
    if not (offset.isdigit() and lex_filenum.isdigit()):
        raise WordNetFormatError(
            f"{path}:{line_number}: synset_offset {offset!r} and lex_filenum {lex_filenum!r} must be decimal numbers"
        )
    try:
        words = int(word_count, 16)
    except ValueError:
        words = 0
    if words < 1 or not first_word:
        raise WordNetFormatError(f"{path}:{line_number}: invalid w_cnt {word_count!r} or missing first word")
    return synset_type, first_word
