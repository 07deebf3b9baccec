"""qa_predict.py: base vs tuned side by side, adapters, no-answer output, settings, and one runtime vocabulary in every mode."""

from __future__ import annotations

import io
import json
import logging
import math
import re

import pytest
import torch

import qa_predict
from slmqa.inference import backends
from tests.document_helpers import document_folder
from tests.helpers import make_record, run_main, write_flat


def write_json(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def run_report(tmp_path, *argv):
    """Run qa_predict.main with a JSON report and return the report."""
    report_path = tmp_path / "report.json"
    assert qa_predict.main([*map(str, argv), "--output_file", str(report_path)]) == 0
    return json.loads(report_path.read_text())


@pytest.fixture
def labeled_file(tmp_path):
    records = []
    for i in range(6):
        context = f"The pump P-{i} runs at {100 + i} rpm. The fan F-{i} runs at {200 + i} rpm."
        records.append(make_record(f"q{i}", context, f"How fast does pump P-{i} run?", f"{100 + i} rpm"))
    records.append(make_record("none", "The valve is blue.", "Who made the valve?", None, is_impossible=True))
    return write_flat(tmp_path / "test.json", records)


@pytest.fixture
def silent_model_dir(tmp_path, tiny_model_dir):
    """A tiny model whose QA head outputs all-zero logits: every span ties with 'no answer'."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
    directory = tmp_path / "silent"
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


@pytest.fixture
def first_word_file(tmp_path):
    """Questions whose gold answer is the context's first word: what the silent model answers.

    With all-zero logits every span ties and decoding takes the lowest window, start and
    end first, i.e. the first context token; one-token names make that exactly the gold.
    """
    names = ["Anna", "Peter", "Maria", "David", "Sarah", "Daniel"]
    records = [
        make_record(f"q{i}", f"{name} inspects the pump P-{i} every {10 + i} days.", f"Who inspects the pump P-{i}?", name)
        for i, name in enumerate(names)
    ]
    return write_flat(tmp_path / "first_word.json", records)


def test_each_model_reports_its_own_calibrated_confidence(tiny_model_dir, silent_model_dir, first_word_file, tmp_path,
                                                          capsys):
    """The tuned model's qa_settings.json has a calibration: its confidence is calibrated, the base model's is not."""
    plain = run_report(tmp_path, "--tuned_model", silent_model_dir, "--data_file", first_word_file)
    calibration = {"method": "platt", "slope": 1.0, "intercept": -2.0, "fitted_on": 50}
    (silent_model_dir / "qa_settings.json").write_text(json.dumps({"calibration": calibration}), encoding="utf-8")
    capsys.readouterr()
    report = run_report(tmp_path, "--base_model", tiny_model_dir, "--tuned_model", silent_model_dir,
                        "--data_file", first_word_file)
    assert report["models"]["tuned"]["confidence"] == "calibrated, platt (slope 1, intercept -2)"
    assert report["models"]["base"]["confidence"] == "softmax"
    for qid, confidence in report["confidence"].items():
        softmax = plain["confidence"][qid]["tuned"]
        expected = 1 / (1 + math.exp(-(math.log(softmax / (1 - softmax)) - 2.0)))
        assert confidence["tuned"] == pytest.approx(expected) and confidence["tuned"] < softmax
    assert "confidence: calibrated, platt" in capsys.readouterr().out


def test_compare_reports_each_model_under_its_own_role(tiny_model_dir, silent_model_dir, first_word_file, tmp_path,
                                                       capsys):
    # Reference: the random tiny model alone. The silent model answers every gold span.
    alone = run_report(tmp_path, "--base_model", tiny_model_dir, "--data_file", first_word_file)
    assert alone["models"]["base"]["metrics"]["exact_match"] < 50  # it is not the silent model in disguise
    capsys.readouterr()

    report = run_report(tmp_path, "--base_model", tiny_model_dir, "--tuned_model", silent_model_dir,
                        "--data_file", first_word_file, "--batch_size", "4")
    assert report["models"]["base"]["path"] == str(tiny_model_dir)
    assert report["models"]["tuned"]["path"] == str(silent_model_dir)
    gold = {r["id"]: r["answers"]["text"][0] for r in json.loads(first_word_file.read_text())["data"]}
    assert {i: p["tuned"] for i, p in report["predictions"].items()} == gold
    assert report["models"]["tuned"]["metrics"] == {"exact_match": 100.0, "f1": 100.0}
    assert {i: p["base"] for i, p in report["predictions"].items()} == {
        i: p["base"] for i, p in alone["predictions"].items()}
    assert report["models"]["base"]["metrics"] == alone["models"]["base"]["metrics"]
    printed = capsys.readouterr().out
    header, _, first_row = printed.splitlines()[:3]
    assert header.split() == ["question", "|", "gold", "|", "base", "|", "tuned"]
    assert first_row.split("|")[0].strip() == "Who inspects the pump P-0?"
    assert first_row.split("|")[1].strip() == "Anna"
    # The tuned model's answer, with its confidence: the softmax over its candidates (it has no calibration).
    assert re.fullmatch(r"Anna \(\d+%\)", first_row.split("|")[3].strip())
    assert report["models"]["tuned"]["confidence"] == "softmax" and report["models"]["tuned"]["confidence_ece"] >= 0
    assert all(0 <= c["tuned"] <= 1 for c in report["confidence"].values()) and set(report["confidence"]) == set(gold)
    assert "tuned: exact_match=100.00, f1=100.00" in printed


def test_no_answer_is_shown_and_scored_in_v2(silent_model_dir, labeled_file, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    qa_predict.main(["--tuned_model", str(silent_model_dir), "--data_file", str(labeled_file), "--version_2_with_negative",
                     "--null_score_diff_threshold", "-1", "--output_file", str(report_path), "--max_seq_length", "64",
                     "--doc_stride", "16"])
    report = json.loads(report_path.read_text())
    assert all(p["tuned"] == "" for p in report["predictions"].values())
    metrics = report["models"]["tuned"]["metrics"]
    assert metrics["NoAns_exact"] == 100.0 and metrics["HasAns_exact"] == 0.0 and metrics["NoAns_total"] == 1
    assert qa_predict.NO_ANSWER in capsys.readouterr().out


def test_lora_adapter_directory_loads_as_tuned_model(tiny_model_dir, labeled_file, tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from slmqa.modeling.loading import quiet_peft

    base = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
    with quiet_peft():
        peft_model = get_peft_model(base, LoraConfig(task_type=TaskType.QUESTION_ANS, r=2, target_modules=["query", "value"]))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(adapter_dir)
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--tuned_model", str(adapter_dir), "--data_file", str(labeled_file),
                            "--output_file", str(report_path), "--max_seq_length", "64", "--doc_stride", "16"])
    assert code == 0
    assert len(json.loads(report_path.read_text())["predictions"]) == 7


def test_ad_hoc_question_and_interactive(tiny_model_dir, tmp_path, capsys):
    context_file = tmp_path / "doc.txt"
    context_file.write_text("The boiler B-7 must be inspected every 30 days by a licensed engineer.", encoding="utf-8")
    report_path = tmp_path / "report.json"
    code = qa_predict.main(["--tuned_model", str(tiny_model_dir), "--context_file", str(context_file),
                            "--question", "How often is B-7 inspected?", "--question", "Who inspects it?",
                            "--output_file", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    answers = [p["tuned"] for p in report["predictions"].values()]
    assert len(answers) == 2 and all(a in context_file.read_text() for a in answers)
    assert report["models"]["tuned"]["metrics"] == {}

    args = qa_predict.build_parser().parse_args(["--tuned_model", str(tiny_model_dir), "--context_file", str(context_file)])
    capsys.readouterr()
    qa_predict.interactive(args, stdin=io.StringIO("Who inspects it?\n\n"))
    assert "tuned:" in capsys.readouterr().out


def test_missing_inputs_are_clear_errors(tiny_model_dir, caplog):
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir)]) == 2
    assert "--data_file" in caplog.text
    assert qa_predict.main(["--data_file", "x.json"]) == 2
    assert "--base_model and/or --tuned_model" in caplog.text


def qa_settings(**values):
    settings = {"max_seq_length": 192, "doc_stride": 48, "max_answer_length": 50, "n_best_size": 7,
                "version_2_with_negative": True, "null_score_diff_threshold": -1.5,
                "threshold_source": "best_f1_thresh on the validation split"}
    return {**settings, **values}


def test_malformed_settings_file_stops_main(tmp_path, labeled_file, caplog):
    model_dir = tmp_path / "tuned"
    model_dir.mkdir()
    write_json(model_dir / "qa_settings.json", "{oops")
    assert qa_predict.main(["--tuned_model", str(model_dir), "--data_file", str(labeled_file)]) == 2
    assert str(model_dir / "qa_settings.json") in caplog.text and "invalid JSON" in caplog.text


@pytest.fixture
def long_context_file(tmp_path):
    """Contexts of about 60 tokens: several windows each at 32 tokens, one at the default 384."""
    records = []
    for i in range(4):
        context = f"The pump P-{i} runs at {100 + i} rpm. " + f"The fan F-{i} runs at {200 + i} rpm. " * 4
        records.append(make_record(f"q{i}", context, f"How fast does pump P-{i} run?", f"{100 + i} rpm"))
    records.append(make_record("none", "The valve is blue. " * 8, "Who made the valve?", None, is_impossible=True))
    return write_flat(tmp_path / "long.json", records)


def with_settings(model_dir, tmp_path, name, **settings):
    """A copy of `model_dir` that carries a qa_settings.json."""
    import shutil

    directory = tmp_path / name
    shutil.copytree(model_dir, directory)
    write_json(directory / "qa_settings.json", qa_settings(max_seq_length=32, doc_stride=8, **settings))
    return directory


def test_tuned_model_settings_are_used_for_both_models(silent_model_dir, long_context_file, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="slmqa")
    # The silent model's null score ties with every span: the threshold alone decides.
    refusing = with_settings(silent_model_dir, tmp_path, "refusing", null_score_diff_threshold=-1.0)
    report = run_report(tmp_path, "--base_model", silent_model_dir, "--tuned_model", refusing,
                        "--data_file", long_context_file)
    assert all(p == {"base": "", "tuned": ""} for p in report["predictions"].values())
    for model in report["models"].values():
        assert "HasAns_exact" in model["metrics"]  # v2 scoring, as qa_settings.json says
        assert model["windows"] > len(report["predictions"])  # 32-token windows, not 384
    assert report["version_2_with_negative"] is True
    assert report["settings"]["from"] == str(refusing)
    assert report["settings"]["values"]["null_score_diff_threshold"] == -1.0
    assert report["settings"]["sources"]["null_score_diff_threshold"].startswith("qa_settings.json")
    assert "null_score_diff_threshold=-1.0 (qa_settings.json: best_f1_thresh on the validation split)" in caplog.text

    answering = with_settings(silent_model_dir, tmp_path, "answering", null_score_diff_threshold=1.0)
    report = run_report(tmp_path, "--base_model", silent_model_dir, "--tuned_model", answering,
                        "--data_file", long_context_file)
    assert all(p["base"] and p["tuned"] for p in report["predictions"].values())
    assert "HasAns_exact" in report["models"]["tuned"]["metrics"]

    # Flags override the file: threshold, and v2 forced off.
    report = run_report(tmp_path, "--tuned_model", refusing, "--data_file", long_context_file,
                        "--null_score_diff_threshold", "1")
    assert all(p["tuned"] for p in report["predictions"].values())
    assert report["settings"]["sources"]["null_score_diff_threshold"] == "flag"
    report = run_report(tmp_path, "--tuned_model", refusing, "--data_file", long_context_file,
                        "--no-version_2_with_negative")
    assert all(p["tuned"] for p in report["predictions"].values())
    assert "HasAns_exact" not in report["models"]["tuned"]["metrics"] and report["version_2_with_negative"] is False


def test_base_model_settings_are_read_when_alone(silent_model_dir, long_context_file, tmp_path):
    refusing = with_settings(silent_model_dir, tmp_path, "refusing", null_score_diff_threshold=-1.0)
    report = run_report(tmp_path, "--base_model", refusing, "--data_file", long_context_file)
    assert all(p == {"base": ""} for p in report["predictions"].values())
    assert report["settings"]["from"] == str(refusing)


# --------------------------------------------------------------------------- runtime: --backend/--device/--dtype


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_bfloat16_predicts(tiny_model_dir, labeled_file, tmp_path, monkeypatch, caplog, native_bf16):
    """It predicts either way; where the CPU has no bfloat16 instructions it warns that bf16 is emulated."""
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: native_bf16)
    caplog.set_level(logging.WARNING, logger="slmqa")
    seen = []
    real_logits = backends.TorchBackend.logits

    def spy(self, batch):
        parameter = next(self.model.parameters())
        seen.append((parameter.device.type, parameter.dtype))
        return real_logits(self, batch)

    monkeypatch.setattr(backends.TorchBackend, "logits", spy)
    report = run_report(tmp_path, "--tuned_model", tiny_model_dir, "--data_file", labeled_file, "--device", "cpu",
                        "--dtype", "bfloat16", "--max_seq_length", "64", "--doc_stride", "16")
    assert set(seen) == {("cpu", torch.bfloat16)}
    assert report["runtime"] == {"backend": "torch", "device": "cpu", "dtype": "bfloat16", "threads": None}
    warned = any("emulated and many times slower" in record.getMessage() for record in caplog.records)
    assert warned == (not native_bf16)
    contexts = {r["id"]: r["context"] for r in json.loads(labeled_file.read_text())["data"]}
    assert len(report["predictions"]) == 7
    assert all(p["tuned"] and p["tuned"] in contexts[i] for i, p in report["predictions"].items())
    assert {"exact_match", "f1"} <= set(report["models"]["tuned"]["metrics"])


def test_default_device_is_cpu_without_cuda(tiny_model_dir, labeled_file, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = run_report(tmp_path, "--tuned_model", tiny_model_dir, "--data_file", labeled_file,
                        "--max_seq_length", "64", "--doc_stride", "16")
    assert report["runtime"] == {"backend": "torch", "device": "cpu", "dtype": "float32", "threads": None}


@pytest.mark.parametrize("backend, dtype", [("torch", "int8"), ("onnx", "float32"), ("onnx", "int8")])
def test_every_backend_answers_every_question(tiny_model_dir, labeled_file, tmp_path, backend, dtype):
    import shutil

    model = tmp_path / "model"  # a private copy: the ONNX export is cached beside it
    shutil.copytree(tiny_model_dir, model)
    report = run_report(tmp_path, "--tuned_model", model, "--data_file", labeled_file, "--backend", backend,
                        "--dtype", dtype, "--max_seq_length", "64", "--doc_stride", "16")
    assert report["runtime"] == {"backend": backend, "device": "cpu", "dtype": dtype, "threads": None}
    assert len(report["predictions"]) == 7
    assert {"exact_match", "f1"} <= set(report["models"]["tuned"]["metrics"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "cpu", "--dtype", "float16"], "float16 is not supported on the CPU"),
        (["--dtype", "float16"], "float16 is not supported on the CPU"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "cuda:1"], "CUDA is not available"),
        (["--backend", "onnx", "--dtype", "bfloat16"], "--backend onnx runs float32 or int8, not bfloat16"),
        (["--quantize", "int8"], "--quantize int8 is now --dtype int8"),
    ],
)
def test_impossible_runtime_settings_stop_main(tiny_model_dir, labeled_file, tmp_path, monkeypatch, caplog, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    folder = document_folder(tmp_path)
    for mode in (["--data_file", str(labeled_file)], ["--documents", str(folder), "--question", "Which torque?"]):
        caplog.clear()
        assert qa_predict.main(["--tuned_model", str(tiny_model_dir), *mode, *flags]) == 2
        assert message in caplog.text


def test_int8_on_cuda_is_refused_before_loading(tiny_model_dir, labeled_file, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(backends, "load_model", lambda *a, **k: pytest.fail("model loaded despite the error"))
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--data_file", str(labeled_file),
                            "--dtype", "int8", "--device", "cuda"]) == 2
    assert "int8 kernels run only on the CPU" in caplog.text


# --------------------------------------------------------------------------- --documents


def test_documents_answers_each_question_with_its_source(tmp_path, tiny_model_dir):
    report = tmp_path / "answers.json"
    printed = run_main(qa_predict.main, ["--tuned_model", tiny_model_dir, "--documents", document_folder(tmp_path),
                                         "--question", "What is the torque setting of the CM-7?", "--question",
                                         "How fast is the F-2 fan?", "--top_k", "2", "--output_file", report])
    assert "Q: What is the torque setting of the CM-7?" in printed and "chars" in printed
    assert "Building index" not in printed and "DEBUG" not in printed  # bm25s keeps its debug lines to itself
    content = json.loads(report.read_text())
    assert len(content["readings"]) == 2 and content["documents"]["documents"] == 6
    assert content["documents"]["backend"] == "torch"
    for reading in content["readings"]:
        assert 1 <= len(reading["answers"]) <= 2
        assert all(set(a) >= {"text", "document", "start", "end", "passage"} for a in reading["answers"])


def test_documents_honour_the_runtime_and_the_decoding_flags(tmp_path, tiny_model_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    report = tmp_path / "answers.json"
    folder = document_folder(tmp_path)
    question = ["--question", "What is the torque setting of the CM-7?"]
    run_main(qa_predict.main, ["--tuned_model", model, "--documents", folder, *question,
                               "--backend", "onnx", "--dtype", "int8", "--output_file", report])
    assert json.loads(report.read_text())["documents"]["backend"] == "onnx-int8"
    # A threshold no span beats: every passage abstains, as a v2 model with that threshold would.
    run_main(qa_predict.main, ["--tuned_model", model, "--documents", folder, *question,
                               "--version_2_with_negative", "--null_score_diff_threshold=-1e9", "--output_file", report])
    content = json.loads(report.read_text())
    assert content["readings"][0]["no_answer"] and content["documents"]["settings_source"] == "flags"


def test_documents_interactive_and_errors(tmp_path, tiny_model_dir, capsys, caplog, monkeypatch):
    folder = document_folder(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("Where is the compressor?\n\n"))
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(folder), "--interactive"]) == 0
    assert "Q: Where is the compressor?" in capsys.readouterr().out
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(tmp_path / "none"), "--question", "x"]) == 2
    assert "not found" in caplog.text
    assert qa_predict.main(["--documents", str(folder), "--question", "x"]) == 2
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--documents", str(folder), "--question", "x",
                            "--passage_ratio", "1.5"]) == 2
    assert "passage_ratio must be in [0, 1]" in caplog.text


# --------------------------------------------------------------------------- column mapping


def test_data_with_its_own_column_names_is_compared(tiny_model_dir, tmp_path):
    rows = [{"qid": f"q{i}", "query": f"How fast does pump P-{i} run?", "passage": f"The pump P-{i} runs at {100 + i} rpm.",
             "reply": f"{100 + i} rpm"} for i in range(4)]
    rows.append({"qid": "broken", "query": "", "passage": "Text.", "reply": "x"})
    data = write_flat(tmp_path / "mapped.json", rows)
    mapping = ["--id_column", "qid", "--question_column", "query", "--context_column", "passage", "--answer_column", "reply"]
    report = run_report(tmp_path, "--tuned_model", tiny_model_dir, "--data_file", data, *mapping, "--max_seq_length", "64",
                        "--doc_stride", "16")
    assert sorted(report["predictions"]) == ["q0", "q1", "q2", "q3"] and report["examples"] == 4
    assert {"exact_match", "f1"} <= set(report["models"]["tuned"]["metrics"])
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--data_file", str(data), "--max_seq_length", "64",
                            "--doc_stride", "16"]) == 2  # without the mapping no record has a question


def test_documents_with_a_data_file_evaluates_the_whole_path(tmp_path, tiny_model_dir):
    from tests.document_helpers import MANUAL

    folder = document_folder(tmp_path)
    records = [
        make_record("torque", MANUAL, "What is the torque setting of the CM-7 compressor?", "25 Nm", title="manual.txt"),
        make_record("service", MANUAL, "How often must the compressor be serviced?", "every 400 operating hours"),
        make_record("lost", "The hall was painted by Ada in May.", "Who painted the hall?", "Ada"),
    ]
    data = write_flat(tmp_path / "labelled.json", records)
    out = tmp_path / "evaluation.json"
    printed = run_main(qa_predict.main, ["--tuned_model", tiny_model_dir, "--documents", folder, "--data_file", data,
                                         "--output_file", out, "--index_dir", tmp_path / "index"])
    report = json.loads(out.read_text())
    assert report["questions"] == 3 and report["gold_document_found"] == 2 and report["gold_document_not_in_folder"] == 1
    assert report["retrieval"]["recall@8"] == 1.0 and report["retriever"] == "hybrid"  # the default
    assert {"exact", "f1", "HasAns_total"} <= set(report["reader_over_retrieved"])
    assert report["reader_given_gold_context"]["total"] == 2
    assert {row["id"] for row in report["per_question"]} == {"torque", "service", "lost"}
    assert "retrieval: recall@1" in printed and "latency p50" in printed
    assert (tmp_path / "index" / "manifest.json").is_file()  # the same saved index serve.py would use
    assert report["passage_ratio"] == 0.9 and 1 <= report["mean_passages_read"] <= report["passages"] == 8
    assert "passages read on average (at most 8, passage ratio 0.9)" in printed
    run_main(qa_predict.main, ["--tuned_model", tiny_model_dir, "--documents", folder, "--data_file", data, "--output_file", out,
                               "--index_dir", tmp_path / "index", "--passage_ratio", "0"])
    every = json.loads(out.read_text())
    assert every["passage_ratio"] == 0.0 and every["mean_passages_read"] >= report["mean_passages_read"]
