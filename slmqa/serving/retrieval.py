"""Find the passages worth reading for a question: BM25, dense (sentence embeddings), or both fused.

The reader is the slow part (a transformer pass per window), so only the few passages most
likely to hold the answer are read. BM25 over word terms is a strong, training-free retriever
for the short factual questions extractive QA gets, but it misses a paraphrase that shares no
word with the passage; a sentence encoder finds those and misses rare exact terms (codes,
names). Reciprocal rank fusion (RRF) combines the two rankings without calibrating their
scores against each other: a passage scores sum(1 / (60 + rank)) over the rankings it is in.
bench/bench_retrieval.py measures the three on COVID-QA and SQuAD (bench/README.md).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from slmqa.serving.documents import Passage

logger = logging.getLogger(__name__)

RETRIEVERS = ("bm25", "dense", "hybrid")
TERM = re.compile(r"\w+", re.UNICODE)
# Function words carry no evidence of where an answer is; question words least of all.
STOPWORDS = frozenset(
    """a an and are as at be but by can did do does for from had has have how i if in into is it its
    of on or such that the their then there these they this to was were what when where which who
    whom whose why will with would you your""".split()
)
RRF_CONSTANT = 60  # the usual constant: rank 1 scores 1/61, so no single ranking dominates
FUSION_DEPTH = 50  # how deep each ranking is read before fusing


def terms(text: str) -> list[str]:
    """Lower-cased word terms without stopwords: what both documents and questions are matched on."""
    return [term for term in TERM.findall(text.lower()) if term not in STOPWORDS]


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its retrieval score (higher is better; the scale depends on the retriever)."""

    passage: Passage
    score: float


def top_indices(scores: np.ndarray, k: int, positive_only: bool = True) -> np.ndarray:
    """Positions of the k highest scores (only positive ones by default), best first; ties: lower position first."""
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    if len(candidates) > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return candidates[np.lexsort((candidates, -scores[candidates]))]


class _Ranked:
    """What every retriever shares: `ranked` gives (passage position, score) pairs; `search` turns them into hits."""

    passages: list[Passage]

    def ranked(self, question: str, k: int) -> list[tuple[int, float]]:
        raise NotImplementedError

    def search(self, question: str, k: int) -> list[Hit]:
        """The k best passages for the question (fewer when fewer match)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        return [Hit(self.passages[i], score) for i, score in self.ranked(question, k)]


class BM25Retriever(_Ranked):
    """A BM25 index over passages (bm25s: sparse matrices), built once and searched per question."""

    name = "bm25"

    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75, index=None):
        """`index`: an already built bm25s index over exactly these passages (loaded from disk)."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG for itself on import
        if not passages:
            raise ValueError("Nothing to index: no passages.")
        self.passages = passages
        if index is None:
            index = bm25s.BM25(k1=k1, b=b)
            # bm25s wants at least one term per passage; a passage of stopwords only gets a placeholder.
            index.index([terms(p.text) or ["\x00"] for p in passages], show_progress=False)
        self.index = index
        logger.info("BM25 over %d passages", len(passages))

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage (0 where no term matches)."""
        query = terms(question)
        if not query:
            return np.zeros(len(self.passages), dtype=np.float32)
        return np.asarray(self.index.get_scores(query))

    def ranked(self, question: str, k: int) -> list[tuple[int, float]]:
        scores = self.scores(question)
        return [(i, float(scores[i])) for i in top_indices(scores, k).tolist()]


class DenseRetriever(_Ranked):
    """Cosine similarity between the question's and each passage's sentence embedding (exhaustive: exact)."""

    name = "dense"

    def __init__(self, passages: list[Passage], embeddings: np.ndarray, encoder):
        if len(passages) != len(embeddings):
            raise ValueError(f"{len(passages)} passages but {len(embeddings)} embeddings.")
        self.passages, self.embeddings, self.encoder = passages, embeddings, encoder

    def ranked(self, question: str, k: int) -> list[tuple[int, float]]:
        query = self.encoder.encode([question])[0]
        scores = self.embeddings @ query
        return [(i, float(scores[i])) for i in top_indices(scores, k, positive_only=False).tolist()]


def reciprocal_rank_fusion(rankings: list[list[int]], constant: int = RRF_CONSTANT) -> list[tuple[int, float]]:
    """Items of several best-first rankings by sum of 1 / (constant + rank), best first (ties: first seen)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (constant + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


class HybridRetriever(_Ranked):
    """BM25 and dense rankings fused by reciprocal rank."""

    name = "hybrid"

    def __init__(self, sparse: BM25Retriever, dense: DenseRetriever, depth: int = FUSION_DEPTH):
        self.sparse, self.dense, self.depth, self.passages = sparse, dense, depth, sparse.passages

    def ranked(self, question: str, k: int) -> list[tuple[int, float]]:
        depth = max(k, self.depth)
        rankings = [[i for i, _ in retriever.ranked(question, depth)] for retriever in (self.sparse, self.dense)]
        return reciprocal_rank_fusion(rankings)[:k]


def make_retriever(kind: str, collection, encoder=None) -> _Ranked:
    """The retriever of a kind (bm25, dense, hybrid) over a collection (slmqa.serving.index.Collection)."""
    if kind == "bm25":
        return BM25Retriever(collection.passages, index=collection.bm25_index)
    if collection.embeddings is None or encoder is None:
        raise ValueError(f"--retriever {kind} needs passage embeddings and a sentence encoder.")
    dense = DenseRetriever(collection.passages, collection.embeddings, encoder)
    if kind == "dense":
        return dense
    return HybridRetriever(BM25Retriever(collection.passages, index=collection.bm25_index), dense)
