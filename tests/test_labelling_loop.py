"""The loop of docs/labelling.md, command by command: label over HTTP, export split by document, train, compare."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

import qa_predict
import serve
from slmqa.serving.app import create_app
from slmqa.serving.docqa import DocumentQA, Options
from slmqa.serving.feedback import Feedback
from slmqa.serving.labels import LabelStore
from tests.helpers import ROOT, run_main, run_qa

FACTS = {
    f"unit-{n}.txt": (f"The pump P-{n} is installed in hall {n}. Its pressure is {10 + n} bar under normal load. "
                      f"It is serviced every {100 + n} hours by {name}.", f"Who services the pump P-{n}?", name)
    for n, name in enumerate(["Anna", "Bruno", "Chiara", "Dmitri", "Elena", "Farid"])
}


def test_label_export_train_and_compare_as_the_docs_say(tmp_path, tiny_model_dir):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, (text, _, _) in FACTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    database = tmp_path / "labels.sqlite"
    qa = DocumentQA(tiny_model_dir, folder, options=Options(passages=2))
    with TestClient(create_app(qa, feedback=Feedback(LabelStore(database), qa))) as client:
        for name, (text, question, answer) in FACTS.items():  # as the page posts a selected span
            start = text.index(answer)
            reply = client.post("/feedback", json={"question": question, "document": name, "start": start,
                                                   "end": start + len(answer), "text": answer})
            assert reply.status_code == 201, reply.text
        assert client.post("/feedback", json={"question": "Who painted the pumps?", "no_answer": True}).status_code == 201

    export = tmp_path / "labels" / "labels.json"
    run_main(serve.main, ["--documents", folder, "--feedback_db", database, "--export_feedback", export, "--heldout_fraction", 0.34])
    train, heldout = (tmp_path / "labels" / f"labels.{side}.json" for side in ("train", "heldout"))
    out = tmp_path / "labelled"
    run_qa(ROOT / "recipes" / "from-labels.json", "--model_name_or_path", tiny_model_dir, "--train_file", train,
           "--validation_file", heldout, "--output_dir", out, "--max_steps", 2, "--max_seq_length", 64, "--doc_stride", 16,
           "--per_device_train_batch_size", 4, "--disable_tqdm", "true")
    report_file = tmp_path / "compare.json"
    run_main(qa_predict.main, ["--base_model", tiny_model_dir, "--tuned_model", out, "--data_file", heldout,
                               "--output_file", report_file])
    report = json.loads(report_file.read_text())
    heldout_ids = {qa["id"] for article in json.loads(heldout.read_text())["data"] for p in article["paragraphs"] for qa in p["qas"]}
    assert set(report["predictions"]) == heldout_ids and heldout_ids
    assert set(report["models"]) == {"base", "tuned"} and "f1" in report["models"]["tuned"]["metrics"]
    trained_on = {a["title"] for a in json.loads(train.read_text())["data"]}
    assert not trained_on & {a["title"] for a in json.loads(heldout.read_text())["data"]}
