"""Tests of wikitext stripping and tokenization.

The real snippets are copied unchanged from three English Wikipedia dump excerpts (text by
Wikipedia contributors, CC BY-SA), named in each snippet's comment:

- "pages-articles1 excerpt": enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
  from gensim 4.4.0's test data, also bundled in samples/wikipedia/;
- "2025-02-01 excerpt": enwiki-20250201-tiny_dump-70pages.xml.bz2, the tiny_dump.xml.bz2 test
  file of Zulko/wiki_dump_extractor;
- "table-markup excerpt": enwiki-table-markup.xml.bz2 from gensim 4.4.0's test data.

A long snippet is cut into parts where rows or paragraphs are left out, and each part is
copied unchanged.
"""

from __future__ import annotations

import random
import re

import pytest

from wit_builder.queries.dump import DumpReader, Namespaces
from wit_builder.queries.markup import (
    MarkupStripper,
    file_caption,
    is_file_option,
    remove_quote_runs,
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


def test_korean_file_namespace_keeps_caption():
    # kowiki's <siteinfo> names namespace 6 "파일" and namespace 14 "분류".
    namespaces = Namespaces.default()
    namespaces.add("파일", 6)
    namespaces.add("분류", 14)
    stripper = MarkupStripper(namespaces)

    text = "서울은 [[대한민국]]의 수도이다.\n[[파일:Seoul montage.jpg|섬네일|250px|alt=서울|서울의 풍경]]\n[[분류:서울]]"
    targets: list[str] = []
    assert stripper.strip(text, targets) == "서울은 대한민국의 수도이다.\n서울의 풍경"
    assert targets == ["대한민국"]


def test_japanese_file_namespace_and_alias():
    # jawiki's <siteinfo> names namespace 6 "ファイル", with the alias "画像".
    namespaces = Namespaces.default()
    namespaces.add("ファイル", 6)
    namespaces.add("画像", 6)
    stripper = MarkupStripper(namespaces)

    assert stripper.strip("[[ファイル:Tokyo Tower.jpg|thumb|200px|東京タワー]]") == "東京タワー"
    assert stripper.strip("[[画像:Tokyo Tower.jpg|right|夜の[[東京タワー]]]]") == "夜の東京タワー"
    assert stripper.strip("[[Image:Tokyo Tower.jpg|upright=0.8|東京タワー]]") == "東京タワー"


def test_image_alias_without_siteinfo():
    assert strip_markup("[[image:Fox.jpg|thumb|A fox]] [[IMAGE:Fox.jpg|200px]]") == "A fox"


def test_file_link_without_caption_is_removed():
    assert strip_markup("A [[File:Map.svg|thumb|300px|upright|alt=Map]] B") == "A B"
    assert strip_markup("A [[File:Map.svg]] B") == "A B"


def test_file_caption_with_template_and_link_options():
    # The dump excerpts have no file link with link=, so this case is written by hand.
    text = "[[File:Tree.jpg|thumb|100x100px|link=Oak|class=skin-invert|page=2|lang=fr|border|A {{convert|30|m}} [[oak]]]]"
    assert strip_markup(text) == "A oak"


@pytest.mark.parametrize(
    "option",
    ["thumb", "Thumbnail", "right", "left", "center", "none", "frameless", "border", "frame", "upright",
     "upright=1.2", "upright 0.8", "upright=.7", "220px", "x100px", "100x100px", "220 px", "alt=A fox",
     "link=Fox", "class=notpageimage", "page=3", "lang=de", "baseline", "text-top"],
)
def test_file_options_recognized(option):
    assert is_file_option(option)


@pytest.mark.parametrize("caption", ["A fox", "E=mc2 explained", "Right whale", "The thumb of a hand", "100 foxes"])
def test_captions_not_mistaken_for_options(caption):
    assert not is_file_option(caption)
    assert file_caption(f"thumb|{caption}") == caption


def test_media_link_keeps_label():
    assert strip_markup("Listen to [[Media:Anthem.ogg|the anthem]] [[Media:Other.ogg]] now") == "Listen to the anthem now"


# "Anarchism", 2025-02-01 excerpt.
ANARCHISM_ZENO_FILE = (
    '[[File:Paolo Monti - Servizio fotografico (Napoli, 1969) - BEIC '
    '6353768.jpg|thumb|upright=.7|[[Zeno of Citium]] ({{Circa|334|262 BC}}), whose '
    "''[[Republic (Zeno)|Republic]]'' inspired [[Peter "
    'Kropotkin]]{{Sfn|Marshall|1993|p=70}}]]'
)


def test_real_file_caption_with_links_and_templates():
    assert strip_markup(ANARCHISM_ZENO_FILE) == "Zeno of Citium (), whose Republic inspired Peter Kropotkin"


# "Abraham Lincoln", 2025-02-01 excerpt.
LINCOLN_GETTYSBURG_FILE = (
    "[[File:Lincoln's Gettysburg Address, Gettysburg, highlighted "
    'version.png|thumb|upright=1.25|Lincoln (absent his usual [[top hat]] and highlighted in '
    'red) at [[Gettysburg Battlefield|Gettysburg]] on November 19, 1863. Roughly three hours '
    'later, he delivered the [[Gettysburg Address]], one of the best-known speeches in '
    '[[history of the United States|American history]].<ref>{{cite book |last=Conant '
    "|first=Sean |date=2015 |title=The Gettysburg Address: Perspectives on Lincoln's "
    'Greatest Speech |url=https://books.google.com/books?id=_bmyBwAAQBAJ&pg=PR9 '
    '|location=New York|publisher=Oxford University Press |page=ix '
    '|isbn=978-0-19-022745-6}}</ref><ref>{{cite book |last=Holsinger |first=M. Paul '
    '|date=1999 |title=War and American Popular Culture: A Historical Encyclopedia '
    '|url=https://books.google.com/books?id=Oe4AOVHkJ9oC&pg=PA102 |location=Westport, CT '
    '|publisher=Greenwood Press |page=102 |isbn=978-0-313-29908-7}}</ref>|alt=Large group of '
    'people]]'
)


def test_real_file_caption_before_alt_option():
    assert strip_markup(LINCOLN_GETTYSBURG_FILE) == (
        "Lincoln (absent his usual top hat and highlighted in red) at Gettysburg on November 19, 1863. "
        "Roughly three hours later, he delivered the Gettysburg Address, one of the best-known speeches "
        "in American history."
    )


# "Abraham Lincoln", 2025-02-01 excerpt.
LINCOLN_PORTRAIT_FILE = (
    '[[File:Abraham Lincoln O-55, 1861-crop.jpg|thumb|left|alt=President Abraham Lincoln in '
    '1861|The first portrait of President Lincoln in 1861]]'
)


def test_real_file_caption_after_alt_option():
    assert strip_markup(LINCOLN_PORTRAIT_FILE) == "The first portrait of President Lincoln in 1861"


# "Animation", pages-articles1 excerpt.
ANIMATION_VASE_FILE = (
    '[[File:Vase animation.svg|right|250px|thumb|Reproduction of drawing on a pottery vessel '
    'found in Burnt City]]'
)


def test_real_file_options_before_caption():
    assert strip_markup(ANIMATION_VASE_FILE) == "Reproduction of drawing on a pottery vessel found in Burnt City"


# "Anarchism", pages-articles1 excerpt.
ANARCHISM_LEVELLERS_IMAGE = (
    '[[Image:Levellers declaration and standard.gif|thumb|upright|Woodcut from a [[Diggers]] '
    'document by [[William Everard (Digger)|William Everard]]]]'
)


def test_real_image_alias_keeps_caption():
    assert strip_markup(ANARCHISM_LEVELLERS_IMAGE) == "Woodcut from a Diggers document by William Everard"


# "Acid", pages-articles1 excerpt.
ACID_FILE_WITHOUT_CAPTION = (
    'reactions are described in terms of acid-base chemistry:\n'
    ':[[File:LewisAcid.png|374px]]\n'
    'In the first reaction a [[fluoride|fluoride ion]], F<sup>−</sup>, gives up an'
)


def test_real_file_without_caption_removed():
    assert strip_markup(ACID_FILE_WITHOUT_CAPTION) == (
        "reactions are described in terms of acid-base chemistry:\n\nIn the first reaction a fluoride ion, F−, gives up an"
    )


# "Ambiguity", pages-articles1 excerpt.
AMBIGUITY_CAPTION = (
    '[[File:Structural analysis of an ambiguous spanish sentence.svg|thumb|Structural '
    "analysis of an ambiguous Spanish sentence:<br /> '''Pepe vio a Pablo enfurecido''<br "
    '/>Interpretation 1: When Pepe was angry, then he saw Pablo<br />Interpretation 2: Pepe '
    'saw that Pablo was angry.<br />Here, the syntactic tree in figure represents '
    'interpretation 2.]]'
)


def test_real_file_caption_with_line_breaks():
    # The caption opens bold with ''' and closes with '': MediaWiki shows an apostrophe and italics.
    assert strip_markup(AMBIGUITY_CAPTION) == (
        "Structural analysis of an ambiguous Spanish sentence:\n"
        "'Pepe vio a Pablo enfurecido\n"
        "Interpretation 1: When Pepe was angry, then he saw Pablo\n"
        "Interpretation 2: Pepe saw that Pablo was angry.\n"
        "Here, the syntactic tree in figure represents interpretation 2."
    )


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


def test_links_nested_past_limit_stay_literal():
    text = "[[" * 25 + "Fox" + "]]" * 25
    assert strip_markup(text) == "[[" * 5 + "Fox" + "]]" * 5


def test_link_in_single_brackets():
    targets: list[str] = []
    assert MarkupStripper().strip("[[[Fox]]] and [[[Vixen]]", targets) == "[Fox] and [Vixen"
    assert targets == ["Fox", "Vixen"]


def test_external_links():
    text = "See [https://example.org/page the site] or [http://example.org] or https://example.org/x now."
    assert strip_markup(text) == "See the site or or now."


# "Andre Agassi", pages-articles1 excerpt.
AGASSI_TAG_REF = (
    'He was the first male player to have reached four consecutive Grand Slam finals since '
    '[[Rod Laver]] achieved the Grand Slam in 1969.{{#tag:ref|[[Roger Federer]] has since '
    'surpassed this feat, reaching ten consecutive Grand Slam finals from '
    '2005–2007.|group=lower-alpha}}  At the time, Agassi was also only the fourth player '
    'since Laver to be the reigning champion of three of four Grand Slam events, missing '
    'only the Wimbledon title.'
)


def test_real_links_inside_removed_template_not_collected():
    targets: list[str] = []
    MarkupStripper().strip(AGASSI_TAG_REF, targets)
    assert targets == ["Rod Laver"]


# "Arthur Schopenhauer", pages-articles1 excerpt.
SCHOPENHAUER_FURTHER_READING = (
    '* {{gutenberg author|id=Arthur+Schopenhauer | name=Arthur Schopenhauer}}\n'
    '* \'\'[http://www.logicien.fr Illustrated version of the "Art of Being Right"] and links '
    'to logic and sophisms used by the stratagems.\n'
    "* ''[http://coolhaus.de/art-of-controversy/ The Art Of Controversy (Die Kunst, Recht zu "
    "behalten)]''. (bilingual) [''[[The Art of Being Right]]'']"
)


def test_real_external_links_and_bracketed_link():
    targets: list[str] = []
    text = MarkupStripper().strip(SCHOPENHAUER_FURTHER_READING, targets)
    assert text == (
        'Illustrated version of the "Art of Being Right" and links to logic and sophisms used by the stratagems.\n'
        "The Art Of Controversy (Die Kunst, Recht zu behalten). (bilingual) [The Art of Being Right]"
    )
    assert targets == ["The Art of Being Right"]


# Templates and tables --------------------------------------------------------------------


def test_nested_templates_removed():
    text = "A {{Infobox|name={{lang|fr|Renard}}|image={{#if:{{{1|}}}|x|y}}}} fox {{cite web|url=x}}."
    assert strip_markup(text) == "A fox ."


def test_template_parameters_removed():
    assert remove_templates("a {{{1}}} b {{{name|{{default}}}}} c") == "a  b  c"


def test_unclosed_template_keeps_inner_templates_removed():
    assert remove_templates("start {{unclosed {{inner}} rest") == "start {{unclosed  rest"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{{a}}}", "}"),
        ("{{a}}}}", "}}"),
        ("{{{{a}}}}", "{}"),
        ("{{{{{a}}}}}", ""),
        ("}} {{a}} {{", "}}  {{"),
        ("{{a|{b}}}", "}"),
        ("{ {{a}} }", "{  }"),
    ],
)
def test_brace_runs_paired_like_mediawiki(text, expected):
    assert remove_templates(text) == expected


def test_multiline_template_removed():
    text = "Intro.\n{{Infobox animal\n| name = Fox\n| image = Fox.jpg\n}}\nThe fox is quick."
    assert strip_markup(text) == "Intro.\n\nThe fox is quick."


# "Afghanistan", pages-articles1 excerpt.
AFGHANISTAN_LEAD = (
    "'''Afghanistan''' {{IPAc-en|audio=En-us-Afghanistan.ogg|æ|f|ˈ|ɡ|æ|n|ɨ|s|t|æ|n}} "
    "([[Pashto language|Pashto]]/[[Dari language|Dari]]: {{nq|افغانستان}}, ''Afġānistān''), "
    "officially the '''Islamic Republic of Afghanistan''',"
)


def test_real_templates_removed_from_lead():
    assert strip_markup(AFGHANISTAN_LEAD) == (
        "Afghanistan (Pashto/Dari: , Afġānistān), officially the Islamic Republic of Afghanistan,"
    )


# "Afghanistan", pages-articles1 excerpt.
AFGHANISTAN_INFOBOX_NAME = (
    '{{longitem|{{nobold|{{Nastaliq|{{resize|120%|د افغانستان اسلامي '
    "جمهوریت}}}}<br/>{{nowrap|''Da Afġānistān Islāmī "
    "Jumhoryat''{{Spaces|2}}{{resize|70%|([[Pashto language|Pashto]])}}}}}}}}"
)


def test_real_four_deep_templates_removed():
    assert remove_templates(AFGHANISTAN_INFOBOX_NAME) == ""
    assert strip_markup("Before " + AFGHANISTAN_INFOBOX_NAME + " after") == "Before after"


def test_real_parser_function_removed():
    assert strip_markup(AGASSI_TAG_REF) == (
        "He was the first male player to have reached four consecutive Grand Slam finals since Rod Laver "
        "achieved the Grand Slam in 1969. At the time, Agassi was also only the fourth player since Laver "
        "to be the reigning champion of three of four Grand Slam events, missing only the Wimbledon title."
    )


def test_table_removed():
    text = 'Before.\n{| class="wikitable"\n|+ Caption\n! Year !! Value\n|-\n| 1990 || [[Fox]]\n|}\nAfter.'
    assert strip_markup(text) == "Before.\nAfter."


def test_nested_table_removed():
    text = "Before.\n{|\n| outer\n|\n{|\n| inner\n|}\n| more outer\n|}\nAfter."
    assert remove_tables(text) == "Before.\nAfter."


def test_indented_table_removed():
    assert remove_tables("Before.\n:{| style=\"x\"\n| cell\n|}\nAfter.") == "Before.\nAfter."


def test_unclosed_table_does_not_swallow_prose():
    # None of the dump excerpts has a table that is never closed, so this case is written by hand.
    text = "Before.\n{| class=wikitable\n| cell one\ncontinued\n| cell two\n{{end}}\n\nProse after the table."
    assert strip_markup(text) == "Before.\n\nProse after the table."


def test_stray_table_rows_removed():
    text = "{{s-start}}\n|-\n| Preceded by\n! Header\nProse stays."
    assert strip_markup(text) == "Prose stays."


def test_indented_stray_table_rows_removed():
    assert remove_tables(" |-\n | Preceded by\nProse stays.") == "Prose stays."
    assert remove_tables("Prose first.\n  ! Header\n\t| cell") == "Prose first."


# "Aikido", pages-articles1 excerpt.
AIKIDO_TABLE = (
    "Some dojos do not allow students to take the test to obtain a ''dan'' rank unless they "
    'are 16 or older.\n'
    '{| class="wikitable" style="float:left;"\n'
    '|-\n'
    '! rank !! belt !! color !! type\n'
    '|-\n'
    "| ''kyū'' || [[File:Judo white belt.svg|65px]] || white || ''mudansha'' / ''yūkyūsha''\n"
    '|-\n'
    "| ''dan'' || [[File:Judo black belt.svg|65px]] || black || ''yūdansha''\n"
    '|}\n'
    '\n'
    'The uniform worn for practicing aikido'
)


def test_real_table_with_file_links_removed():
    assert strip_markup(AIKIDO_TABLE) == (
        "Some dojos do not allow students to take the test to obtain a dan rank unless they are 16 or older.\n"
        "\n"
        "The uniform worn for practicing aikido"
    )


# "Alaska", pages-articles1 excerpt: the two paragraphs after the heading, rows 2 to 49 of
# the first inner table and rows 51 to 98 of the second are left out.
ALASKA_SECTION_HEADING = (
    '===Cities and census-designated places (by population)===\n'
)
ALASKA_TABLE_START = (
    '\n'
    '{|\n'
    '|\n'
    '{| class="wikitable"\n'
    '|-\n'
    '! № !! Community name !! Type !! [[2010 United States Census|2010]] Pop.\n'
    '|-\n'
    '| 1 || [[Anchorage, Alaska|Anchorage]] || City || style="text-align:right;"| 291,826\n'
)
ALASKA_TABLE_MIDDLE = (
    '|-\n'
    '| 50 || [[Houston, Alaska|Houston]] || City || style="text-align:right;"| 1,912\n'
    '|}\n'
    '| valign="top" |\n'
    '{| class="wikitable"\n'
    '|-\n'
    '! № !! Community name !! Type !! [[2010 United States Census|2010]] Pop.\n'
    '|-\n'
)
ALASKA_TABLE_END = (
    '| 99 || [[Happy Valley, Alaska|Happy Valley]] || CDP || style="text-align:right;"| 593\n'
    '|-\n'
    '| 100 || [[Big Delta, Alaska|Big Delta]] || CDP || style="text-align:right;"| 591\n'
    '|}\n'
    '|}\n'
    '\n'
    '==Education=='
)


def test_real_nested_tables_removed():
    text = ALASKA_SECTION_HEADING + ALASKA_TABLE_START + ALASKA_TABLE_MIDDLE + ALASKA_TABLE_END
    assert strip_markup(text) == "Cities and census-designated places (by population)\n\nEducation"


# "Economy of Estonia", table-markup excerpt: rows 2 to 23 of 24 are left out.
ESTONIA_TABLE_START = (
    '== Natural resources ==\n'
    '{| class="sortable wikitable" style="font-size:90%"\n'
    ' |- style="font-size:100%; text-align:left"\n'
    ' ! style="width:200px;"|[[natural resource|Resource]]!! style="width:200px;"|Location!! '
    'style="width:200px;"|[[Resource|Reserves]]\n'
    ' |-\n'
    ' | [[Oil shale]]||north-east|| style="text-align:right"|1,137,700,000 mln t\n'
)
ESTONIA_TABLE_END = (
    ' |-\n'
    ' | [[Subsoil]] ||across the country|| style="text-align:right"| 21,1&nbsp;km³\n'
    ' |}\n'
    '\n'
    '== See also =='
)


def test_real_indented_table_rows_removed():
    assert strip_markup(ESTONIA_TABLE_START + ESTONIA_TABLE_END) == "Natural resources\n\nSee also"


# Tags, comments and entities -------------------------------------------------------------


def test_references_removed():
    text = 'Foxes<ref name="a">{{cite book|title=Foxes}}</ref> hunt<ref name="a" /> mice.<ref>Smith 2001</ref>\n<references />'
    assert strip_markup(text) == "Foxes hunt mice."


def test_unclosed_ref_does_not_swallow():
    assert strip_markup("Foxes<ref name=x> hunt mice at night.") == "Foxes hunt mice at night."
    assert strip_markup("Foxes<ref> hunt<ref> mice<math> at night.") == "Foxes hunt mice at night."


def test_unclosed_ref_runs_to_next_closing_tag():
    # MediaWiki's preprocessor ends an element at the next closing tag of its name.
    assert strip_markup("A<ref>one B<ref>two</ref> C</ref> D") == "A C D"


def test_comments_math_gallery_removed():
    text = (
        "A <!-- hidden note --> fox. <math>x^2 + {y}</math> Formula.\n"
        "<gallery>\nFile:A.jpg|Caption A\n</gallery>\nEnd."
    )
    assert strip_markup(text) == "A fox. Formula.\n\nEnd."


def test_unclosed_comment_runs_to_end():
    assert strip_markup("Visible <!-- hidden [[link]] {{template") == "Visible"


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


# "Andre Agassi", pages-articles1 excerpt.
AGASSI_NAMED_REF = (
    'He competed in the [[1995 Australian Open]] (his first appearance at the event) and '
    'won, beating Sampras in a four-set final.<ref name="greatath" /> Agassi and Sampras met '
    'in five tournament finals in 1995, all on [[hardcourt]], with Agassi winning three.'
)


def test_real_self_closing_ref_removed():
    assert strip_markup(AGASSI_NAMED_REF) == (
        "He competed in the 1995 Australian Open (his first appearance at the event) and won, beating Sampras "
        "in a four-set final. Agassi and Sampras met in five tournament finals in 1995, all on hardcourt, "
        "with Agassi winning three."
    )


def test_real_refs_with_templates_removed():
    assert "Gettysburg Address: Perspectives" not in strip_markup(LINCOLN_GETTYSBURG_FILE)
    assert "Greenwood Press" not in strip_markup(LINCOLN_GETTYSBURG_FILE)


# "Transport in Angola", pages-articles1 excerpt.
ANGOLA_REFERENCES = (
    '== References ==\n'
    "''This article comes from the [[CIA World Factbook]] 2003.''\n"
    '<references/>\n'
    '\n'
    '{{CIA World Factbook}}\n'
    '{{Economy of Angola}}'
)


def test_real_references_tag_removed():
    assert strip_markup(ANGOLA_REFERENCES) == "References\nThis article comes from the CIA World Factbook 2003."


# "Albedo", 2025-02-01 excerpt.
ALBEDO_COMMENT = (
    '<!--===Variability and recent/spatiotemporal changes===-->\n'
    'In 2021, scientists reported that Earth dimmed by ~0.5% over two decades (1998–2017) as '
    'measured by earthshine'
)


def test_real_comment_removed():
    assert strip_markup(ALBEDO_COMMENT) == (
        "In 2021, scientists reported that Earth dimmed by ~0.5% over two decades (1998–2017) as measured by earthshine"
    )


# "Albedo", 2025-02-01 excerpt.
ALBEDO_MATH = (
    'For land surfaces, it has been shown that the albedo at a particular [[solar zenith '
    "angle]] ''θ''<sub>''i''</sub> can be approximated by the proportionate sum of two "
    'terms:\n'
    '* the [[directional-hemispherical reflectance]] at that solar zenith angle, <math>{\\bar '
    '\\alpha(\\theta_i)}</math>, sometimes referred to as black-sky albedo, and\n'
    '* the [[bi-hemispherical reflectance]], <math>\\bar{ \\bar \\alpha}</math>, sometimes '
    'referred to as white-sky albedo.\n'
    'with <math>{1-D}</math> being the proportion of direct radiation from a given solar '
    'angle, and <math>{D}</math> being the proportion of diffuse illumination, the actual '
    'albedo <math>{\\alpha}</math> (also called blue-sky albedo) can then be given as:\n'
    '\n'
    ':<math>\\alpha = (1 - D) \\bar\\alpha(\\theta_i) + D \\bar{\\bar\\alpha}.</math>\n'
    '\n'
    'This formula is important'
)


def test_real_math_removed():
    assert strip_markup(ALBEDO_MATH) == (
        "For land surfaces, it has been shown that the albedo at a particular solar zenith angle θi can be "
        "approximated by the proportionate sum of two terms:\n"
        "the directional-hemispherical reflectance at that solar zenith angle, , sometimes referred to as "
        "black-sky albedo, and\n"
        "the bi-hemispherical reflectance, , sometimes referred to as white-sky albedo.\n"
        "with being the proportion of direct radiation from a given solar angle, and being the proportion of "
        "diffuse illumination, the actual albedo (also called blue-sky albedo) can then be given as:\n"
        "\n"
        "This formula is important"
    )


# "Algeria", pages-articles1 excerpt.
ALGERIA_GALLERY = (
    '==Geography==\n'
    '{{Main|Geography of Algeria}}\n'
    '<gallery mode=packed>\n'
    'File:Kabylie-neige.jpg|The [[Djurdjura]] Range in snow\n'
    'File:Tadrart Rouge.jpg|The [[Tadrart Rouge]] near [[Djanet]].\n'
    'File:El Tarf-Algerie.jpg|[[El Taref Province]], In eastern Algeria.\n'
    'File:Ouarsenis 2012, Wilaya de Tissemsilt (Algérie).jpg|[[Ouarsenis]], range of '
    'mountains in North-Western (1985m)\n'
    'File:Les Aiguades.jpg|Maritime front of [[Bejaïa]]\n'
    "File:Djanet, Tassili.jpg|The [[Tassili]] n'Ajjer.\n"
    'File:Seraidi-Annaba.jpg|[[Edough]] National Park, [[Annaba]]\n'
    '</gallery>\n'
    'Algeria is the largest country in Africa'
)


def test_real_gallery_removed_with_captions():
    assert strip_markup(ALGERIA_GALLERY) == "Geography\n\nAlgeria is the largest country in Africa"


# "Albedo", 2025-02-01 excerpt.
ALBEDO_SUBSCRIPTS = (
    "''Surface albedo'' is defined as the ratio of [[Radiosity (radiometry)|radiosity]] "
    "''J''<sub>e</sub> to the [[irradiance]] ''E''<sub>e</sub> (flux per unit area"
)


def test_real_subscripts_keep_text():
    assert strip_markup(ALBEDO_SUBSCRIPTS) == (
        "Surface albedo is defined as the ratio of radiosity Je to the irradiance Ee (flux per unit area"
    )


# "Albedo", 2025-02-01 excerpt.
ALBEDO_SUPERSCRIPTS = (
    'black carbon aerosols from fossil fuels is +0.2 W m<sup>−2</sup>, with a range +0.1 to '
    '+0.4 W m<sup>−2</sup>.'
)


def test_real_superscripts_keep_text():
    assert strip_markup(ALBEDO_SUPERSCRIPTS) == (
        "black carbon aerosols from fossil fuels is +0.2 W m−2, with a range +0.1 to +0.4 W m−2."
    )


# "Achilles", 2025-02-01 excerpt.
ACHILLES_ENTITIES = (
    'as Pliny states (to the "Race-course" he gives a length of 80&nbsp;miles, '
    '{{circa|120}}&nbsp;km, whereas the spit measures {{circa|70}}&nbsp;km today).'
)


def test_real_no_break_spaces_decoded():
    assert strip_markup(ACHILLES_ENTITIES) == (
        'as Pliny states (to the "Race-course" he gives a length of 80 miles, km, whereas the spit measures km today).'
    )


# "Academy Award for Best Production Design", pages-articles1 excerpt.
ACADEMY_AWARD_HEADING = (
    '==Best Art Direction &ndash; Set Decoration==\n'
)


def test_real_entity_in_heading_decoded():
    assert strip_markup(ACADEMY_AWARD_HEADING) == "Best Art Direction – Set Decoration"


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


def test_quote_runs_paired_per_line():
    assert remove_quote_runs("''a'''\n''b''") == "a'\nb"
    assert remove_quote_runs("''a''\n'''b'''") == "a\nb"


@pytest.mark.parametrize(
    "text, expected",
    [
        # One italic and one bold run: the bold one shows as an apostrophe and italics.
        ("''x l'''amour", "x l'amour"),
        # Of three bold runs, the first after a one-letter word is picked,
        ("''x les'''a y l'''b zz'''", "x lesa y l'b zz"),
        # else the first after a longer word,
        ("''x '''a les'''b cc'''", "x a les'b cc"),
        # else the first after a space.
        ("''x '''y", "x 'y"),
        # Six apostrophes are one apostrophe and bold italics.
        ("''''''x'''''", "'x"),
    ],
)
def test_bold_run_read_as_apostrophe(text, expected):
    assert remove_quote_runs(text) == expected


# "Anarchism", pages-articles1 excerpt.
ANARCHISM_UNCLOSED_ITALIC = (
    '* David Van Deusen, 2015, '
    '[http://news.infoshop.org/anarchist-news/rise-and-fall-green-mountain-anarchist-collectiv'
    "e ''The Rise and Fall of The Green Mountain Anarchist Collective' ].\n"
    '\n'
    '==External links==\n'
    '{{Sister project '
    'links|voy=no|n=no|v=no|b=Subject:Anarchism|s=Portal:Anarchism|d=Q6199}}\n'
    '* {{DMOZ|Society/Politics/Anarchism/}}\n'
    '* [http://anarchism.pageabode.com/afaq/index.html "An Anarchist FAQ '
    'Webpage"]&nbsp;–[[An Anarchist FAQ]]\n'
    '* {{In Our Time|Anarchism|p0038x9t|Anarchism}}\n'
    '* [http://www.ditext.com/anarchism/ Anarchism: A Bibliography]'
)


def test_real_unclosed_italic_does_not_swallow_page():
    assert strip_markup(ANARCHISM_UNCLOSED_ITALIC) == (
        "David Van Deusen, 2015, The Rise and Fall of The Green Mountain Anarchist Collective' .\n"
        "\n"
        "External links\n"
        "\n"
        '"An Anarchist FAQ Webpage" –An Anarchist FAQ\n'
        "\n"
        "Anarchism: A Bibliography"
    )


# "Achilles", pages-articles1 excerpt.
ACHILLES_POSSESSIVE = (
    "Many Homeric scholars argued that episode inspired many details in the ''Iliad'''s "
    "description of the death of Patroclus and Achilles' reaction to it."
)


def test_real_italic_possessive_keeps_apostrophe():
    assert strip_markup(ACHILLES_POSSESSIVE) == (
        "Many Homeric scholars argued that episode inspired many details in the Iliad's description of the "
        "death of Patroclus and Achilles' reaction to it."
    )


# "Animal Farm", pages-articles1 excerpt.
ANIMAL_FARM_POSSESSIVE = (
    "* ''[[Władysław Reymont#Revolt|Bunt]]'' (Revolt), published in 1924, is a book by "
    "Polish [[Nobel laureate]] [[Władysław Reymont]] with a theme similar to ''Animal "
    "Farm'''s."
)


def test_real_italic_possessive_after_links():
    assert strip_markup(ANIMAL_FARM_POSSESSIVE) == (
        "Bunt (Revolt), published in 1924, is a book by Polish Nobel laureate Władysław Reymont with a theme "
        "similar to Animal Farm's."
    )


# "Amateur astronomy", pages-articles1 excerpt.
AMATEUR_ASTRONOMY_EPOCH = (
    "Traditional printed sources are subtitled by the '[[Epoch (astronomy)|''epoch'' year]], "
    'which refers to the positions of celestial objects at a given time to the nearest year '
    '(e.g., J2005, J2007).'
)


def test_real_quotes_paired_before_links():
    # MediaWiki pairs quote runs with each link still a placeholder, so the apostrophe before
    # "[[" does not join the '' of the label into a bold run.
    assert strip_markup(AMATEUR_ASTRONOMY_EPOCH) == (
        "Traditional printed sources are subtitled by the 'epoch year, which refers to the positions of "
        "celestial objects at a given time to the nearest year (e.g., J2005, J2007)."
    )


def test_headings_keep_title():
    assert strip_markup("Intro.\n== History ==\nText.\n===Early years===\nMore.") == (
        "Intro.\nHistory\nText.\nEarly years\nMore."
    )


def test_lists_and_switches():
    assert strip_markup("__NOTOC__\n* one\n** two\n# three\n: indented\n; term\n----\nEnd") == (
        "one\ntwo\nthree\nindented\nterm\n\nEnd"
    )


# "Alkali metal", pages-articles1 excerpt.
ALKALI_METAL_TOC = (
    'both beneficial and harmful.\n'
    '__TOC__\n'
    '{{clear left}}\n'
    '\n'
    '==Properties=='
)


def test_real_behavior_switch_removed():
    assert strip_markup(ALKALI_METAL_TOC) == "both beneficial and harmful.\n\nProperties"


def test_empty_and_plain_text():
    assert strip_markup("") == ""
    assert strip_markup("Plain text only.") == "Plain text only."


def test_other_spaces_become_one_space():
    assert strip_markup("a\u00a0b\tc\u2009d\u3000e\u200bf  g") == "a b c d e f g"


# Whole dumps -----------------------------------------------------------------------------

# Text that only markup leaves behind, none of which the dump excerpts' prose contains.
_MARKUP_REMNANTS = (
    "{{", "}}", "{|", "|}", "|-", "[[", "]]", "[[File:", "[[Image:", "thumb|", "px|", "alt=", "link=",
    "<ref", "</ref>", "<math", "<gallery", "&nbsp;", "&amp;", "''", "<!--", "-->",
)
_BEHAVIOR_SWITCH = re.compile(r"__[A-Z]+__")
# "upright" is also an English word ("as they walk upright" in "Animal Farm"), so only the
# option's own forms count: "upright=1.2", "upright 0.8".
_UPRIGHT_OPTION = re.compile(r"\bupright\s*(?:=|\d)", re.IGNORECASE)


def _markup_remnants(text: str) -> list[str]:
    found = [remnant for remnant in _MARKUP_REMNANTS if remnant in text]
    found += _BEHAVIOR_SWITCH.findall(text)
    found += _UPRIGHT_OPTION.findall(text)
    found += [f"option line {line!r}" for line in text.split("\n") if line and is_file_option(line)]
    return found


def test_dump_pages_leave_no_markup(shared_data):
    dumps = sorted((shared_data / "wikipedia").glob("*.bz2"))
    assert dumps, f"no .bz2 dumps in {shared_data / 'wikipedia'}"

    leaks = []
    stripped_pages = 0
    for dump in dumps:
        reader = DumpReader(dump, keep_namespaces=None)
        stripper = None
        for page in reader:
            if stripper is None:
                # The reader has read <siteinfo> by the time it yields the first page.
                stripper = MarkupStripper(reader.namespaces)
            stripped_pages += 1
            for remnant in _markup_remnants(stripper.strip(page.text)):
                leaks.append(f"{dump.name}: {page.title}: {remnant}")

    assert stripped_pages > 100
    assert leaks == []


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
