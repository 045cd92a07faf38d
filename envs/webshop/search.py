"""The catalog's search engine: BM25 from the ``bm25s`` library with an Anserini-like analyzer.

WebShop searches a Lucene index through pyserini with Anserini's defaults (docs/webshop.md
section 3): BM25 with k1 = 0.9 and b = 0.4, Lucene's English analyzer (standard tokenizer,
possessive filter, lowercase, English stopwords, Porter stemming), the top 50 hits. pyserini's
jar needs Java 21, which this machine lacks, so :class:`SearchEngine` uses ``bm25s``'s
Lucene-variant BM25 with the same parameters, and an analyzer built from the same parts:
words of letters and digits (single characters kept, as Lucene's tokenizer keeps them),
``'s`` removed, lowercase, Lucene's English stopword list (which ``bm25s`` ships as ``"en"``)
and the Porter stemmer of PyStemmer.

Results are deterministic: documents are ranked by score, ties broken by catalog order, and
only documents that share a term with the query are hits (Lucene returns no non-matching
document either).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

__all__ = ["K1", "B", "TOP_K", "SearchEngine", "analyze"]

K1 = 0.9
B = 0.4
#: Hits kept per search (WebShop shows 10 per page of these).
TOP_K = 50
_TOKEN_PATTERN = r"(?u)\b\w+\b"
_POSSESSIVE = re.compile(r"'s\b")
_STEMMER = Stemmer.Stemmer("porter")
_CACHE_SIZE = 4096


def _prepare(text: str) -> str:
    return _POSSESSIVE.sub("", text.lower())


def analyze(texts: Sequence[str]) -> list[list[str]]:
    """The analyzer: one list of stemmed index terms per text."""
    return bm25s.tokenize(
        [_prepare(t) for t in texts], token_pattern=_TOKEN_PATTERN, stopwords="en",
        stemmer=_STEMMER, return_ids=False, show_progress=False,
    )


class SearchEngine:
    """BM25 over a fixed list of documents (the catalog, in catalog order).

    Args:
        retriever: a fitted ``bm25s.BM25``.
    """

    def __init__(self, retriever: bm25s.BM25) -> None:
        self._retriever = retriever
        self._num_docs = int(retriever.scores["num_docs"])
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def build(cls, documents: Sequence[str]) -> SearchEngine:
        """Index ``documents`` (document i is catalog product i)."""
        tokens = bm25s.tokenize(
            [_prepare(d) for d in documents], token_pattern=_TOKEN_PATTERN, stopwords="en",
            stemmer=_STEMMER, show_progress=False,
        )
        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, path: str | Path) -> None:
        self._retriever.save(str(path), show_progress=False)
        Path(path, "analyzer.json").write_text(
            json.dumps({"k1": K1, "b": B, "token_pattern": _TOKEN_PATTERN, "stemmer": "porter",
                        "stopwords": "en"})
        )

    @classmethod
    def load(cls, path: str | Path) -> SearchEngine:
        return cls(bm25s.BM25.load(str(path), show_progress=False))

    @property
    def num_docs(self) -> int:
        return self._num_docs

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query``, shape (num_docs,), float32."""
        terms = [t for t in analyze([query])[0] if t in self._retriever.vocab_dict]
        if not terms:
            return np.zeros(self._num_docs, dtype=np.float32)
        return self._retriever.get_scores(terms)

    def search(self, query: str, k: int = TOP_K) -> tuple[int, ...]:
        """Indices of the best ``k`` matching documents, best first, ties by index.

        Repeated queries are answered from a small cache (the results pages re-run the
        search on every view, as WebShop does).
        """
        key = f"{k}\x00{query}"
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        scores = self.scores(query)
        matching = np.flatnonzero(scores > 0)
        order = matching[np.lexsort((matching, -scores[matching]))][:k]
        result = tuple(int(i) for i in order)
        with self._lock:
            self._cache[key] = result
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return result
