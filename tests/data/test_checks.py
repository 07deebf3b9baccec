"""slmqa.data.checks: records checked and repaired, defects named by file, record and field; counts that add up."""

from __future__ import annotations

import csv
import json

import pytest

from slmqa.data.checks import RecordChecker, SplitReport, locate_span, normalize_answers
from slmqa.data.columns import ColumnMap
from slmqa.data.formats import read_records
from slmqa.errors import DataError
from slmqa.settings import QASettings
from tests.helpers import make_record

SETTINGS = QASettings(max_seq_length=64, doc_stride=16)


def check(tokenizer, records, split="train", source="train.json", settings=SETTINGS, columns=ColumnMap(), **options):
    """(cleaned records, report) of one split, as training checks it; the report is filled in also when it raises."""
    report = SplitReport(source=source)
    try:
        return RecordChecker(tokenizer, settings, columns, **options).check(split, records, report), report
    except DataError as err:
        err.report = report
        raise


def adds_up(report: SplitReport) -> bool:
    counts = report.counts()
    return (
        counts["records"] == counts["kept"] + counts["dropped_records"] + counts["skipped_by_max_samples"]
        and counts["kept"] == counts["answerable"] + counts["unanswerable"]
    )


def test_answer_layouts_are_normalized():
    expected = [("beta", 6)]
    assert normalize_answers({"text": ["beta"], "answer_start": [6]}) == expected
    assert normalize_answers({"text": "beta", "answer_start": 6}) == expected
    assert normalize_answers([{"text": "beta", "answer_start": "6"}]) == expected
    assert normalize_answers('{"text": ["beta"], "answer_start": [6]}') == expected
    assert normalize_answers("beta") == [("beta", None)]
    assert normalize_answers(None) == [] and normalize_answers([]) == []


def test_locate_span_exact_repaired_and_failures():
    context = "The valve opens at 5 bar; the pump stops at 5 bar."
    assert locate_span(context, "5 bar", 19) == (19, "exact")
    assert locate_span(context, "5 bar", 16) == (19, "repaired")  # off by three
    assert locate_span(context, "5 bar", 42) == (44, "repaired")  # nearest of two occurrences
    assert locate_span(context, "5 bar", None) == (19, "ambiguous")
    assert locate_span(context, "valve", None) == (4, "located")
    assert locate_span(context, "7 bar", 19)[0] is None
    assert locate_span(context, "5 bar", 500)[0] is None
    assert locate_span(context, "5 bar", -3)[0] is None


def test_defects_are_reported_and_rare_ones_dropped(tokenizer):
    context = "The valve opens at 5 bar and closes at 2 bar."
    records = [make_record(f"ok-{i}", context, f"Question {i}?", "5 bar") for i in range(8)]
    records.append(make_record("shifted", context, "Closing pressure?", "2 bar", start=context.index("2 bar") - 2))
    records.append(make_record("absent", context, "Opening?", "9 bar", start=3))

    with pytest.raises(DataError) as err:  # 1 of 10 unusable > 1%
        check(tokenizer, records)
    message = str(err.value)
    assert "train.json" in message and "record 9" in message and "'absent'" in message and "answers.text" in message

    ds, report = check(tokenizer, records, max_bad_fraction=0.2)
    assert len(ds) == 9 and "absent" not in ds["id"]
    assert report.repaired_spans == 1
    (repair,) = report.repaired
    assert (repair.index, repair.id, repair.field, repair.stated, repair.repaired) == (
        8, "shifted", "answers.answer_start", context.index("2 bar") - 2, context.index("2 bar"))
    assert str(repair) == f"record 8 (id 'shifted'), field 'answers.answer_start': {repair.stated} -> {repair.repaired}"
    assert [d.id for d in report.dropped] == ["absent"]
    shifted = ds[list(ds["id"]).index("shifted")]
    assert shifted["answers"]["answer_start"] == [context.index("2 bar")]


def test_evaluation_records_with_unlocatable_spans_are_kept(tokenizer):
    context = "The valve opens at 5 bar."
    ds, report = check(tokenizer, [make_record("x", context, "Q?", "7 bar", start=3)], split="validation")
    assert ds["id"] == ["x"] and ds[0]["answers"]["text"] == ["7 bar"]
    assert [(d.id, d.field) for d in report.unlocated] == [("x", "answers.text")]


@pytest.mark.parametrize(
    "record, field",
    [
        ({"id": "a", "context": "c", "answers": []}, "question"),
        ({"id": "a", "question": "q?", "context": 5, "answers": []}, "context"),
        ({"id": "a", "question": "q?", "context": "   ", "answers": []}, "context"),
        ({"id": "a", "question": "  ", "context": "c", "answers": []}, "question"),
    ],
)
def test_record_level_field_errors_name_the_field(tokenizer, record, field):
    with pytest.raises(DataError, match=f"field '{field}'"):
        check(tokenizer, [record])


def test_questions_are_stripped_and_missing_ids_generated_stably(tokenizer):
    record = make_record(None, "Alpha beta.", "   Which?  ", "beta")
    first = check(tokenizer, [record])[0][0]
    second = check(tokenizer, [record])[0][0]
    assert first["question"] == "Which?"
    assert first["id"] == second["id"] and first["id"].startswith("gen-")


def test_overlong_question_is_dropped_with_reason(tokenizer):
    records = [make_record(f"ok{i}", "Alpha beta.", "Which?", "beta") for i in range(3)]
    records.append(make_record("long", "Alpha beta.", "word " * 80 + "?", "beta"))
    ds, report = check(tokenizer, records, max_bad_fraction=0.5)
    assert "long" not in ds["id"]
    (defect,) = report.dropped
    assert defect.id == "long" and defect.field == "question" and "max_seq_length=64" in defect.reason


def roberta_style_tokenizer():
    """A word-level fast tokenizer with RoBERTa's pair template (<s> q </s></s> c </s>): 4 specials, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "q", "?", "."] + [f"w{i}" for i in range(50)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


@pytest.mark.parametrize("kind, specials", [("bert", 3), ("roberta", 4)])
def test_question_budget_counts_the_tokenizers_special_tokens(tokenizer, kind, specials):
    from slmqa.data.windows import Windower
    from slmqa.settings import question_token_budget

    tok = tokenizer if kind == "bert" else roberta_style_tokenizer()
    assert tok.num_special_tokens_to_add(pair=True) == specials
    budget = question_token_budget(tok, SETTINGS)
    assert budget == 64 - 16 - specials - 1
    word, context = ("word", " ".join(f"Sentence {i} names code F{i:03d}." for i in range(60))) if kind == "bert" else (
        "q", " ".join(f"w{i % 50}" for i in range(300)))
    answer = context.split()[40]
    fits, too_long = " ".join([word] * budget), " ".join([word] * (budget + 1))
    assert len(tok(fits, add_special_tokens=False)["input_ids"]) == budget
    records = [make_record(f"ok{i}", context, f"{word} {word}", answer) for i in range(3)]
    records += [make_record("fits", context, fits, answer), make_record("long", context, too_long, answer)]
    ds, report = check(tok, records, max_bad_fraction=0.5)
    assert "fits" in ds["id"] and "long" not in ds["id"]
    (defect,) = report.dropped
    assert defect.id == "long" and defect.field == "question"
    assert f"{budget + 1} tokens; at most {budget} fit" in defect.reason and f"{specials} special tokens" in defect.reason
    # The budget-length question really is windowed (a budget that ignores the specials made the tokenizer panic).
    windower = Windower(tok, SETTINGS)
    train = windower.kept_windows(windower.labelled_windows(ds))
    evaluation = windower.eval_features(ds)
    assert evaluation["example_id"].count("fits") > 1 and len(train) == len(evaluation)
    assert all(len(ids) <= 64 for ids in train["input_ids"])


def faq_csv(path, rows, start_column="reply_start"):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["qid", "passage", "query", "reply", start_column])
        writer.writerows(rows)
    return path


FAQ = ColumnMap(id="qid", context="passage", question="query", answers="reply", answer_start="reply_start")


def test_column_mapping_and_separate_start_column(tmp_path, tokenizer):
    path = faq_csv(tmp_path / "faq.csv", [
        ["1", "Refunds take 14 days.", "How long do refunds take?", "14 days", "13"],
        ["2", "Support opens at 9 am.", "When does support open?", "9 am", "17"],
    ])  # fmt: skip
    ds, _ = check(tokenizer, read_records(path), columns=FAQ)
    assert list(ds["id"]) == ["1", "2"]
    assert [a["answer_start"] for a in ds["answers"]] == [[13], [17]]
    with pytest.raises(DataError, match="field 'question': missing"):
        check(tokenizer, read_records(path))


def test_mapped_columns_name_the_users_fields_and_ids(tmp_path, tokenizer):
    """Every message about a mapped file speaks its own names: the mapped id, the mapped field."""
    path = faq_csv(tmp_path / "faq.csv", [
        ["ok", "Refunds take 14 days.", "How long do refunds take?", "14 days", "13"],
        ["no-query", "Support opens at 9 am.", "", "9 am", "17"],
        ["far-off", "Support opens at 9 am.", "When?", "9 am", "oops"],
        ["absent", "Support opens at 9 am.", "When?", "10 am", "17"],
        ["ok", "Refunds take 14 days.", "How long do refunds take?", "14 days", "13"],
    ])  # fmt: skip
    with pytest.raises(DataError) as err:
        check(tokenizer, read_records(path), columns=FAQ)
    report = err.value.report
    assert [(d.id, d.field) for d in report.dropped] == [
        ("no-query", "query"), ("far-off", "reply_start"), ("absent", "reply"), ("ok", "qid")]
    assert "None" not in str(err.value) and "(id 'no-query'), field 'query': empty" in str(err.value)
    assert adds_up(report) and report.kept == 1


def test_the_same_defect_has_the_same_field_in_every_format(tmp_path, tokenizer):
    """An answer that occurs nowhere in its context is a defect of the text, with or without a start."""
    context = "The pump runs at 90 rpm."
    records = [make_record("with-start", context, "Speed?", "70 rpm", start=17),
               {"id": "without-start", "context": context, "question": "Speed?", "answers": "70 rpm"}]
    json_path = tmp_path / "t.jsonl"
    json_path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    csv_path = tmp_path / "t.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "context", "question", "answers"])
        writer.writeheader()
        writer.writerow({"id": "with-start", "context": context, "question": "Speed?",
                         "answers": json.dumps({"text": ["70 rpm"], "answer_start": [17]})})
        writer.writerow({"id": "without-start", "context": context, "question": "Speed?", "answers": "70 rpm"})
    fields = []
    for path in (json_path, csv_path):
        with pytest.raises(DataError) as err:
            check(tokenizer, read_records(path))
        fields.append([(d.id, d.field, d.reason) for d in err.value.report.dropped])
    expected = [(rid, "answers.text", "answer text does not occur in the context") for rid in ("with-start", "without-start")]
    assert fields == [expected, expected]
    # A start that misses a text occurring elsewhere is a defect of the start.
    far = make_record("far", "x " * 200 + context, "Speed?", "90 rpm", start=3)
    with pytest.raises(DataError) as err:
        check(tokenizer, [far])
    assert [d.field for d in err.value.report.dropped] == ["answers.answer_start"]


def test_counts_add_up_for_kept_refused_and_subsampled_files(tokenizer):
    good = [make_record(f"g{i}", "Alpha beta.", f"Q{i}?", "beta") for i in range(9)]
    bad = [{"id": f"b{i}", "context": "Alpha.", "answers": []} for i in range(3)]
    none_left = [{"id": "x", "context": "Alpha.", "answers": []}]
    with pytest.raises(DataError, match="3 of 12 records are unusable") as err:
        check(tokenizer, good + bad)
    report = err.value.report
    assert (report.records, report.kept, len(report.dropped)) == (12, 9, 3) and adds_up(report)
    with pytest.raises(DataError, match="no usable records") as err:
        check(tokenizer, none_left, max_bad_fraction=1.0)
    assert adds_up(err.value.report) and err.value.report.kept == 0
    _, report = check(tokenizer, good + bad[:1], max_bad_fraction=0.5, max_samples={"train": 4})
    assert (report.kept, report.skipped_by_max_samples, len(report.dropped)) == (4, 5, 1) and adds_up(report)
    _, report = check(tokenizer, good + [make_record("u", "Alpha.", "Q?", None)], split="validation")
    assert (report.answerable, report.unanswerable) == (9, 1) and adds_up(report)


def test_text_only_answers_are_located_and_ambiguity_counted(tokenizer):
    records = [
        {"id": "a", "context": "Call 555 or 555 again.", "question": "Which number?", "answers": "555"},
        {"id": "b", "context": "The code is X9.", "question": "Which code?", "answers": ["X9"]},
        {"id": "c", "context": "Nothing here.", "question": "Which code?", "answers": "Z1"},
    ]
    ds, report = check(tokenizer, records, max_bad_fraction=0.5)
    assert list(ds["id"]) == ["a", "b"] and ds[0]["answers"]["answer_start"] == [5]
    assert report.ambiguous_spans == 1 and report.located_spans == 1
    assert [(d.id, d.field) for d in report.dropped] == [("c", "answers.text")]


def test_a_zero_defect_limit_makes_any_defect_fatal(tokenizer):
    records = [make_record(f"r{i}", "Alpha beta.", "Q?", "beta") for i in range(200)]
    records.append(make_record("bad", "Alpha beta.", "Q?", "gamma", start=0))
    assert len(check(tokenizer, records)[0]) == 200  # 1 of 201 < 1%
    with pytest.raises(DataError, match="'bad'"):
        check(tokenizer, records, max_bad_fraction=0.0)
