"""slmqa.serving.retrieval: terms, top-k selection, BM25 ranking of passages."""

from __future__ import annotations

import numpy as np
import pytest

from slmqa.serving.documents import Passage
from slmqa.serving.retrieval import Retriever, terms, top_indices


def passage(name: str, text: str) -> Passage:
    return Passage(name, 0, len(text), text)


def test_terms_drop_case_punctuation_and_stopwords():
    assert terms("What is the torque of the CM-7?") == ["torque", "cm", "7"]


def test_top_indices_best_first_positive_only_ties_by_position():
    scores = np.array([0.0, 2.0, 5.0, 2.0, -1.0, 1.0])
    assert top_indices(scores, 3).tolist() == [2, 1, 3]
    assert top_indices(scores, 10).tolist() == [2, 1, 3, 5]
    assert top_indices(np.zeros(4), 2).tolist() == []


def test_bm25_ranks_the_passage_sharing_rare_terms_first():
    passages = [
        passage("pumps", "The pump runs at 1200 rpm in hall 2."),
        passage("valves", "The valve torque is 25 Nm. The valve is serviced yearly."),
        passage("halls", "Hall 2 and hall 3 hold the machines."),
    ]
    retriever = Retriever(passages)
    hits = retriever.search("What is the torque of the valve?", k=2)
    assert hits[0].passage.document == "valves" and len(hits) == 1  # no other passage shares a term
    assert [h.passage.document for h in retriever.search("Which hall has the pump?", k=3)][:2] == ["pumps", "halls"]


def test_questions_without_known_terms_retrieve_nothing():
    retriever = Retriever([passage("a", "alpha beta"), passage("b", "the of and")])
    assert retriever.search("What is it?", k=5) == []
    assert retriever.search("gamma", k=5) == []
    with pytest.raises(ValueError):
        retriever.search("alpha", k=0)
