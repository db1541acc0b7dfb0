"""Tests of wikitext stripping and tokenization."""

from __future__ import annotations

import random

import pytest

from wit_builder.queries.dump import Namespaces
from wit_builder.queries.markup import (
    MarkupStripper,
    file_caption,
    is_file_option,
    remove_tables,
    remove_templates,
    strip_markup,
)
from wit_builder.queries.tokens import has_letter, iter_token_runs, tokenize


# File and image links -----------------------------------------------------------------


def test_file_link_keeps_only_caption():
    text = "[[File:Foo.jpg|thumb|right|220px|upright=1.2|alt=A fox|A [[red fox]] in snow]]"
    assert strip_markup(text) == "A red fox in snow"


def test_image_alias_keeps_only_caption():
    text = "Before. [[Image:Vulpes vulpes.jpg|left|frameless|x100px|The ''[[Vulpes|red]]'' fox]] After."
    assert strip_markup(text) == "Before. The red fox After."


def test_local_file_namespace_from_siteinfo():
    namespaces = Namespaces.default()
    namespaces.add("Datei", 6)
    stripper = MarkupStripper(namespaces)
    assert stripper.strip("[[Datei:Fuchs.jpg|mini|links|Ein Fuchs]]") == "Ein Fuchs"
    assert strip_markup("[[Datei:Fuchs.jpg|Ein Fuchs]]") == "Ein Fuchs"


def test_file_link_without_caption_is_removed():
    assert strip_markup("A [[File:Map.svg|thumb|300px|upright|alt=Map]] B") == "A B"
    assert strip_markup("A [[File:Map.svg]] B") == "A B"


def test_file_caption_with_template_and_link_options():
    text = "[[File:Tree.jpg|thumb|100x100px|link=Oak|class=skin-invert|page=2|lang=fr|border|A {{convert|30|m}} [[oak]]]]"
    assert strip_markup(text) == "A oak"


@pytest.mark.parametrize(
    "option",
    ["thumb", "Thumbnail", "right", "left", "center", "none", "frameless", "border", "frame", "upright",
     "upright=1.2", "upright 0.8", "220px", "x100px", "100x100px", "220 px", "alt=A fox", "link=Fox",
     "class=notpageimage", "page=3", "lang=de", "baseline", "text-top"],
)
def test_file_options_recognized(option):
    assert is_file_option(option)


@pytest.mark.parametrize("caption", ["A fox", "E=mc2 explained", "Right whale", "The thumb of a hand", "100 foxes"])
def test_captions_not_mistaken_for_options(caption):
    assert not is_file_option(caption)
    assert file_caption(f"thumb|{caption}") == caption


def test_media_link_keeps_label():
    assert strip_markup("Listen to [[Media:Anthem.ogg|the anthem]] [[Media:Other.ogg]] now") == "Listen to the anthem now"


# Links -----------------------------------------------------------------------------------


def test_links_keep_label_or_target():
    assert strip_markup("The [[red fox]] and [[Vulpes vulpes|red foxes]] are [[fox]]es.") == (
        "The red fox and red foxes are foxes."
    )


def test_category_and_interlanguage_links_removed():
    text = "Foxes hunt.\n[[Category:Canids|Fox]]\n[[de:Rotfuchs]]\n[[zh-min-nan:Hô͘-lî]]\n[[Kategorie:Tiere]]"
    namespaces = Namespaces.default()
    namespaces.add("Kategorie", 14)
    assert MarkupStripper(namespaces).strip(text) == "Foxes hunt."


def test_colon_links_shown_inline():
    assert strip_markup("See [[:Category:Foxes|fox articles]] and [[:File:Fox.jpg|the photo]].") == (
        "See fox articles and the photo."
    )


def test_interwiki_and_namespace_links():
    assert strip_markup("A [[wikt:vixen]] is a [[Wikipedia:Glossary|term]].") == "A vixen is a term."
    assert strip_markup("[[Help:Editing (basics)|]] text") == "Editing text"


def test_pipe_trick():
    assert strip_markup("[[Mercury (planet)|]] is small") == "Mercury is small"


def test_link_targets_collected():
    targets: list[str] = []
    MarkupStripper().strip(
        "[[Red fox|foxes]], [[Arctic fox#Diet]], [[File:F.jpg|thumb|[[Vixen]]]], [[Category:X]], "
        "[[de:Fuchs]], [[Help:Links]], [[#Section]]",
        targets,
    )
    assert targets == ["Red fox", "Arctic fox", "Vixen"]


def test_unclosed_link_stays_literal():
    assert strip_markup("A [[broken link and [[fox]] text") == "A [[broken link and fox text"
    assert strip_markup("stray ]] closer") == "stray ]] closer"


def test_external_links():
    text = "See [https://example.org/page the site] or [http://example.org] or https://example.org/x now."
    assert strip_markup(text) == "See the site or or now."


# Templates and tables --------------------------------------------------------------------


def test_nested_templates_removed():
    text = "A {{Infobox|name={{lang|fr|Renard}}|image={{#if:{{{1|}}}|x|y}}}} fox {{cite web|url=x}}."
    assert strip_markup(text) == "A fox ."


def test_template_parameters_removed():
    assert remove_templates("a {{{1}}} b {{{name|{{default}}}}} c") == "a  b  c"


def test_unclosed_template_keeps_inner_templates_removed():
    assert remove_templates("start {{unclosed {{inner}} rest") == "start {{unclosed  rest"


def test_multiline_template_removed():
    text = "Intro.\n{{Infobox animal\n| name = Fox\n| image = Fox.jpg\n}}\nThe fox is quick."
    assert strip_markup(text) == "Intro.\n\nThe fox is quick."


def test_table_removed():
    text = 'Before.\n{| class="wikitable"\n|+ Caption\n! Year !! Value\n|-\n| 1990 || [[Fox]]\n|}\nAfter.'
    assert strip_markup(text) == "Before.\nAfter."


def test_nested_table_removed():
    text = "Before.\n{|\n| outer\n|\n{|\n| inner\n|}\n| more outer\n|}\nAfter."
    assert remove_tables(text) == "Before.\nAfter."


def test_indented_table_removed():
    assert remove_tables("Before.\n:{| style=\"x\"\n| cell\n|}\nAfter.") == "Before.\nAfter."


def test_unclosed_table_does_not_swallow_prose():
    text = "Before.\n{| class=wikitable\n| cell one\ncontinued\n| cell two\n{{end}}\n\nProse after the table."
    assert strip_markup(text) == "Before.\n\nProse after the table."


def test_stray_table_rows_removed():
    text = "{{s-start}}\n|-\n| Preceded by\n! Header\nProse stays."
    assert strip_markup(text) == "Prose stays."


# Tags, comments and entities -------------------------------------------------------------


def test_references_removed():
    text = 'Foxes<ref name="a">{{cite book|title=Foxes}}</ref> hunt<ref name="a" /> mice.<ref>Smith 2001</ref>\n<references />'
    assert strip_markup(text) == "Foxes hunt mice."


def test_unclosed_ref_does_not_swallow():
    assert strip_markup("Foxes<ref name=x> hunt mice at night.") == "Foxes hunt mice at night."


def test_comments_math_gallery_removed():
    text = (
        "A <!-- hidden note --> fox. <math>x^2 + {y}</math> Formula.\n"
        "<gallery>\nFile:A.jpg|Caption A\n</gallery>\nEnd."
    )
    assert strip_markup(text) == "A fox. Formula.\n\nEnd."


def test_html_tags_keep_inner_text():
    text = 'A <b>bold</b> <span style="color:red">red</span> fox<br/>jumps <sup>2</sup> <small>over</small>.'
    assert strip_markup(text) == "A bold red fox\njumps 2 over."


def test_literal_angle_brackets_kept():
    assert strip_markup("if a < b and c > d then") == "if a < b and c > d then"
    assert strip_markup("an unknown <fox> tag") == "an unknown <fox> tag"


def test_html_entities_decoded():
    assert strip_markup("Caf&eacute;&nbsp;au lait &amp; 5&nbsp;km &lt;ref&gt;") == "Café au lait & 5 km <ref>"


def test_nowiki_content_is_literal():
    assert strip_markup("Write <nowiki>[[not a link]]</nowiki> here") == "Write [[not a link]] here"


# Formatting ------------------------------------------------------------------------------


def test_bold_and_italic_removed():
    assert strip_markup("'''Anarchism''' is a ''political'' '''''philosophy'''''.") == (
        "Anarchism is a political philosophy."
    )


def test_unclosed_italic_does_not_swallow_page():
    text = "The ''unclosed italic starts here.\n\nSecond paragraph with [[link]].\n\nThird paragraph."
    assert strip_markup(text) == "The unclosed italic starts here.\n\nSecond paragraph with link.\n\nThird paragraph."


def test_four_apostrophes_keep_one():
    assert strip_markup("the ''''Fox'''' name") == "the 'Fox' name"


def test_headings_keep_title():
    assert strip_markup("Intro.\n== History ==\nText.\n===Early years===\nMore.") == (
        "Intro.\nHistory\nText.\nEarly years\nMore."
    )


def test_lists_and_switches():
    assert strip_markup("__NOTOC__\n* one\n** two\n# three\n: indented\n; term\n----\nEnd") == (
        "one\ntwo\nthree\nindented\nterm\n\nEnd"
    )


def test_empty_and_plain_text():
    assert strip_markup("") == ""
    assert strip_markup("Plain text only.") == "Plain text only."


# Tokens ----------------------------------------------------------------------------------


def test_tokenize_keeps_internal_apostrophes_and_hyphens():
    assert tokenize("Don't O'Brien's well-known Jean-Paul - x_y 'quoted'") == [
        "Don't", "O'Brien's", "well-known", "Jean-Paul", "x", "y", "quoted",
    ]


def test_tokenize_keeps_case_unless_lowercase():
    assert tokenize("The Fox") == ["The", "Fox"]
    assert tokenize("The Fox", lowercase=True) == ["the", "fox"]


def test_tokenize_unicode_words():
    assert tokenize("Étienne de La Boétie, Zürich, Москва, 東京") == [
        "Étienne", "de", "La", "Boétie", "Zürich", "Москва", "東京",
    ]


def test_token_runs_break_at_punctuation_and_lines():
    text = "New York City, in the United States.\nNew line here (and brackets)"
    assert list(iter_token_runs(text)) == [
        ["New", "York", "City"],
        ["in", "the", "United", "States"],
        ["New", "line", "here"],
        ["and", "brackets"],
    ]


def test_number_tokens_have_no_letter():
    assert not has_letter("1990")
    assert not has_letter("3-4")
    assert has_letter("3D")
    assert has_letter("F-16")


def test_malformed_markup_never_raises():
    fragments = ["{{", "}}", "{{{", "}}}", "[[", "]]", "[[File:", "|", "{|", "|}", "\n", "''", "'''", "<ref>",
                 "</ref>", "<!--", "-->", "<b>", "==", "[http://x", "]", "&amp", "text ", "Category:", ":"]
    generator = random.Random(7)
    for _ in range(500):
        text = "".join(generator.choice(fragments) for _ in range(generator.randint(1, 40)))
        assert isinstance(strip_markup(text), str), text
