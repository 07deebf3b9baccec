"""slmqa.serving.reader and docqa: answers with document offsets, ranking, batching, abstention."""

from __future__ import annotations

from dataclasses import replace

import pytest

from slmqa.serving.documents import Document, passages_of
from slmqa.serving.reader import Reader
from slmqa.serving.retrieval import Retriever
from slmqa.settings import QASettings
from tests.document_helpers import MANUAL, POLICY, MarkedTokenBackend, document_folder

SETTINGS = QASettings(max_seq_length=64, doc_stride=16, max_answer_length=10, n_best_size=5)


@pytest.fixture
def collection():
    documents = [Document("manual.txt", MANUAL), Document("policy.md", POLICY)]
    passages = passages_of(documents, words=10, overlap=3)
    return {d.name: d.text for d in documents}, Retriever(passages)


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

    qa = DocumentQA(tiny_model_dir, document_folder(tmp_path), options=Options(passages=3, passage_words=20, passage_overlap=5))
    readings = qa.ask(["What is the torque setting of the CM-7?", "How fast does the F-2 fan turn?"], top_k=2)
    assert len(readings) == 2
    for reading in readings:
        assert 1 <= len(reading.answers) <= 2
        for answer in reading.answers:
            assert qa.documents[answer.document].text[answer.start : answer.end] == answer.text
    assert qa.describe()["documents"] == 6 and qa.describe()["backend"] == "torch"
