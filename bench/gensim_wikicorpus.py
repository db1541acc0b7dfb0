"""Iterate gensim's WikiCorpus over a dump to the end and print what it yielded as JSON.

This is the gensim side of the throughput comparison, run in the gensim venv
(bench/.venv-gensim), never in the project venv. In gensim 4.4.0, ``get_texts()``
decompresses the bz2 dump and parses the XML in one process. A pool of ``--processes``
workers strips the markup and tokenizes. Passing a dictionary (an empty dict) skips
the extra pass over the dump that ``WikiCorpus`` otherwise makes to build a
``Dictionary``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump", help="pages-articles .xml.bz2 dump (single- or multistream)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes of WikiCorpus (default: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import gensim
    from gensim.corpora.wikicorpus import ARTICLE_MIN_WORDS, TOKEN_MAX_LEN, TOKEN_MIN_LEN, WikiCorpus

    started = time.perf_counter()
    corpus = WikiCorpus(args.dump, processes=args.processes, dictionary={})
    articles = 0
    tokens = 0
    for text in corpus.get_texts():
        articles += 1
        tokens += len(text)
    summary = {
        "gensim_version": gensim.__version__,
        "processes": args.processes,
        "article_min_tokens": corpus.article_min_tokens,
        "token_min_len": corpus.token_min_len,
        "token_max_len": corpus.token_max_len,
        "lower": corpus.lower,
        "defaults": {
            "article_min_tokens": ARTICLE_MIN_WORDS,
            "token_min_len": TOKEN_MIN_LEN,
            "token_max_len": TOKEN_MAX_LEN,
        },
        "articles": articles,
        "tokens": tokens,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
