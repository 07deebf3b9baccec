"""The hyperparameter search: its space, its stored study (resume, retry of a dead trial) and run_qa.py's search."""

from __future__ import annotations

import json

import optuna
import pytest

from slmqa.errors import ConfigError
from slmqa.training import hp_search
from tests.helpers import common_args, run_qa


def test_default_space_centres_on_the_run_values():
    space = hp_search.default_space(5e-5, 150, 3.0, lora_r=None)
    assert space["learning_rate"] == hp_search.Range(1.25e-5, 2e-4, log=True)
    assert space["max_steps"] == hp_search.Range(75, 300, integer=True)
    assert space["warmup_steps"] == hp_search.Range(0.0, 0.2)
    assert "num_train_epochs" not in space and "lora_r" not in space
    by_epochs = hp_search.default_space(1e-4, -1, 3.0, lora_r=8)
    assert by_epochs["num_train_epochs"] == hp_search.Range(1, 6, integer=True) and "max_steps" not in by_epochs
    assert by_epochs["lora_r"] == hp_search.Choices((4, 8, 16, 32))
    with pytest.raises(ConfigError, match="learning_rate"):
        hp_search.default_space(0.0, 10, 1.0, None)


def test_space_file_changes_adds_and_drops_dimensions(tmp_path):
    base = hp_search.default_space(5e-5, 150, 3.0, lora_r=None)
    path = tmp_path / "space.json"
    path.write_text(json.dumps({
        "learning_rate": {"low": 1e-5, "high": 1e-4, "log": True}, "weight_decay": [0.0, 0.01], "warmup_steps": None,
        "max_steps": {"low": 100, "high": 200},
    }))  # fmt: skip
    space = hp_search.read_space(path, {"learning_rate", "weight_decay", "warmup_steps", "max_steps"}, base)
    assert space == {
        "learning_rate": hp_search.Range(1e-5, 1e-4, log=True),
        "max_steps": hp_search.Range(100, 200, integer=True),
        "weight_decay": hp_search.Choices((0.0, 0.01)),
    }
    for bad, message in (
        ({"lerning_rate": [1e-5]}, "'lerning_rate' is not a training or LoRA option"),
        ({"learning_rate": {"low": 1e-3, "high": 1e-5}}, "low <= high"),
        ({"learning_rate": {"low": 0, "high": 1e-5, "log": True}}, "log scale needs low > 0"),
        ({"learning_rate": []}, "non-empty list"),
        ([1, 2], "expected an object"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message) as caught:
            hp_search.read_space(path, {"learning_rate"}, base)
        assert str(path) in str(caught.value)
    with pytest.raises(ConfigError, match="not found"):
        hp_search.read_space(tmp_path / "missing.json", {"learning_rate"}, base)


def test_best_config_is_the_given_run_with_the_best_values():
    given = {
        "model_name_or_path": "m", "learning_rate": 5e-5, "max_steps": 150, "output_dir": "out", "hp_search_trials": 8,
        "hp_search_storage": "sqlite:///x.db", "overwrite_output_dir": True, "use_lora": True, "lora_r": 8,
    }  # fmt: skip
    values = hp_search.with_lora_scale({"learning_rate": 1e-4, "max_steps": 220, "lora_r": 16}, lora_r=8, lora_alpha=16)
    assert values["lora_alpha"] == 32  # the scale alpha / r is kept
    config = hp_search.best_config(given, values, "out")
    assert config == {
        "model_name_or_path": "m", "learning_rate": 1e-4, "max_steps": 220, "output_dir": "out/best", "use_lora": True,
        "lora_r": 16, "lora_alpha": 32,
    }  # fmt: skip
    by_epochs = hp_search.best_config({"max_steps": 100, "output_dir": "o"}, {"num_train_epochs": 2}, "o")
    assert by_epochs == {"num_train_epochs": 2, "output_dir": "o/best"}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_left_running_by_a_dead_process_is_retried_with_its_values(tmp_path):
    storage = hp_search.default_storage(tmp_path)
    space = {"learning_rate": hp_search.Range(1e-5, 1e-3, log=True)}
    study = hp_search.open_study(storage, "s", seed=0, grace_s=1)
    dead = study.ask()  # what a killed process leaves: a running trial whose heartbeat stops
    dead_lr = dead.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
    study._storage.record_heartbeat(dead._trial_id)
    import time

    time.sleep(2.5)
    tried = []

    def run_trial(values, report):
        tried.append(values["learning_rate"])
        return 1.0

    resumed = hp_search.open_study(storage, "s", seed=0, grace_s=1)
    hp_search.run_search(resumed, space, trials=2, run_trial=run_trial)
    states = [t.state.name for t in resumed.get_trials()]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 2
    assert dead_lr in tried  # the retry runs the dead trial's values


def test_pruned_trials_count_and_stop_early(tmp_path):
    study = hp_search.open_study(hp_search.default_storage(tmp_path), "s", seed=0, pruner_warmup=0)
    space = {"learning_rate": hp_search.Range(1e-5, 1e-3, log=True)}
    steps_run = []

    def run_trial(values, report):
        good = len(steps_run) < hp_search.PRUNER_STARTUP_TRIALS  # the first trials score high, the rest low
        for step in (10, 20, 30):
            steps_run.append(step)
            score = 50.0 + step if good else 1.0
            if report(step, score):
                return score
        return score

    hp_search.run_search(study, space, trials=4, run_trial=run_trial)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    assert steps_run == [10, 20, 30, 10, 20, 30, 10, 10]  # a weak trial stops at its first evaluation
    assert hp_search.best_trial(study).number in (0, 1)


def _search_args(tiny_model_dir, small_dataset, out):
    return [
        *common_args(tiny_model_dir, small_dataset, out), "--max_steps", 4, "--warmup_steps", 0,
        "--metric_for_best_model", "eval_exact_match",
    ]  # fmt: skip


def test_run_qa_search_resumes_from_its_storage_and_writes_a_runnable_best_trial(tiny_model_dir, small_dataset, tmp_path):
    out = tmp_path / "search"
    args = _search_args(tiny_model_dir, small_dataset, out)
    log = run_qa(*args, "--hp_search_trials", 1)
    assert "Trial 0 (#1 of 1)" in log
    study = optuna.load_study(study_name="hp_search", storage=hp_search.default_storage(out))
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"]
    first = study.get_trials()[0]
    assert set(first.params) == {"learning_rate", "max_steps", "warmup_steps"}
    assert 2 <= first.params["max_steps"] <= 8 and 2.5e-4 <= first.params["learning_rate"] <= 4e-3
    assert first.intermediate_values  # scored at its evaluations (every max_steps // 4 = 1 step)

    # Asked for two, the stored one counts: one new trial, the first is not run again.
    log = run_qa(*args, "--hp_search_trials", 2)
    assert "1 finished of 2" in log and "Trial 1 (#2 of 2)" in log and "Trial 0 " not in log
    trials = optuna.load_study(study_name="hp_search", storage=hp_search.default_storage(out)).get_trials()
    assert [t.number for t in trials] == [0, 1] and trials[0].params == first.params
    summary = json.loads((out / hp_search.SUMMARY_FILE).read_text())
    assert [t["number"] for t in summary["trials"]] == [0, 1] and summary["metric"] == "eval_exact_match"
    best = max(trials, key=lambda t: t.value)
    assert summary["best"]["number"] == best.number
    assert not list(out.rglob("model.safetensors"))  # trials keep no weights

    # The best trial's config trains as it is, with the best values and without the search.
    config_path = out / hp_search.BEST_CONFIG_FILE
    config = json.loads(config_path.read_text())
    assert {k: config[k] for k in best.params} == best.params
    assert not any(name.startswith("hp_search") for name in config) and config["output_dir"] == str(out / "best")
    run_qa(config_path)
    state = json.loads((out / "best" / "trainer_state.json").read_text())
    assert state["global_step"] == best.params["max_steps"]
    assert (out / "best" / "model.safetensors").is_file()

    # Enough trials already: nothing runs.
    log = run_qa(*args, "--hp_search_trials", 2)
    assert "already holds 2 finished trials" in log


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hp_search_trials", "-1"], "must be 0"),
        (["--hp_search_trials", "2", "--do_train", "--do_eval", "false"], "needs training and validation"),
        (["--hp_search_trials", "2", "--hp_search_space", "missing.json"], "file not found"),
        (["--hp_search_trials", "2", "--hp_search_storage", "nosuchdb://x"], "cannot be opened"),
    ],
)
def test_search_configuration_errors_come_before_training(tiny_model_dir, small_dataset, tmp_path, extra, message):
    log = run_qa(*_search_args(tiny_model_dir, small_dataset, tmp_path / "o"), *extra, expect=2)
    assert message in log and "Trial" not in log
