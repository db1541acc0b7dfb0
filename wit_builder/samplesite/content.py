"""Captions, topic sections and hand-written translations for the sample web site."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

_WORD = re.compile(r"[a-z]+")

#: A photo shows a concept when at least this many of its captions use one of the concept's words.
CONCEPT_MIN_CAPTIONS = 2

#: Words that signal a concept in English captions.
CONCEPT_WORDS: dict[str, frozenset[str]] = {
    "dog": frozenset({"dog", "dogs", "puppy", "puppies"}),
    "water": frozenset({"water", "pool", "lake", "river", "ocean", "sea", "waves", "wave", "swimming", "swims", "splashes"}),
    "beach": frozenset({"beach", "sand", "sandy", "shore"}),
    "snow": frozenset({"snow", "snowy", "ski", "skier", "skiing", "snowboarder", "snowboard"}),
    "ball": frozenset({"ball", "soccer", "football", "basketball", "baseball", "tennis", "volleyball"}),
    "bike": frozenset({"bike", "bikes", "bicycle", "bicycles", "biker", "bikers", "cyclist", "motorcycle"}),
    "child": frozenset({"child", "children", "boy", "boys", "girl", "girls", "kid", "kids", "toddler", "baby"}),
    "boy": frozenset({"boy", "boys"}),
    "girl": frozenset({"girl", "girls"}),
    "man": frozenset({"man", "men"}),
    "woman": frozenset({"woman", "women", "lady"}),
    "grass": frozenset({"grass", "grassy", "field", "lawn", "meadow"}),
    "street": frozenset({"street", "road", "sidewalk", "city", "building", "crowd"}),
    "rock": frozenset({"rock", "rocks", "rocky", "cliff", "mountain", "hill", "climbing", "climber"}),
}


@dataclass(frozen=True)
class Section:
    """A topic gallery of the site: its URL slug, heading and the concepts that put a photo in it."""

    slug: str
    title: str
    concepts: tuple[str, ...]


#: Sections in priority order. A photo goes to the first section with one of its concepts,
#: and to the last section when it has none of them.
SECTIONS: tuple[Section, ...] = (
    Section("dogs", "Dogs", ("dog",)),
    Section("snow", "Snow and mountains", ("snow", "rock")),
    Section("water", "Water and beach", ("water", "beach")),
    Section("sports", "Sports and bikes", ("ball", "bike")),
    Section("children", "Children", ("child",)),
    Section("people", "People and streets", ()),
)

#: Short real phrases in other languages, each true of any photo that shows all listed concepts.
#: The first matching phrase of a language is used.
TRANSLATIONS: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "de": (
        (("dog", "snow"), "Ein Hund läuft im Schnee"),
        (("dog", "water"), "Ein Hund spielt im Wasser"),
        (("dog", "grass"), "Ein Hund rennt über die Wiese"),
        (("dog",), "Ein Hund spielt draußen"),
        (("snow",), "Spaß im Schnee"),
        (("bike",), "Ein Radfahrer auf seinem Fahrrad"),
        (("ball",), "Ein Spiel mit dem Ball"),
        (("child", "water"), "Kinder spielen im Wasser"),
        (("child",), "Ein Kind spielt draußen"),
        (("man", "street"), "Ein Mann auf der Straße"),
    ),
    "fr": (
        (("dog", "grass"), "Un chien court dans l'herbe"),
        (("dog", "snow"), "Un chien dans la neige"),
        (("dog",), "Un chien joue dehors"),
        (("beach",), "Une journée à la plage"),
        (("water",), "Des jeux dans l'eau"),
        (("girl",), "Une petite fille qui joue"),
        (("bike",), "Un cycliste sur son vélo"),
        (("woman",), "Une femme en plein air"),
        (("man",), "Un homme en plein air"),
    ),
    "es": (
        (("dog", "water"), "Un perro en el agua"),
        (("dog", "snow"), "Un perro corre en la nieve"),
        (("dog",), "Un perro jugando al aire libre"),
        (("beach",), "Un día en la playa"),
        (("snow",), "Diversión en la nieve"),
        (("boy",), "Un niño jugando"),
        (("ball",), "Jugando con la pelota"),
        (("woman",), "Una mujer al aire libre"),
        (("man",), "Un hombre al aire libre"),
    ),
}

#: Headings of the language pages.
LANGUAGE_TITLES = {"de": "Unsere Lieblingsfotos", "fr": "Nos photos préférées", "es": "Nuestras fotos favoritas"}


def normalize_caption(caption: str) -> str:
    """Collapse whitespace as the extractor does, so that ground truth and candidates compare equal."""
    return " ".join(caption.split())


def load_captions(captions_csv: str | Path) -> dict[str, list[str]]:
    """Read an ``image,caption`` CSV into photo file name -> captions, in file order."""
    captions_csv = Path(captions_csv)
    if not captions_csv.is_file():
        raise FileNotFoundError(f"captions file not found: {captions_csv}")
    captions: dict[str, list[str]] = {}
    with captions_csv.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
            raise ValueError(f"{captions_csv} must have the columns image,caption (found {reader.fieldnames})")
        for row in reader:
            caption = normalize_caption(row["caption"] or "")
            if row["image"] and caption:
                captions.setdefault(row["image"], []).append(caption)
    return captions


def photo_concepts(captions: list[str]) -> set[str]:
    """Return the concepts that at least CONCEPT_MIN_CAPTIONS of a photo's captions mention."""
    word_sets = [set(_WORD.findall(caption.lower())) for caption in captions]
    concepts = set()
    for concept, words in CONCEPT_WORDS.items():
        mentions = sum(1 for caption_words in word_sets if caption_words & words)
        if mentions >= CONCEPT_MIN_CAPTIONS:
            concepts.add(concept)
    return concepts


def section_for(concepts: set[str]) -> Section:
    """Return the first section that shares a concept with the photo, else the last section."""
    for section in SECTIONS:
        if concepts.intersection(section.concepts):
            return section
    return SECTIONS[-1]


def translation_for(concepts: set[str], language: str) -> str | None:
    """Return the first phrase of ``language`` whose concepts the photo shows, or None."""
    for required, phrase in TRANSLATIONS[language]:
        if concepts.issuperset(required):
            return phrase
    return None
