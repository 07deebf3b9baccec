"""slmqa.serving.reader and docqa: answers with document offsets, ranking, folding, confidence, batching, abstention."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from slmqa.serving.documents import Document, Passage, passages_of
from slmqa.serving.reader import Reader, rank_answers
from slmqa.serving.retrieval import BM25Retriever, Hit
from slmqa.settings import Calibration, QASettings, model_settings, settings_record
from tests.document_helpers import MANUAL, POLICY, MarkedTokenBackend, document_folder

SETTINGS = QASettings(max_seq_length=64, doc_stride=16, max_answer_length=10, n_best_size=5)


@pytest.fixture
def collection():
    documents = [Document("manual.txt", MANUAL), Document("policy.md", POLICY)]
    passages = passages_of(documents, words=10, overlap=3)
    return {d.name: d.text for d in documents}, BM25Retriever(passages)


def reader_with(tokenizer, marked: str = "25", settings: QASettings = SETTINGS, **backend) -> Reader:
    return Reader(tokenizer, MarkedTokenBackend(tokenizer.convert_tokens_to_ids(marked), **backend), settings, batch_size=4)


def test_answer_points_into_its_document_and_passage(tokenizer, collection):
    texts, retriever = collection
    question = "What is the torque setting of the compressor?"
    hits = retriever.search(question, 4)
    reading = reader_with(tokenizer).read([question], [hits], top_k=3)[0]
    best = reading.answers[0]
    assert best.text == "25" and best.document == "manual.txt" and not reading.no_answer
    assert texts[best.document][best.start : best.end] == best.text
    assert best.passage[best.answer_start : best.answer_end] == best.text
    assert best.passage_start + best.answer_start == best.start
    assert texts[best.document][best.passage_start :].startswith(best.passage)
    assert len(reading.answers) == 3 and reading.passages_read == len(hits) == 3  # 3 passages share a term
    assert [a.score for a in reading.answers] == sorted((a.score for a in reading.answers), reverse=True)
    spans = [(a.document, a.start, a.end) for a in reading.answers]
    assert len(set(spans)) == len(spans)  # overlapping passages do not repeat an answer
    assert 0.5 < best.probability <= 1 and sum(a.probability for a in reading.answers) <= 1 + 1e-9


def test_many_questions_share_batches(tokenizer, collection):
    _, retriever = collection
    reader = reader_with(tokenizer)
    questions = ["torque of the compressor?", "Who answers requests?", "service hours of the compressor?"]
    readings = reader.read(questions, [retriever.search(q, 3) for q in questions], top_k=2)
    windows = sum(r.passages_read for r in readings)
    assert [len(r.answers) <= 2 for r in readings] == [True] * 3
    assert len(reader.backend.batches) == -(-windows // 4)  # one window per short passage, 4 per batch
    assert readings[0].answers[0].text == "25"


def test_no_passages_means_no_answer(tokenizer):
    reading = reader_with(tokenizer).read(["anything?"], [[]], top_k=3)[0]
    assert reading.no_answer and reading.answers == [] and reading.passages_read == 0


@pytest.mark.parametrize(
    "cls_logit, threshold, abstains",
    [(20.0, 0.0, True), (0.0, 0.0, False), (8.0, 0.0, False), (8.0, -5.0, True), (12.0, 5.0, False)],
)
def test_v2_model_abstains_by_the_saved_threshold(tokenizer, collection, cls_logit, threshold, abstains):
    """Null score 2*cls_logit vs best span 20: abstain when null - span > threshold."""
    _, retriever = collection
    settings = replace(SETTINGS, version_2_with_negative=True, null_score_diff_threshold=threshold)
    question = "What is the torque setting?"
    reading = reader_with(tokenizer, settings=settings, cls_logit=cls_logit).read(
        [question], [retriever.search(question, 3)], top_k=3)[0]
    assert reading.no_answer is abstains
    assert (reading.answers == []) is abstains


def test_question_too_long_for_a_window_gets_no_answer(tokenizer, collection):
    _, retriever = collection
    reader = reader_with(tokenizer)
    question = "torque " * 60
    assert not reader.fits(question)
    assert reader.read([question], [retriever.search(question, 3)], top_k=3)[0].no_answer


def test_document_qa_end_to_end_with_a_tiny_model(tmp_path, tiny_model_dir):
    from slmqa.serving.docqa import DocumentQA, Options

    qa = DocumentQA(tiny_model_dir, document_folder(tmp_path), options=Options(passages=3, passage_words=20, passage_overlap=5, retriever="bm25"))
    readings = qa.ask(["What is the torque setting of the CM-7?", "How fast does the F-2 fan turn?"], top_k=2)
    assert len(readings) == 2
    for reading in readings:
        assert 1 <= len(reading.answers) <= 2
        for answer in reading.answers:
            assert qa.documents[answer.document].text[answer.start : answer.end] == answer.text
    assert qa.describe()["documents"] == 6 and qa.describe()["backend"] == "torch"


# ------------------------------------------------------------------ folding overlapping answers

TEXT = "The CM-7 compressor is installed in hall 3. Its torque setting is 25 Nm under normal load, checked yearly."


def hit(document: str, start: int, end: int, score: float = 1.0) -> Hit:
    return Hit(Passage(document, start, end, TEXT[start:end]), score)


def span(passage_hit: Hit, text: str, score: float) -> tuple[dict, Hit]:
    """A candidate span of `text` (its first occurrence in the passage), with passage offsets."""
    start = passage_hit.passage.text.index(text)
    return {"text": text, "score": score, "start_char": start, "end_char": start + len(text)}, passage_hit


def test_overlapping_spans_of_overlapping_passages_fold_into_the_best():
    first, second = hit("manual.txt", 0, 90), hit("manual.txt", 44, len(TEXT))  # overlap: "Its torque ... under"
    candidates = [
        span(first, "25 Nm", 9.0),
        span(second, "25", 12.0),  # the best: "25 Nm" (other passage) and "setting is 25" overlap it
        span(first, "setting is 25", 6.0),
        span(second, "25 Nm under normal load", 8.0),  # around the best
        span(second, "25 Nm", 7.5),  # the same words as a first-passage candidate
        span(first, "hall 3", 5.0),  # disjoint: stays
        span(second, "checked yearly", 2.0),  # disjoint: stays
        span(hit("policy.md", 44, 90), "25", 1.0),  # same offsets, another document: stays
    ]
    answers = rank_answers(candidates, top_k=10)
    assert [(a.text, a.document) for a in answers] == [
        ("25", "manual.txt"), ("hall 3", "manual.txt"), ("checked yearly", "manual.txt"), ("25", "policy.md")]
    assert [a.score for a in answers] == [12.0, 5.0, 2.0, 1.0]
    best = answers[0]
    assert TEXT[best.start : best.end] == "25" and best.passage_start == 44
    assert best.passage[best.answer_start : best.answer_end] == "25"


def test_top_k_counts_answers_after_folding():
    passage = hit("manual.txt", 0, len(TEXT))
    candidates = [span(passage, "25 Nm", 9.0), span(passage, "25", 8.0), span(passage, "Nm", 7.0),
                  span(passage, "hall 3", 5.0), span(passage, "torque", 4.0), span(passage, "yearly", 3.0)]
    assert [a.text for a in rank_answers(candidates, top_k=3)] == ["25 Nm", "hall 3", "torque"]
    assert [a.text for a in rank_answers(candidates, top_k=1)] == ["25 Nm"]
    # Probabilities are over the folded answers: the four kept ones share the whole softmax.
    everything = rank_answers(candidates, top_k=10)
    assert len(everything) == 4 and sum(a.softmax_probability for a in everything) == pytest.approx(1.0)
    assert all(a.probability == a.softmax_probability for a in everything)  # no calibration: the softmax


def test_disjoint_spans_in_one_document_stay_separate_answers():
    passage = hit("manual.txt", 0, len(TEXT))
    candidates = [span(passage, "compressor", 3.0), span(passage, "hall 3", 2.0), span(passage, "25 Nm", 1.0)]
    assert [a.text for a in rank_answers(candidates, top_k=5)] == ["compressor", "hall 3", "25 Nm"]


def test_no_answer_competes_for_probability_without_being_an_answer():
    passage = hit("manual.txt", 0, len(TEXT))
    candidates = [span(passage, "25 Nm", 4.0), span(passage, "hall 3", 2.0)]
    answers = rank_answers(candidates, top_k=5, no_answer=3.0)
    weights = np.exp([4.0, 2.0, 3.0])
    assert [a.softmax_probability for a in answers] == pytest.approx(list(weights[:2] / weights.sum()))


# ------------------------------------------------------------------ calibrated confidence


@pytest.mark.parametrize("temperature, lower", [(3.0, True), (0.5, False)])
def test_calibration_written_read_back_and_used_by_the_reader(tokenizer, collection, tmp_path, temperature, lower):
    """qa_settings.json with a calibration -> model_settings -> Reader: the calibrated probability moves as it should.

    A temperature above 1 flattens an over-confident softmax (the best answer's probability
    drops), one below 1 sharpens it.
    """
    calibration = Calibration("temperature", temperature=temperature, fitted_on=100, ece_before=0.2, ece_after=0.05)
    (tmp_path / "qa_settings.json").write_text(json.dumps(settings_record(SETTINGS, {}, calibration)), encoding="utf-8")
    settings, source = model_settings(tmp_path)
    assert settings.calibration == calibration and source.endswith("qa_settings.json")
    _, retriever = collection
    question = "What is the torque setting of the compressor?"
    hits = retriever.search(question, 4)
    calibrated = reader_with(tokenizer, settings=settings).read([question], [hits], top_k=3)[0]
    plain = reader_with(tokenizer).read([question], [hits], top_k=3)[0]
    assert [a.text for a in calibrated.answers] == [a.text for a in plain.answers]  # same answers, same order
    best, plain_best = calibrated.answers[0], plain.answers[0]
    assert best.softmax_probability == pytest.approx(plain_best.probability)  # the softmax stays available
    assert (best.probability < best.softmax_probability) is lower and best.probability != best.softmax_probability
    assert best.to_json()["probability"] == best.probability and "softmax_probability" in best.to_json()


def test_an_answer_in_a_pdf_names_its_page(tmp_path, tiny_model_dir, tokenizer):
    from tests.document_helpers import marked_qa, minimal_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "manual.pdf").write_bytes(minimal_pdf("The V-4 valve opens at 6 bar.", "The P-9 pump delivers 12 bar."))
    (folder / "notes.txt").write_text("The P-9 pump was serviced; it delivers 12 bar.", encoding="utf-8")
    qa = marked_qa(folder, tiny_model_dir, tokenizer, marked="12")
    answers = qa.ask(["What does the P-9 pump deliver?"], top_k=5)[0].answers
    best = {}
    for answer in answers:  # best first: the first answer of each document is its "12"
        best.setdefault(answer.document, answer)
    assert {name: (a.text, a.page) for name, a in best.items()} == {"manual.pdf": ("12", 2), "notes.txt": ("12", None)}
    page_one = [a for a in answers if a.document == "manual.pdf" and a.start < best["manual.pdf"].start - 20]
    assert all(a.page == 1 for a in page_one)
