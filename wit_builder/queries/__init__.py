"""Queries stage: build the query list (unigrams, bigrams, article titles) from a Wikipedia dump."""

from wit_builder.queries.build import QueryBuildResult, build_queries, load_queries
from wit_builder.queries.dump import DumpFormatError, DumpReader, Namespaces, WikiPage, iter_articles
from wit_builder.queries.markup import MarkupStripper, strip_markup
from wit_builder.queries.tokens import iter_token_runs, tokenize

__all__ = [
    "DumpFormatError",
    "DumpReader",
    "MarkupStripper",
    "Namespaces",
    "QueryBuildResult",
    "WikiPage",
    "build_queries",
    "iter_articles",
    "iter_token_runs",
    "load_queries",
    "strip_markup",
    "tokenize",
]
