"""bench/bench_labelling.py's pure parts: documents and offsets, splits and samples by document, the right/wrong call.

Tiny in-memory data; no model, no server, no ../shared.
"""

from __future__ import annotations

import pytest

from bench.bench_labelling import (
    GoldQuestion,
    GoldSpan,
    build_documents,
    eval_sample,
    is_right,
    label_posts,
    sample_questions,
    split_documents,
    squad_of,
)


def _paragraph(context: str, *qas: tuple[str, str, list[str]]) -> dict:
    """qas: (id, question, answer texts), each answer located at its first occurrence in the context."""
    return {"context": context, "qas": [
        {"id": qid, "question": question, "answers": [{"text": t, "answer_start": context.index(t)} for t in texts]}
        for qid, question, texts in qas
    ]}


ARTICLES = [
    ("a.txt", [_paragraph("We collect your email.", ("a1", "What is collected?", ["your email"])),
               _paragraph("Cookies track you.", ("a2", "What tracks?", ["Cookies"]), ("a3", "Tracks whom?", [" you."]))]),
    ("b.txt", [_paragraph("Data is sold to partners.", ("b1", "Who gets data?", ["partners", "to partners"]))]),
]


def test_documents_join_contexts_and_map_every_answer_to_document_offsets():
    corpus = build_documents(ARTICLES)
    assert corpus.documents["a.txt"] == "We collect your email.\n\nCookies track you."
    by_id = {q.id: q for q in corpus.questions}
    for q in corpus.questions:
        for span in q.spans:
            assert corpus.documents[q.document][span.start : span.end] == span.text
    assert by_id["a2"].spans[0] == GoldSpan(24, 31, "Cookies")  # 22 characters + the blank line before it
    assert by_id["a3"].spans[0].text == "you."  # trimmed of its leading space, offsets moved with it
    assert corpus.problems["answers trimmed of surrounding whitespace"] == 1
    assert [s.text for s in by_id["b1"].spans] == ["partners", "to partners"]
    assert by_id["a2"].context == "Cookies track you." and by_id["a2"].answers[0]["answer_start"] == 0


def test_an_answer_not_at_its_offset_is_refused():
    broken = _paragraph("We collect your email.", ("x", "What?", ["email"]))
    broken["qas"][0]["answers"][0]["answer_start"] = 3
    with pytest.raises(ValueError, match="not at 3"):
        build_documents([("x.txt", [broken])])


def test_split_is_by_document_seeded_and_never_empty():
    names = [f"d{i}.txt" for i in range(20)]
    evaluation, labelling = split_documents(names, 0.25, seed=42)
    assert len(evaluation) == 5 and len(labelling) == 15
    assert not set(evaluation) & set(labelling) and sorted(evaluation + labelling) == sorted(names)
    assert split_documents(list(reversed(names)), 0.25, seed=42) == (evaluation, labelling)  # input order does not matter
    assert split_documents(names, 0.25, seed=7) != (evaluation, labelling)
    assert [len(side) for side in split_documents(["a", "b"], 0.01, 0)] == [1, 1]


def _question(qid: str, document: str, start: int = 0, end: int = 4, text: str = "word") -> GoldQuestion:
    return GoldQuestion(qid, f"question {qid}?", document, (GoldSpan(start, end, text),), "context", ({"text": text, "answer_start": 0},))


def test_samples_come_only_from_labelling_documents_and_are_nested():
    questions = [_question(f"q{i}", f"d{i % 4}.txt") for i in range(40)]
    questions.append(_question("long", "d0.txt", 0, 1001, "x" * 1001))  # the server refuses spans over 1,000 characters
    labelling = ["d0.txt", "d1.txt", "d2.txt"]
    sample = sample_questions(questions, labelling, 25, seed=1)
    assert len(sample) == 25 and {q.document for q in sample} <= set(labelling)
    assert "long" not in {q.id for q in sample_questions(questions, labelling, 100, seed=1)}
    assert sample_questions(questions, labelling, 10, seed=1) == sample[:10]  # the first 10 of the 25
    evaluated = eval_sample(questions, ["d3.txt"], None, seed=1)
    assert [q.id for q in evaluated] == [f"q{i}" for i in range(3, 40, 4)]
    capped = eval_sample(questions, ["d3.txt"], 4, seed=1)
    assert len(capped) == 4 and [q.id for q in capped] == [q.id for q in evaluated if q in capped]  # data order kept


def test_eval_file_holds_the_original_records():
    corpus = build_documents(ARTICLES)
    squad = squad_of([q for q in corpus.questions if q.document == "a.txt"])
    (article,) = squad["data"]
    assert article["title"] == "a.txt"
    assert [p["context"] for p in article["paragraphs"]] == ["We collect your email.", "Cookies track you."]
    assert article["paragraphs"][1]["qas"][1]["answers"] == [{"text": " you.", "answer_start": 13}]  # untrimmed, as in the data


GOLD = GoldQuestion("q", "Who gets data?", "b.txt", (GoldSpan(18, 26, "partners"), GoldSpan(15, 26, "to partners")), "c", ())


def _answer(document: str, start: int, end: int, text: str) -> dict:
    return {"document": document, "start": start, "end": end, "text": text, "score": 1.0}


def test_right_by_offsets_of_any_gold_answer_or_by_normalised_text():
    assert is_right(_answer("b.txt", 18, 26, "partners"), GOLD) == "offsets"
    assert is_right(_answer("b.txt", 15, 26, "to partners"), GOLD) == "offsets"
    assert is_right(_answer("a.txt", 3, 12, "The Partners."), GOLD) == "text"  # SQuAD normalisation: case, article, dot
    assert is_right(_answer("b.txt", 18, 25, "partner"), GOLD) is None
    assert is_right(_answer("b.txt", 0, 2, "."), GOLD) is None  # normalises to nothing: never a match
    assert is_right(None, GOLD) is None


def test_posts_are_what_the_page_sends():
    match, posts = label_posts(GOLD, {"answers": [_answer("b.txt", 18, 26, "partners")]})
    assert match == "offsets"
    assert posts == [{"question": "Who gets data?", "document": "b.txt", "start": 18, "end": 26, "text": "partners", "verdict": "right"}]
    match, posts = label_posts(GOLD, {"answers": [_answer("a.txt", 0, 4, "Data"), _answer("b.txt", 18, 26, "partners")]})
    assert match is None  # only the top answer counts
    assert posts == [
        {"question": "Who gets data?", "document": "a.txt", "start": 0, "end": 4, "text": "Data", "verdict": "wrong"},
        {"question": "Who gets data?", "document": "b.txt", "start": 18, "end": 26, "text": "partners"},
    ]
    match, posts = label_posts(GOLD, {"answers": [], "no_answer": True})
    assert match is None and posts == [{"question": "Who gets data?", "document": "b.txt", "start": 18, "end": 26, "text": "partners"}]
