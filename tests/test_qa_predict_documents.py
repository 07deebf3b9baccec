"""qa_predict.py --documents: the same retrieval + reading path as the server, from the command line."""

from __future__ import annotations

import io
import json

import qa_predict
from docs_helpers import document_folder


def test_documents_answers_each_question_with_its_source(tmp_path, tiny_model_dir, capsys):
    report = tmp_path / "answers.json"
    code = qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(document_folder(tmp_path)),
                            "--question", "What is the torque setting of the CM-7?", "--question", "How fast is the F-2 fan?",
                            "--top_k", "2", "--output_file", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Q: What is the torque setting of the CM-7?" in printed and "chars" in printed
    content = json.loads(report.read_text())
    assert len(content["readings"]) == 2 and content["documents"]["documents"] == 6
    for reading in content["readings"]:
        assert 1 <= len(reading["answers"]) <= 2
        assert all(set(a) >= {"text", "document", "start", "end", "passage"} for a in reading["answers"])


def test_documents_interactive_and_errors(tmp_path, tiny_model_dir, capsys, caplog, monkeypatch):
    folder = document_folder(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("Where is the compressor?\n\n"))
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(folder), "--interactive"]) == 0
    assert "Q: Where is the compressor?" in capsys.readouterr().out
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(tmp_path / "none"), "--question", "x"]) == 2
    assert "not found" in caplog.text
    assert qa_predict.main(["--documents", str(folder), "--question", "x"]) == 2
