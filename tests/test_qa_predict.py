"""qa_predict.py: base vs tuned side by side, adapters, no-answer output, decoding settings, device and dtype."""

from __future__ import annotations

import io
import json
import logging

import pytest
import torch

import qa_predict
from conftest import make_record, write_flat


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
    assert first_row.split("|")[1].strip() == first_row.split("|")[3].strip() == "Anna"
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

    base = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir)
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


# --------------------------------------------------------------------------- decoding settings

DEFAULTS = {"max_seq_length": 384, "doc_stride": 128, "max_answer_length": 30, "n_best_size": 20,
            "version_2_with_negative": False, "null_score_diff_threshold": 0.0}
NO_FLAGS = dict.fromkeys(DEFAULTS)


def qa_settings(**values):
    settings = {"max_seq_length": 192, "doc_stride": 48, "max_answer_length": 50, "n_best_size": 7,
                "version_2_with_negative": True, "null_score_diff_threshold": -1.5,
                "threshold_source": "best_f1_thresh on the validation split"}
    return {**settings, **values}


def test_decoding_settings_defaults_match_run_qa(tmp_path):
    from args import DataTrainingArguments

    values, sources = qa_predict.decoding_settings(NO_FLAGS, str(tmp_path))
    assert values == DEFAULTS
    reference = DataTrainingArguments(validation_file="x")
    assert values == {name: getattr(reference, name) for name in DEFAULTS}
    assert set(sources.values()) == {"default"}
    # A Hub id is no directory: nothing to read, no error.
    assert qa_predict.decoding_settings(NO_FLAGS, "sentence-transformers/all-MiniLM-L6-v2")[0] == DEFAULTS
    assert qa_predict.decoding_settings(NO_FLAGS, None)[0] == DEFAULTS


def test_decoding_settings_resolution_order(tmp_path):
    run_args = {"ModelArguments": {"model_name_or_path": "m"},
                "DataTrainingArguments": {"train_file": "t.json", "max_seq_length": 256, "doc_stride": 64,
                                          "max_answer_length": 40, "version_2_with_negative": False,
                                          "null_score_diff_threshold": 0.0}}  # n_best_size missing
    write_json(tmp_path / "run_args.json", run_args)
    values, sources = qa_predict.decoding_settings(NO_FLAGS, str(tmp_path))
    assert values == {**DEFAULTS, "max_seq_length": 256, "doc_stride": 64, "max_answer_length": 40}
    assert sources == {**dict.fromkeys(DEFAULTS, "run_args.json"), "n_best_size": "default"}

    # qa_settings.json beats run_args.json; its threshold_source is named with the threshold.
    write_json(tmp_path / "qa_settings.json", qa_settings())
    values, sources = qa_predict.decoding_settings(NO_FLAGS, str(tmp_path))
    assert values == {k: v for k, v in qa_settings().items() if k != "threshold_source"}
    assert sources == {**dict.fromkeys(DEFAULTS, "qa_settings.json"),
                       "null_score_diff_threshold": "qa_settings.json: best_f1_thresh on the validation split"}

    # An explicit flag beats both, also a False that switches v2 off and a 0.0 threshold.
    flags = {**NO_FLAGS, "max_seq_length": 128, "version_2_with_negative": False, "null_score_diff_threshold": 0.0}
    values, sources = qa_predict.decoding_settings(flags, str(tmp_path))
    assert (values["max_seq_length"], values["version_2_with_negative"], values["null_score_diff_threshold"]) == (
        128, False, 0.0)
    assert [sources[k] for k in ("max_seq_length", "version_2_with_negative", "null_score_diff_threshold")] == [
        "flag"] * 3
    assert (values["doc_stride"], sources["doc_stride"]) == (48, "qa_settings.json")

    # A setting missing from qa_settings.json falls through to run_args.json, then to the default.
    write_json(tmp_path / "qa_settings.json", {"null_score_diff_threshold": 2})
    values, sources = qa_predict.decoding_settings(NO_FLAGS, str(tmp_path))
    assert values["null_score_diff_threshold"] == 2.0 and isinstance(values["null_score_diff_threshold"], float)
    assert sources["null_score_diff_threshold"] == "qa_settings.json"
    assert (values["max_seq_length"], sources["max_seq_length"]) == (256, "run_args.json")
    assert sources["n_best_size"] == "default"


def test_decoding_settings_conflict_names_sources(tmp_path):
    write_json(tmp_path / "run_args.json", {"DataTrainingArguments": {"doc_stride": 128}})
    with pytest.raises(qa_predict.ConfigError, match=r"doc_stride \(128, run_args.json\).*max_seq_length \(64, flag\)"):
        qa_predict.decoding_settings({**NO_FLAGS, "max_seq_length": 64}, str(tmp_path))


@pytest.mark.parametrize(
    "name, content",
    [
        ("qa_settings.json", "{not json"),
        ("qa_settings.json", "[384, 128]"),
        ("qa_settings.json", {"max_seq_length": "384"}),
        ("qa_settings.json", {"version_2_with_negative": 1}),
        ("qa_settings.json", {"null_score_diff_threshold": True}),
        ("qa_settings.json", '{"null_score_diff_threshold": NaN}'),
        ("qa_settings.json", {"threshold_source": 3}),
        ("run_args.json", "{"),
        ("run_args.json", {"DataTrainingArguments": []}),
        ("run_args.json", {"DataTrainingArguments": {"doc_stride": 1.5}}),
    ],
)
def test_malformed_settings_file_is_config_error(tmp_path, name, content):
    path = write_json(tmp_path / name, content)
    with pytest.raises(qa_predict.ConfigError, match=str(path)):
        qa_predict.decoding_settings(NO_FLAGS, str(tmp_path))


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
    caplog.set_level(logging.INFO, logger="qa_predict")
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


# --------------------------------------------------------------------------- device and dtype


@pytest.mark.parametrize(
    "requested, dtype, quantize, cuda_devices, expected",
    [
        ("auto", "float32", None, 0, "cpu"),
        ("auto", "bfloat16", None, 0, "cpu"),
        ("auto", "float16", None, 1, "cuda"),
        ("auto", "float32", "int8", 2, "cpu"),  # int8 kernels are CPU-only: auto picks the CPU
        ("cpu", "bfloat16", None, 1, "cpu"),
        ("cuda", "float32", None, 1, "cuda"),
        ("cuda:1", "bfloat16", None, 2, "cuda:1"),
    ],
)
def test_resolve_device(requested, dtype, quantize, cuda_devices, expected):
    assert qa_predict.resolve_device(requested, dtype, quantize, cuda_devices) == expected


@pytest.mark.parametrize(
    "requested, dtype, quantize, cuda_devices, message",
    [
        ("cuda", "float32", None, 0, "CUDA is not available"),
        ("cuda:0", "float32", None, 0, "CUDA is not available"),
        ("cuda:2", "float32", None, 2, "only 2 CUDA device"),
        ("cpu", "float16", None, 1, "float16 is not supported on the CPU"),
        ("auto", "float16", None, 0, "float16 is not supported on the CPU"),
        ("cpu", "bfloat16", "int8", 0, "float32 only"),
        ("cuda", "float32", "int8", 1, "on the CPU in float32 only, not on cuda"),
    ],
)
def test_resolve_device_refuses(requested, dtype, quantize, cuda_devices, message):
    with pytest.raises(qa_predict.ConfigError, match=message):
        qa_predict.resolve_device(requested, dtype, quantize, cuda_devices)


def test_bad_device_name_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        qa_predict.build_parser().parse_args(["--device", "gpu"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_bfloat16_predicts(tiny_model_dir, labeled_file, tmp_path, monkeypatch, caplog, native_bf16):
    """It predicts either way; where the CPU has no bfloat16 instructions it warns that bf16 is emulated."""
    monkeypatch.setattr(qa_predict, "cpu_has_native_bf16", lambda: native_bf16)
    caplog.set_level(logging.WARNING, logger="qa_predict")
    seen = []
    real_predict_logits = qa_predict.predict_logits

    def spy(model, *args, **kwargs):
        parameter = next(model.parameters())
        seen.append((parameter.device.type, parameter.dtype))
        return real_predict_logits(model, *args, **kwargs)

    monkeypatch.setattr(qa_predict, "predict_logits", spy)
    report = run_report(tmp_path, "--tuned_model", tiny_model_dir, "--data_file", labeled_file, "--device", "cpu",
                        "--dtype", "bfloat16", "--max_seq_length", "64", "--doc_stride", "16")
    assert seen == [("cpu", torch.bfloat16)]
    assert report["runtime"] == {"device": "cpu", "dtype": "bfloat16", "quantize": None}
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
    assert report["runtime"] == {"device": "cpu", "dtype": "float32", "quantize": None}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "cpu", "--dtype", "float16"], "float16 is not supported on the CPU"),
        (["--dtype", "float16"], "float16 is not supported on the CPU"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "cuda:1"], "CUDA is not available"),
        (["--quantize", "int8", "--dtype", "bfloat16"], "float32 only"),
    ],
)
def test_impossible_device_settings_stop_main(tiny_model_dir, labeled_file, monkeypatch, caplog, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--data_file", str(labeled_file), *flags]) == 2
    assert message in caplog.text


def test_quantize_on_cuda_is_refused_before_loading(tiny_model_dir, labeled_file, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(qa_predict, "load_model", lambda *a, **k: pytest.fail("model loaded despite the error"))
    assert qa_predict.main(["--tuned_model", str(tiny_model_dir), "--data_file", str(labeled_file),
                            "--quantize", "int8", "--device", "cuda"]) == 2
    assert "not on cuda" in caplog.text
