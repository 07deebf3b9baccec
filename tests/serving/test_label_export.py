"""slmqa.serving.label_export: labels -> nested SQuAD v2, every label accounted for, split by document."""

from __future__ import annotations

import pytest

from slmqa.data.formats import flatten_squad
from slmqa.serving.documents import Document, split_passages
from slmqa.serving.label_export import answer_context, export_squad, question_key, split_by_document
from slmqa.serving.labels import Label, PassageRef, text_sha256

TEXT = " ".join(f"word{i}" for i in range(60)) + " The pump delivers 12 bar. " + " ".join(f"tail{i}" for i in range(60))
OTHER = "The F-3 fan is grey and turns at 900 rpm in hall 2."
DOCUMENTS = {"a.txt": Document("a.txt", TEXT), "b.txt": Document("b.txt", OTHER)}
WORDS, OVERLAP = 30, 5


def span_label(label_id: int, question: str, document: str, needle: str, kind: str = "answer") -> Label:
    text = DOCUMENTS[document].text
    start = text.index(needle)
    return Label(question, kind, document=document, document_sha256=text_sha256(text), start=start,
                 end=start + len(needle), answer=needle, id=label_id)


def no_answer_label(label_id: int, question: str, refs: list[tuple[str, int, int]]) -> Label:
    passages = tuple(PassageRef(doc, text_sha256(DOCUMENTS[doc].text), start, end) for doc, start, end in refs)
    return Label(question, "no_answer", passages=passages, id=label_id)


def export(labels, **kwargs):
    return export_squad(labels, DOCUMENTS, WORDS, OVERLAP, **kwargs)


def records_of(squad: dict) -> dict[str, dict]:
    return {record["id"]: record for record in flatten_squad(squad["data"])}


def test_an_answer_is_asked_on_the_whole_passage_around_it_with_an_exact_start():
    squad, report = export([span_label(1, "What does the pump deliver?", "a.txt", "12 bar")])
    record = records_of(squad)["label-1"]
    answer = record["answers"][0]
    assert record["context"][answer["answer_start"] : answer["answer_start"] + len(answer["text"])] == "12 bar"
    passages = split_passages(DOCUMENTS["a.txt"], WORDS, OVERLAP)
    assert any(record["context"] == p.text for p in passages)  # a whole passage, not a cut of our own
    assert squad["version"] == "v2.0" and record["title"] == "a.txt" and record["is_impossible"] is False
    assert (report.labels, report.answers, report.skipped) == (1, 1, [])


def test_a_span_longer_than_a_passage_gets_the_passages_that_cover_it():
    passages = split_passages(DOCUMENTS["a.txt"], WORDS, OVERLAP)
    start, end = passages[0].start + 3, passages[1].end + 3  # past the second passage, inside the third
    context_start, context_end = answer_context(passages, start, end)
    assert context_start <= start and end <= context_end
    assert (context_start, context_end) == (passages[0].start, passages[2].end)
    inside = passages[1].start + 20
    assert answer_context(passages, inside, inside + 5) in {(p.start, p.end) for p in passages}


def test_not_in_these_documents_becomes_unanswerable_questions_on_the_retrieved_passages():
    refs = [("b.txt", 0, 20), ("a.txt", 0, 40), ("a.txt", 40, 90), ("a.txt", 90, 140)]
    squad, report = export([no_answer_label(7, "Who painted the fan?", refs)], negative_passages=3)
    records = records_of(squad)
    assert sorted(records) == ["label-7-p0", "label-7-p1", "label-7-p2"]
    assert records["label-7-p0"]["context"] == OTHER[0:20] and records["label-7-p0"]["is_impossible"] is True
    assert all(r["answers"] == [] for r in records.values())
    assert (report.unanswerable, report.negative_passages) == (1, 3)


def test_labels_on_changed_or_removed_documents_are_reported_not_exported():
    changed = span_label(1, "How fast?", "b.txt", "900 rpm")
    changed = Label(**{**changed.__dict__, "document_sha256": text_sha256("an older text")})
    gone = Label("Where?", "answer", document="c.txt", document_sha256="0" * 64, start=0, end=4, answer="Hall", id=2)
    stale_no_answer = Label("Why?", "no_answer", passages=(PassageRef("b.txt", "0" * 64, 0, 10),), id=3)
    squad, report = export([changed, gone, stale_no_answer])
    assert squad["data"] == []
    reasons = {item["id"]: item["reason"] for item in report.skipped}
    assert "changed since it was labelled" in reasons[1]
    assert "no longer in the folder" in reasons[2]
    assert "changed or vanished" in reasons[3]


def test_the_latest_word_on_a_question_wins_and_every_label_is_accounted_for():
    labels = [
        span_label(1, "How fast does the fan turn?", "b.txt", "900 rpm", kind="confirmed"),
        span_label(2, "How fast does the fan turn", "b.txt", "900 rpm", kind="rejected"),  # same question, later: wrong
        no_answer_label(3, "What colour is the pump?", [("a.txt", 0, 40)]),
        span_label(4, "what colour is the pump?", "b.txt", "grey"),  # later answer overrides "not in these documents"
        span_label(5, "What does the pump deliver?", "a.txt", "12 bar"),
        span_label(6, "What does the pump deliver?", "a.txt", "12 bar", kind="confirmed"),  # a repeat
        span_label(7, "Where is the fan?", "b.txt", "hall 2"),
        no_answer_label(8, "Where is the fan?", [("a.txt", 0, 40)]),  # later "not in these documents" overrides 7
    ]
    squad, report = export(labels)
    assert sorted(records_of(squad)) == ["label-4", "label-5", "label-8-p0"]
    reasons = {item["id"]: item["reason"] for item in report.skipped}
    assert "later marked wrong" in reasons[1]
    assert "not training data" in reasons[2]
    assert "later answer" in reasons[3]
    assert "repeats" in reasons[6]
    assert "later 'not in these documents'" in reasons[7]
    assert report.answers + report.unanswerable + len(report.skipped) == report.labels == len(labels)
    assert {item["id"]: item.get("by_label") for item in report.skipped} == {1: 2, 2: None, 3: 4, 6: None, 7: 8}
    assert report.skipped_by_reason()["marks a wrong model answer (kept in the database, not training data)"] == 1


def test_question_key_ignores_case_spacing_and_end_punctuation():
    assert question_key("  How fast?? ") == question_key("how   FAST") != question_key("How far?")


def test_split_by_document_keeps_whole_documents_apart_and_is_repeatable():
    squad = {"version": "v2.0", "data": [{"title": f"doc{i}", "paragraphs": []} for i in range(10)]}
    train, heldout = split_by_document(squad, 0.2, seed=1)
    train_titles = {a["title"] for a in train["data"]}
    heldout_titles = {a["title"] for a in heldout["data"]}
    assert len(heldout_titles) == 2 and not train_titles & heldout_titles and len(train_titles | heldout_titles) == 10
    assert split_by_document(squad, 0.2, seed=1) == (train, heldout)
    assert split_by_document(squad, 0.2, seed=2) != (train, heldout)
    with pytest.raises(ValueError, match="at least 2 documents"):
        split_by_document({"version": "v2.0", "data": squad["data"][:1]}, 0.2)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_document(squad, 1.0)
