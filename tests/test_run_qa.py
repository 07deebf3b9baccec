"""End to end, in-process: run_qa.py trains, evaluates, predicts, saves and resumes."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from slmqa.modeling.precision import cpu_has_native_bf16
from tests.helpers import common_args, make_record, run_qa, write_flat

V2_KEYS = {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1",
           "NoAns_total", "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"}


def test_train_eval_predict_writes_loadable_outputs(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 3, "--eval_strategy", "steps",
           "--eval_steps", 3, "--save_steps", 3, "--logging_steps", 1)
    for name in ("README.md", "results.md", "training_curves.png", "model.safetensors", "config.json", "tokenizer.json", "all_results.json", "train_results.json",
                 "eval_results.json", "predict_results.json", "trainer_state.json", "data_report.json", "run_args.json",
                 "eval_predictions.json", "eval_nbest_predictions.json", "predict_predictions.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "all_results.json").read_text())
    for key in ("train_loss", "eval_exact_match", "eval_f1", "predict_f1", "train_kept", "validation_repaired_spans",
                "train_windows", "train_windows_kept", "train_answer_windows", "validation_windows"):
        assert key in results, key
    data_report = json.loads((out / "data_report.json").read_text())
    assert data_report["train"]["counts"]["windows_kept"] == results["train_windows_kept"] == 12  # one window each
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert any("eval_f1" in entry for entry in state["log_history"])
    predictions = json.loads((out / "eval_predictions.json").read_text())
    assert sorted(predictions) == sorted(f"validation-{i}" for i in range(12))
    run_args = json.loads((out / "run_args.json").read_text())
    assert run_args["DataTrainingArguments"]["doc_stride"] == 16
    # Answer confidence is calibrated on the validation predictions, saved with the settings and shown in the card.
    calibration = json.loads((out / "qa_settings.json").read_text())["calibration"]
    assert calibration["method"] in ("temperature", "platt") and calibration["fitted_on"] == 12
    assert 0 <= calibration["ece_before"] <= 1 and 0 <= calibration["ece_after"] <= 1
    card = (out / "README.md").read_text()
    assert "## Answer confidence" in card and "Expected calibration error" in card
    assert f"**{calibration['ece_before']:.4f}** uncalibrated" in card and "| c | answered | coverage |" in card

    card = (out / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and str(tiny_model_dir) in card
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    AutoModelForQuestionAnswering.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).is_fast


def test_resumes_from_last_complete_checkpoint(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    args = [*common_args(tiny_model_dir, small_dataset, out), "--do_train", "--max_steps", 4, "--save_steps", 2]
    run_qa(*args)
    # Make it look like the run died after its first checkpoint (and mid-way through the second).
    shutil.rmtree(out / "checkpoint-4")
    (out / "checkpoint-4").mkdir()
    (out / "checkpoint-4" / "trainer_state.json").write_text("{truncated", encoding="utf-8")
    (out / "model.safetensors").unlink()
    output = run_qa(*args)
    assert "Skipping incomplete checkpoint" in output
    assert f"Resuming training from {out / 'checkpoint-2'}" in output
    assert "Resuming training from checkpoint with epoch 0 and global step 2" in output
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_refuses_to_overwrite_a_finished_model(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "run"
    args = [*common_args(tiny_model_dir, small_dataset, out), "--do_train", "--max_steps", 1, "--save_strategy", "no"]
    run_qa(*args)
    output = run_qa(*args, expect=2)
    assert "already holds a trained model" in output and "--overwrite_output_dir" in output
    run_qa(*args, "--overwrite_output_dir")


def test_version_2_scores_and_best_model_on_f1(tiny_model_dir, tmp_path):
    records = []
    for i in range(16):
        context = f"Unit {i} runs at {100 + i} rpm. Its filter is code F{i}."
        if i % 3 == 0:
            records.append(make_record(f"r{i}", context, "Who built the unit?", None, is_impossible=True))
        else:
            records.append(make_record(f"r{i}", context, f"How fast does unit {i} run?", f"{100 + i} rpm"))
    data = {split: write_flat(tmp_path / f"{split}.json", records) for split in ("train", "validation", "test")}
    out = tmp_path / "run"
    run_qa(*common_args(tiny_model_dir, data, out), "--version_2_with_negative", "--max_steps", 4,
           "--eval_strategy", "steps", "--eval_steps", 2, "--save_steps", 2, "--load_best_model_at_end",
           "--metric_for_best_model", "eval_f1")
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {k.removeprefix("eval_") for k in metrics} >= V2_KEYS
    assert metrics["eval_NoAns_total"] == 6 and metrics["eval_total"] == 16
    null_odds = json.loads((out / "eval_null_odds.json").read_text())
    assert len(null_odds) == 16
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and state["best_model_checkpoint"]
    # The threshold that scored best on validation is saved for qa_predict.py and the model card.
    settings = json.loads((out / "qa_settings.json").read_text())
    assert settings["null_score_diff_threshold"] == metrics["eval_best_f1_thresh"]
    assert settings["version_2_with_negative"] is True and settings["max_seq_length"] == 64
    assert "eval_best_f1_thresh" in settings["threshold_source"]
    assert settings["calibration"]["fitted_on"] == 16  # answered or not, every validation question has a confidence


def test_stage_flags_need_their_files(tiny_model_dir, small_dataset, tmp_path):
    output = run_qa("--model_name_or_path", tiny_model_dir, "--validation_file", small_dataset["validation"],
                    "--do_train", "--output_dir", tmp_path / "x", expect=2)
    assert "--do_train needs --train_file" in output and "Traceback" not in output


@pytest.mark.slow
def test_real_minilm_few_steps_without_library_noise(base_model_path, small_dataset, tmp_path):
    out = tmp_path / "minilm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        output = run_qa(*common_args(base_model_path, small_dataset, out), "--max_steps", 2, "--learning_rate", 5e-5,
                        "--disable_tqdm", "false")
    results = json.loads((out / "all_results.json").read_text())
    assert {"eval_exact_match", "eval_f1", "predict_exact_match", "predict_f1"} <= set(results)
    # What a newcomer reads as trouble is not printed; the one fact in it is, once.
    for noise in ("LOAD REPORT", "Do not forget to share", "don't have a corresponding argument", "were not sharded"):
        assert noise not in output, noise
    assert not [str(w.message) for w in caught if "pin_memory" in str(w.message)]
    assert output.count("initialised at random") == 1 and "qa_outputs" in output
    # The reported scores are those of the written predictions against the files' gold answers.
    from slmqa.data.formats import read_records
    from slmqa.decoding.squad_metrics import squad_v1_scores

    for prefix, split in (("eval", "validation"), ("predict", "test")):
        records = read_records(small_dataset[split])
        predictions = json.loads((out / f"{prefix}_predictions.json").read_text())
        contexts = {r["id"]: r["context"] for r in records}
        assert set(predictions) == set(contexts) and all(p in contexts[q] for q, p in predictions.items())
        expected = squad_v1_scores(predictions, {r["id"]: r["answers"]["text"] for r in records})
        assert results[f"{prefix}_f1"] == pytest.approx(expected["f1"])
        assert results[f"{prefix}_exact_match"] == pytest.approx(expected["exact_match"])
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"] and config["hidden_size"] == 384


def test_tensorboard_logging(tiny_model_dir, small_dataset, tmp_path, monkeypatch):
    logs = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(logs))
    run_qa(*common_args(tiny_model_dir, small_dataset, tmp_path / "run"), "--do_train", "--max_steps", 2,
           "--logging_steps", 1, "--report_to", "tensorboard")
    assert list(logs.glob("events.out.tfevents.*"))


def test_gpu_fast_path_options_also_run_on_cpu(tiny_model_dir, small_dataset, tmp_path):
    """bf16 autocast and fused AdamW (the GPU recipe in README) go through the whole pipeline.

    On a CPU without bfloat16 instructions it still runs, and says that it is emulated there.
    """
    out = tmp_path / "run"
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 2, "--save_strategy", "no",
           "--bf16", "true", "--use_cpu", "true", "--optim", "adamw_torch_fused")
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_loss"] == results["train_loss"] and results["train_loss"] > 0  # finite, not NaN
    predictions = json.loads((out / "eval_predictions.json").read_text())
    assert sorted(predictions) == sorted(f"validation-{i}" for i in range(12))
    run_args = json.loads((out / "run_args.json").read_text())
    training = next(group for group in run_args.values() if "optim" in group)
    assert training["bf16"] is True and training["optim"] == "adamw_torch_fused"
    warned = "--bf16 trains in bfloat16 on a CPU without bfloat16 instructions" in output
    assert warned == (not cpu_has_native_bf16())


def test_auto_precision_says_what_it_picked_and_trains_in_it(tiny_model_dir, small_dataset, tmp_path, monkeypatch):
    """On a CPU listing avx512_bf16 (faked here) a run trains under bf16 autocast; on one without, in float32."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # the same choice on a machine with a GPU
    monkeypatch.setenv("SLMQA_CPU_FLAGS", "avx2 avx512_bf16")
    out = tmp_path / "bf16"
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 2, "--save_strategy", "no")
    assert "Precision: bf16 (auto: this CPU has bfloat16 instructions (avx512_bf16))" in output
    training = next(group for group in json.loads((out / "run_args.json").read_text()).values() if "optim" in group)
    assert training["bf16"] is True and json.loads((out / "all_results.json").read_text())["train_loss"] > 0
    monkeypatch.setenv("SLMQA_CPU_FLAGS", "avx2")
    out = tmp_path / "fp32"
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 2, "--save_strategy", "no")
    assert "Precision: fp32 (auto: this CPU has no bfloat16 instructions" in output
    training = next(group for group in json.loads((out / "run_args.json").read_text()).values() if "optim" in group)
    assert training["bf16"] is False


SECRETS = ("hf_modelTokenSecret123", "hf_hubTokenSecret456")


def test_secrets_never_reach_disk_and_our_model_card_is_pushed(tiny_model_dir, small_dataset, tmp_path, monkeypatch,
                                                               capfd):
    """--token / --hub_token stay out of every file in output_dir and of the logs; the push uploads our card."""
    from concurrent.futures import Future

    import transformers.trainer

    import run_qa as run_qa_module
    from tests.helpers import reset_accelerate

    uploads = []

    class OfflineHub:
        def create_repo(self, repo_id, **kwargs):
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, folder_path, **kwargs):
            readme = Path(folder_path, "README.md")
            uploads.append(readme.read_text(encoding="utf-8") if readme.is_file() else None)
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: OfflineHub())
    out = tmp_path / "run"
    argv = [*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 2, "--save_steps", 1, "--token",
            SECRETS[0], "--hub_token", SECRETS[1], "--push_to_hub", "--hub_model_id", "someone/qa"]
    try:
        code = run_qa_module.main([str(arg) for arg in argv])
    finally:
        reset_accelerate()
    assert code == 0
    logs = capfd.readouterr()
    files = [path for path in out.rglob("*") if path.is_file()]
    assert any(path.name == "training_args.bin" for path in files) and any("checkpoint-" in str(p) for p in files)
    for path in files:
        content = path.read_bytes()
        assert not any(secret.encode() in content for secret in SECRETS), path
    assert not any(secret in logs.out + logs.err for secret in SECRETS)
    run_args = json.loads((out / "run_args.json").read_text())
    assert run_args["ModelArguments"]["token"] == "<redacted>"
    # The final push (after evaluation) uploads the card we wrote, with the eval results in it.
    assert uploads and uploads[-1] == (out / "README.md").read_text(encoding="utf-8")
    assert "qa_predict.py" in uploads[-1] and "eval_f1" in uploads[-1]


def test_only_unanswerable_or_only_answerable_evaluation(tiny_model_dir, tmp_path):
    """Best-model selection on eval_f1 works with one-sided evaluation data; a metric of an empty subset is refused early."""
    def records(answerable: bool) -> list[dict]:
        rows = []
        for i in range(6):
            context = f"Unit {i} runs at {100 + i} rpm."
            if answerable:
                rows.append(make_record(f"a{i}", context, f"How fast does unit {i} run?", f"{100 + i} rpm"))
            else:
                rows.append(make_record(f"n{i}", context, "Who built the unit?", None, is_impossible=True))
        return rows

    train = write_flat(tmp_path / "train.json", records(True) + records(False))
    for answerable, missing_metric in ((False, "eval_HasAns_f1"), (True, "eval_NoAns_f1")):
        validation = write_flat(tmp_path / f"validation-{answerable}.json", records(answerable))
        data = {"train": train, "validation": validation, "test": validation}
        out = tmp_path / f"run-{answerable}"
        run_qa(*common_args(tiny_model_dir, data, out), "--version_2_with_negative", "--max_steps", 2,
               "--eval_strategy", "steps", "--eval_steps", 1, "--save_steps", 1, "--load_best_model_at_end",
               "--metric_for_best_model", "eval_f1")
        assert json.loads((out / "trainer_state.json").read_text())["best_metric"] is not None
        output = run_qa(*common_args(tiny_model_dir, data, tmp_path / f"refused-{answerable}"),
                        "--version_2_with_negative", "--max_steps", 2, "--eval_strategy", "steps", "--eval_steps", 1,
                        "--save_steps", 1, "--load_best_model_at_end", "--metric_for_best_model", missing_metric,
                        expect=2)
        assert f"metric_for_best_model='{missing_metric}'" in output and "Traceback" not in output
        assert not (tmp_path / f"refused-{answerable}" / "checkpoint-1").exists()


def test_max_answer_length_auto_is_resolved_before_run_args_are_written(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "auto"
    output = run_qa(*common_args(tiny_model_dir, small_dataset, out), "--max_steps", 1, "--max_answer_length", "auto",
                    "--keep_answerless_windows", 0.5)  # fmt: skip
    # small_dataset answers: "<n> bar" / "<n> Nm" / "<n> rpm" are 2 tokens each.
    assert "max_answer_length auto -> 2 (99th percentile of 12 training answers)" in output
    run_args = json.loads((out / "run_args.json").read_text())
    assert run_args["DataTrainingArguments"]["max_answer_length"] == 2
    assert run_args["DataTrainingArguments"]["keep_answerless_windows"] == 0.5
    card = (out / "README.md").read_text()
    assert "| `max_answer_length` | 2 |" in card and "| `keep_answerless_windows` | 0.5 |" in card


def test_max_answer_length_auto_without_training_is_an_error(tiny_model_dir, small_dataset, tmp_path):
    output = run_qa(*common_args(tiny_model_dir, small_dataset, tmp_path / "x"), "--do_eval", "--max_answer_length", "auto",
                    expect=2)  # fmt: skip
    assert "max_answer_length auto is taken from the training data, but this run does not train: pass a number" in output
