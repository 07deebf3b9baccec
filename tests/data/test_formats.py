"""slmqa.data.formats: every supported file layout reads to the same raw records; bad files name themselves."""

from __future__ import annotations

import csv
import json

import pytest

from slmqa.data.checks import RecordChecker, SplitReport
from slmqa.data.formats import read_records
from slmqa.errors import DataError
from slmqa.settings import QASettings
from tests.helpers import make_record, write_flat



def test_all_file_layouts_read_to_the_same_records(tmp_path, tokenizer):
    records = [
        make_record("a", "Alpha beta gamma.", "Which letter?", "beta"),
        make_record("b", "Delta epsilon.", "Which one?", None, is_impossible=True),
    ]
    write_flat(tmp_path / "flat.json", records)
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    nested = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {"context": "Alpha beta gamma.", "qas": [{"id": "a", "question": "Which letter?", "answers": [{"text": "beta", "answer_start": 6}]}]},
                    {"context": "Delta epsilon.", "qas": [{"id": "b", "question": "Which one?", "answers": [], "is_impossible": True}]},
                ],
            }
        ],
    }
    (tmp_path / "nested.json").write_text(json.dumps(nested), encoding="utf-8")
    with open(tmp_path / "table.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "title", "context", "question", "answers", "is_impossible"])
        writer.writeheader()
        for r in records:
            writer.writerow({**r, "answers": json.dumps(r["answers"]), "is_impossible": r.get("is_impossible", False)})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "table.parquet")

    checker = RecordChecker(tokenizer, QASettings(max_seq_length=64, doc_stride=16, version_2_with_negative=True))
    results = []
    for name in ("flat.json", "lines.jsonl", "nested.json", "table.csv", "table.parquet"):
        ds = checker.check("train", read_records(tmp_path / name), SplitReport(name))
        results.append([(r["id"], r["question"], r["answers"]["text"], r["answers"]["answer_start"]) for r in ds])
    assert all(r == results[0] for r in results), results
    assert results[0] == [("a", "Which letter?", ["beta"], [6]), ("b", "Which one?", [], [])]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "invalid JSON at line 1"),
        ('{"nodata": []}', "'data' list"),
        ("", "invalid JSON"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        read_records(path)
    assert "bad.json" in str(err.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_records(tmp_path / "nope.json")
    (tmp_path / "data.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported extension '.txt'"):
        read_records(tmp_path / "data.txt")
