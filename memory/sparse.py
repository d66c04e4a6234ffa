"""BM25-style sparse vectors computed here, with no model: the offline floor of retrieval.

Documents get BM25's saturated term frequency; queries get 1 per term. Qdrant multiplies
by each term's IDF, which it computes from the collection (`Modifier.IDF`), so a document's
score is the BM25 sum over the query's terms. Terms are hashed to 32-bit indices: no
vocabulary to store or keep in sync between processes.

Alert names are CamelCase compounds (`NodeFilesystemSpaceFillingUp`): each yields its
parts (stemmed) and the whole name, so both "filesystem filling up" and the exact alert
name match.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

# Bump when terms or weights change: stored vectors then no longer match queries.
SPARSE_VERSION = "bm25-1"
K1 = 1.2
B = 0.75
# Chunks are cut at about 1,200 characters; this is their typical length in terms.
AVG_DOC_TERMS = 110.0

_WORD = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+[a-z]*")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not of
    off on once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours""".split()  # noqa: SIM905
)
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def terms(text: str) -> list[str]:
    """Lower-case, stemmed terms; compound names also yield themselves whole."""
    out: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        parts = [p for piece in word.split("_") for p in _PART.findall(piece)]
        if len(parts) > 1:
            out.append(word.lower().replace("_", ""))
        for part in parts:
            lowered = part.lower()
            if lowered in _STOPWORDS or (len(lowered) < 2 and not lowered.isdigit()):
                continue
            out.append(_stem(lowered))
    return out


def term_index(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


def _vector(weights: dict[int, float]) -> SparseVec:
    ordered = sorted(weights.items())
    return SparseVec(indices=[i for i, _ in ordered], values=[v for _, v in ordered])


def encode_document(text: str) -> SparseVec:
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVG_DOC_TERMS)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        index = term_index(term)
        # Two terms hashing alike add up, as if they were one term.
        weights[index] = weights.get(index, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _vector(weights)


def encode_query(text: str) -> SparseVec:
    return _vector({term_index(t): 1.0 for t in set(terms(text))})
