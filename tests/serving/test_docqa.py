"""slmqa.serving.docqa: reading fewer passages when retrieval is confident (passages_to_read, Options, ask)."""

from __future__ import annotations

import pytest

from slmqa.serving.docqa import PASSAGE_RATIOS, DocumentQA, Options, passages_to_read
from slmqa.serving.documents import Document
from slmqa.serving.retrieval import Hit
from tests.document_helpers import MarkedTokenBackend


@pytest.mark.parametrize(
    "scores, ratio, floor, cap, expected",
    [
        ([9.0, 8.5, 8.0, 7.9, 7.5, 7.0, 6.9, 6.5], 0.5, 3, 8, 8),  # a flat ranking: nothing to cut
        ([30.0, 9.0, 8.0, 7.0, 6.0], 0.5, 3, 8, 3),  # a big drop after the best: the floor is kept
        ([30.0, 20.0, 16.0, 15.0, 14.0, 2.0], 0.5, 2, 8, 4),  # cut at the first score below half the best
        ([30.0, 29.0, 28.0, 1.0, 27.0], 0.5, 1, 8, 3),  # reading stops at the first drop (best first)
        ([30.0, 1.0], 0.5, 3, 8, 2),  # fewer passages than the floor: all of them
        ([9.0] * 10, 0.5, 3, 6, 6),  # the cap holds when every score passes
        ([30.0, 1.0, 1.0, 1.0, 1.0], 0.5, 5, 4, 4),  # and a floor above the cap reads the cap
        ([30.0, 1.0, 1.0], None, 1, 8, 3),  # off: everything retrieved, up to the cap
        ([30.0, 1.0, 1.0], 0.0, 1, 8, 3),  # and a ratio of 0 is off too
        ([0.0, 0.0, 0.0, 0.0], 0.5, 1, 8, 4),  # a best score <= 0 is no confidence: read up to the cap
        ([], 0.5, 3, 8, 0),
    ],
)
def test_passages_to_read(scores, ratio, floor, cap, expected):
    assert passages_to_read(scores, ratio, floor, cap) == expected


@pytest.mark.parametrize("bad", [{"passage_ratio": -0.1}, {"passage_ratio": 1.5}, {"min_passages": 0}])
def test_options_refuse_a_ratio_outside_0_1_and_a_floor_below_1(bad):
    with pytest.raises(ValueError):
        Options(**bad)


def test_the_ratio_defaults_to_the_measured_one_for_hybrid_and_to_reading_everything_otherwise():
    assert Options(retriever="hybrid").reading_ratio == PASSAGE_RATIOS["hybrid"] == 0.9
    assert Options(retriever="bm25").reading_ratio == Options(retriever="dense").reading_ratio == 0.0
    assert Options(retriever="hybrid", passage_ratio=0.0).reading_ratio == 0.0
    assert Options(retriever="bm25", passage_ratio=0.5).reading_ratio == 0.5


def test_ask_reads_only_the_passages_the_rule_keeps(tiny_model_dir, tokenizer, monkeypatch):
    texts = [f"Document {i} says the torque is 25 Nm." for i in range(5)]
    documents = [Document(f"d{i}.txt", text) for i, text in enumerate(texts)]

    def ask(options: Options, scores: list[float]):
        qa = DocumentQA(tiny_model_dir, "-", options=options, documents=documents)
        qa.reader.backend = MarkedTokenBackend(tokenizer.convert_tokens_to_ids("25"))
        hits = [Hit(passage, score) for passage, score in zip(qa.passages, scores)]
        monkeypatch.setattr(qa, "retrieve", lambda question, k=None: hits[: options.passages])
        return qa.ask(["What is the torque?"], top_k=1)[0]

    scores = [12.0, 11.0, 3.0, 2.0, 1.0]
    confident = ask(Options(passages=5, passage_ratio=0.5, min_passages=1), scores)
    assert confident.passages_read == 2 and [h.score for h in confident.hits] == [12.0, 11.0]
    assert confident.answers[0].text == "25"
    assert ask(Options(passages=5, retriever="bm25"), scores).passages_read == 5  # off by default for bm25
    assert ask(Options(passages=5, passage_ratio=0.0), scores).passages_read == 5  # and when asked
    assert ask(Options(passages=5), scores).passages_read == 3  # hybrid's 0.9 above the floor of 3
    assert ask(Options(passages=4, passage_ratio=0.1, min_passages=1), scores).passages_read == 4  # the cap
