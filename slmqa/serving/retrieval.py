"""BM25 retrieval of passages for a question.

The reader is the slow part (a transformer pass per window), so only the few passages
most likely to hold the answer are read. BM25 over word terms is a strong, training-free
retriever for the short factual questions extractive QA gets; `bm25s` scores it with
sparse matrices (bench/bench_retrieval.py measures it against rank-bm25 on COVID-QA).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from slmqa.serving.documents import Passage

logger = logging.getLogger(__name__)

TERM = re.compile(r"\w+", re.UNICODE)
# Function words carry no evidence of where an answer is; question words least of all.
STOPWORDS = frozenset(
    """a an and are as at be but by can did do does for from had has have how i if in into is it its
    of on or such that the their then there these they this to was were what when where which who
    whom whose why will with would you your""".split()
)


def terms(text: str) -> list[str]:
    """Lower-cased word terms without stopwords: what both documents and questions are matched on."""
    return [term for term in TERM.findall(text.lower()) if term not in STOPWORDS]


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its BM25 score (higher is better)."""

    passage: Passage
    score: float


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest positive scores, best first (ties: lower position first)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.lexsort((positive, -scores[positive]))]


class Retriever:
    """A BM25 index over passages, built once and searched per question."""

    def __init__(self, passages: list[Passage], k1: float = 1.5, b: float = 0.75):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG for itself on import
        if not passages:
            raise ValueError("Nothing to index: no passages.")
        self.passages = passages
        self.index = bm25s.BM25(k1=k1, b=b)
        # bm25s wants at least one term per passage; a passage of stopwords only gets a placeholder.
        self.index.index([terms(p.text) or ["\x00"] for p in passages], show_progress=False)
        logger.info("Indexed %d passages", len(passages))

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage (0 where no term matches)."""
        query = terms(question)
        if not query:
            return np.zeros(len(self.passages), dtype=np.float32)
        return np.asarray(self.index.get_scores(query))

    def search(self, question: str, k: int) -> list[Hit]:
        """The k best passages for the question; fewer when fewer share a term with it."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}.")
        scores = self.scores(question)
        return [Hit(self.passages[i], float(scores[i])) for i in top_indices(scores, k).tolist()]
