"""slmqa.serving.retrieval: terms, top-k selection, BM25, dense and hybrid ranking; the sentence encoder."""

from __future__ import annotations

import numpy as np
import pytest

from slmqa.serving.documents import Passage
from slmqa.serving.retrieval import (
    BM25Retriever,
    DenseRetriever,
    HybridRetriever,
    reciprocal_rank_fusion,
    terms,
    top_indices,
)


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
    retriever = BM25Retriever(passages)
    hits = retriever.search("What is the torque of the valve?", k=2)
    assert hits[0].passage.document == "valves" and len(hits) == 1  # no other passage shares a term
    assert [h.passage.document for h in retriever.search("Which hall has the pump?", k=3)][:2] == ["pumps", "halls"]


def test_questions_without_known_terms_retrieve_nothing():
    retriever = BM25Retriever([passage("a", "alpha beta"), passage("b", "the of and")])
    assert retriever.search("What is it?", k=5) == []
    assert retriever.search("gamma", k=5) == []
    with pytest.raises(ValueError):
        retriever.search("alpha", k=0)


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], constant=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert reciprocal_rank_fusion([]) == []


class SynonymEncoder:
    """Embeds by concept: 'speed' and 'rpm' mean the same; codes such as 'cm-7' mean nothing to it."""

    dimension = 3
    CONCEPTS = {"speed": 0, "rpm": 0, "turns": 0, "torque": 1, "nm": 1, "colour": 2, "grey": 2}

    def encode(self, texts):
        vectors = np.full((len(texts), 3), 1e-3, dtype=np.float32)
        for row, text in enumerate(texts):
            for word in terms(text):
                if word in self.CONCEPTS:
                    vectors[row, self.CONCEPTS[word]] += 1
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


PASSAGES = [
    passage("fan", "The fan turns at 900 rpm."),
    passage("valve", "The valve torque is 25 Nm."),
    passage("code", "Part CM-7 is stocked in hall 3."),
    passage("paint", "The housing is grey."),
]


def retrievers():
    encoder = SynonymEncoder()
    dense = DenseRetriever(PASSAGES, encoder.encode([p.text for p in PASSAGES]), encoder)
    return BM25Retriever(PASSAGES), dense, HybridRetriever(BM25Retriever(PASSAGES), dense)


def test_dense_finds_the_paraphrase_bm25_misses_and_hybrid_finds_both():
    bm25, dense, hybrid = retrievers()
    assert bm25.search("How high is the speed?", 2) == []  # no shared word
    assert dense.search("How high is the speed?", 1)[0].passage.document == "fan"
    assert bm25.search("Where is CM-7?", 1)[0].passage.document == "code"
    assert hybrid.search("How high is the speed?", 1)[0].passage.document == "fan"
    assert hybrid.search("Where is CM-7?", 1)[0].passage.document == "code"
    assert len(dense.search("anything", 10)) == len(PASSAGES)  # dense always ranks every passage


def test_dense_needs_one_embedding_per_passage():
    with pytest.raises(ValueError, match="4 passages but 3 embeddings"):
        DenseRetriever(PASSAGES, np.zeros((3, 3), dtype=np.float32), SynonymEncoder())


@pytest.mark.slow
def test_the_sentence_encoder_embeds_as_all_minilm_was_trained(base_model_path):
    from slmqa.serving.embedding import SentenceEncoder

    encoder = SentenceEncoder(base_model_path)
    vectors = encoder.encode(["How fast does the fan turn?", "The fan rotates at 900 revolutions per minute.",
                              "The invoice is due in thirty days.", ""])
    assert vectors.shape == (4, 384) and np.allclose(np.linalg.norm(vectors[:3], axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # a paraphrase is near, another topic far
    batched = encoder.encode(["The invoice is due in thirty days."])  # alone: the same vector as in a padded batch
    np.testing.assert_allclose(batched[0], vectors[2], atol=1e-5)
    assert encoder.fingerprint.endswith(":384") and encoder.fingerprint == SentenceEncoder(base_model_path).fingerprint
