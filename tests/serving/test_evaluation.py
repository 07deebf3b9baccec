"""slmqa.serving.evaluation: recall@k, reader EM/F1 over retrieved passages and given the gold context, abstentions."""

from __future__ import annotations

import pytest

from slmqa.serving.evaluation import LabelledQuestion, evaluate_documents, gold_document, labelled_questions
from tests.document_helpers import MANUAL, POLICY, document_folder, marked_qa


@pytest.fixture(scope="module")
def qa(tmp_path_factory, tiny_model_dir, tokenizer):
    return marked_qa(document_folder(tmp_path_factory.mktemp("evaluation")), tiny_model_dir, tokenizer)


def test_gold_document_by_title_then_by_context(qa):
    assert gold_document(LabelledQuestion("1", "q", [], "torque setting is 25 Nm", "manual.txt"), qa.documents) == "manual.txt"
    assert gold_document(LabelledQuestion("2", "q", [], POLICY[:40], "elsewhere.txt"), qa.documents) == "sub/policy.md"
    assert gold_document(LabelledQuestion("3", "q", [], "text in no document", None), qa.documents) is None


def test_the_whole_path_is_measured_question_by_question(qa):
    items = labelled_questions([
        {"id": "torque", "question": "What is the torque setting of the CM-7 compressor?", "context": MANUAL,
         "answers": {"text": ["25"], "answer_start": [MANUAL.index("25")]}, "title": "manual.txt"},
        {"id": "service", "question": "How often is the compressor serviced?", "context": MANUAL,
         "answers": {"text": ["every 400 operating hours"], "answer_start": [MANUAL.index("every 400")]}, "title": "manual.txt"},
        {"id": "elsewhere", "question": "Who painted the hall?", "context": "The hall was painted by Ada.",
         "answers": {"text": ["Ada"], "answer_start": [24]}, "title": "other.txt"},
        {"id": "nothing", "question": "zebra xylophone quux", "context": POLICY,
         "answers": {"text": [], "answer_start": []}, "title": "sub/policy.md"},
    ])
    report = evaluate_documents(qa, items)
    assert report["questions"] == 4 and report["gold_document_found"] == 3 and report["gold_document_not_in_folder"] == 1
    rows = {row["id"]: row for row in report["per_question"]}
    assert rows["torque"]["gold_document_rank"] == 1 and rows["torque"]["answer"] == "25"
    assert rows["service"]["answer"] == "25" and rows["service"]["answer_given_gold_context"] == "25"
    assert rows["nothing"]["gold_document_rank"] is None and rows["nothing"]["answer"] == ""  # BM25 finds nothing
    assert report["retrieval"]["recall@1"] == pytest.approx(2 / 3, abs=1e-3)
    served = report["reader_over_retrieved"]
    assert served["total"] == 4 and served["HasAns_total"] == 3 and served["NoAns_total"] == 1
    assert served["exact"] == 50.0  # torque right, nothing right (abstained), service and elsewhere wrong
    assert report["reader_given_gold_context"]["total"] == 3
    assert report["no_answer_rate"] == 0.25 and report["latency"]["p50_ms"] > 0
    assert report["passage_ratio"] == 0.0 and report["passages"] == qa.options.passages  # BM25 reads every passage found
    assert 0 < report["mean_passages_read"] <= qa.options.passages
