"""Hyperparameter search on Optuna: a space, a stored study, pruning, and the best trial as a config file.

run_qa.py --hp_search_trials N drives it. Trials live in an Optuna storage (an SQLite file in
output_dir by default), so a search that crashed resumes where it stopped, and a database URL
lets several machines work on one study. This module knows nothing of the Trainer: run_qa.py
hands it one callable that trains a trial's arguments and reports each evaluation.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slmqa.errors import ConfigError

logger = logging.getLogger("slmqa.hp_search")

STORAGE_FILE = "hp_search.db"
SUMMARY_FILE = "hp_search.json"
BEST_CONFIG_FILE = "best_trial.json"
BEST_OUTPUT_SUBDIR = "best"
# A trial whose process died stops sending heartbeats; after the grace period the next trial to
# start marks it failed and queues it again with the same values.
HEARTBEAT_S = 30
GRACE_S = 120
# The first trials are never pruned: the median needs something to stand on.
PRUNER_STARTUP_TRIALS = 2
# Options of a run that describe the search itself, left out of the best trial's config.
SEARCH_OPTIONS = ("hp_search_trials", "hp_search_storage", "hp_search_study", "hp_search_space", "hp_search_timeout")


@dataclass(frozen=True)
class Range:
    """Numbers from low to high (inclusive), drawn on a log scale when log is set."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Choices:
    values: tuple


Dimension = Range | Choices


def default_space(learning_rate: float, max_steps: int, num_train_epochs: float, lora_r: int | None) -> dict:
    """The space searched unless a file says otherwise: around the values the run was given.

    Learning rate a quarter to four times the given one (log scale), training length half to
    twice the given one, warm-up 0-20% of the steps, and the LoRA rank when LoRA is on.
    """
    if learning_rate <= 0:
        raise ConfigError(
            f"--hp_search_trials searches around --learning_rate, which must be positive (got {learning_rate})."
        )
    space: dict[str, Dimension] = {"learning_rate": Range(learning_rate / 4, learning_rate * 4, log=True)}
    if max_steps > 0:
        space["max_steps"] = Range(max(1, max_steps // 2), max(2, max_steps * 2), integer=True)
    else:
        space["num_train_epochs"] = Range(1, max(2, math.ceil(num_train_epochs * 2)), integer=True)
    space["warmup_steps"] = Range(0.0, 0.2)  # below 1: a fraction of the training steps
    if lora_r is not None:
        space["lora_r"] = Choices((4, 8, 16, 32))
    return space


def read_space(path: str | Path, known: set[str], base: dict) -> dict:
    """A search space from JSON, over the defaults: {"name": [choices...]} or {"name": {"low", "high", "log"}}.

    A name set to null is left out of the search (keeps the run's value).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--hp_search_space: file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected an object of option names to ranges or lists of choices.")
    space = dict(base)
    for name, spec in raw.items():
        if name not in known:
            raise ConfigError(f"{path}: '{name}' is not a training or LoRA option that a trial can set.")
        if spec is None:
            space.pop(name, None)
        elif isinstance(spec, list) and spec:
            space[name] = Choices(tuple(spec))
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec) and set(spec) <= {"low", "high", "log"}:
            low, high = spec["low"], spec["high"]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low > high:
                raise ConfigError(f"{path}: '{name}' needs numbers with low <= high, got {spec}.")
            if spec.get("log") and low <= 0:
                raise ConfigError(f"{path}: '{name}' on a log scale needs low > 0, got {low}.")
            integer = isinstance(low, int) and isinstance(high, int)
            space[name] = Range(low, high, log=bool(spec.get("log")), integer=integer)
        else:
            raise ConfigError(
                f"{path}: '{name}' must be a non-empty list of choices or {{\"low\": .., \"high\": .., \"log\": ..}}, "
                f"got {spec!r}."
            )
    if not space:
        raise ConfigError(f"{path}: nothing left to search.")
    return space


def describe_space(space: dict) -> dict:
    """The space as JSON, for the log and the summary file."""
    return {
        name: list(dim.values) if isinstance(dim, Choices)
        else {"low": dim.low, "high": dim.high, "log": dim.log, "integer": dim.integer}
        for name, dim in space.items()
    }


def suggest(trial, space: dict) -> dict:
    """One value per dimension, from the trial (Optuna's sampler decides which)."""
    values = {}
    for name, dim in space.items():
        if isinstance(dim, Choices):
            values[name] = trial.suggest_categorical(name, list(dim.values))
        elif dim.integer:
            values[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[name] = trial.suggest_float(name, float(dim.low), float(dim.high), log=dim.log)
    return values


def default_storage(output_dir: str | Path) -> str:
    return f"sqlite:///{(Path(output_dir) / STORAGE_FILE).resolve()}"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("--hp_search_trials needs Optuna: pip install -r requirements-extra.txt") from None
    return optuna


def open_study(storage_url: str, study_name: str, seed: int, grace_s: int = GRACE_S, pruner_warmup: int = 0):
    """The study in its storage, created on first use and loaded after (that is the resume).

    With heartbeats on, a trial left running by a dead process is failed after grace_s and
    retried with its values by the next trial to start.
    """
    optuna = _optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if storage_url.startswith("sqlite:///"):
        Path(storage_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental; they are what makes a resume safe
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                storage_url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
    except Exception as err:  # a bad URL, a missing driver, an unreachable server
        raise ConfigError(f"--hp_search_storage {storage_url!r} cannot be opened: {err}") from None
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=pruner_warmup),
    )


def finished_trials(study) -> list:
    """Trials that count toward --hp_search_trials: completed or pruned (failed ones are retried)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


# A trial's work: (values, report) -> the final score; report(step, score) returns True when the
# trial should stop early (pruned).
TrialRunner = Callable[[dict, Callable[[int, float], bool]], float]


def run_search(
    study,
    space: dict,
    trials: int,
    run_trial: TrialRunner,
    on_trial_end: Callable[[object], None] | None = None,
    timeout_s: float | None = None,
) -> None:
    """Run trials until the study holds `trials` finished ones (those already stored count)."""
    optuna = _optuna()
    done = len(finished_trials(study))
    if done >= trials:
        logger.info("The study already holds %d finished trials (asked for %d): no new trial.", done, trials)
        return

    def objective(trial) -> float:
        values = suggest(trial, space)
        number = len(finished_trials(study)) + 1
        logger.info("Trial %d (#%d of %d): %s", trial.number, number, trials, json.dumps(values))
        pruned_at = []

        def report(step: int, score: float) -> bool:
            trial.report(score, step)
            if trial.should_prune():
                pruned_at.append(step)
                return True
            return False

        started = time.perf_counter()
        score = run_trial(values, report)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        if pruned_at:
            logger.info("Trial %d pruned at step %d (score %.2f below the median).", trial.number, pruned_at[0], score)
            raise optuna.TrialPruned()
        return score

    def after_trial(current_study, frozen) -> None:
        if on_trial_end is not None:
            on_trial_end(current_study)

    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    logger.info("Hyperparameter search: %d finished of %d; space %s", done, trials, json.dumps(describe_space(space)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our lines say what happened
    study.optimize(
        objective,
        timeout=timeout_s,
        callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED)), after_trial],
        gc_after_trial=True,
    )


def summary(study, space: dict, metric: str) -> dict:
    """Every trial of the study with its values, score, state and time; the best one first."""
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({
            "number": t.number,
            "state": t.state.name,
            "values": t.params,
            metric: t.value,
            "intermediate": {str(step): value for step, value in sorted(t.intermediate_values.items())},
            "seconds": t.user_attrs.get("seconds"),
        })
    best = best_trial(study)
    return {
        "study": study.study_name,
        "metric": metric,
        "space": describe_space(space),
        "best": None if best is None else {"number": best.number, "values": best.params, metric: best.value},
        "trials": trials,
    }


def best_trial(study):
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return max(complete, key=lambda t: t.value) if complete else None


def with_lora_scale(values: dict, lora_r: int, lora_alpha: int) -> dict:
    """A searched LoRA rank keeps the run's scale alpha / r (the rank alone changes, not the step size)."""
    if "lora_r" not in values or "lora_alpha" in values:
        return values
    return {**values, "lora_alpha": max(1, round(lora_alpha * values["lora_r"] / lora_r))}


def best_config(given: dict, best_values: dict, output_dir: str | Path) -> dict:
    """The run's own options with the best trial's values, minus the search: a config run_qa.py takes as is.

    Its output_dir is a fresh folder beside the study, so training it never meets the trials.
    """
    config = {name: value for name, value in given.items() if name not in SEARCH_OPTIONS}
    config.update(best_values)
    if "max_steps" not in best_values and "num_train_epochs" in best_values:
        config.pop("max_steps", None)  # the searched epochs decide the length
    config["output_dir"] = str(Path(output_dir) / BEST_OUTPUT_SUBDIR)
    for name in ("overwrite_output_dir", "resume_from_checkpoint"):
        config.pop(name, None)
    return config
