#!/usr/bin/env python
"""Fine-tune and evaluate an extractive question-answering model on SQuAD-format data.

    python run_qa.py args.json [--flag value ...]
    python run_qa.py --model_name_or_path models/all-MiniLM-L6-v2 --train_file train.json ...
    accelerate launch run_qa.py args.json

The pipeline: parse arguments, find the checkpoint to resume from, check and tokenize
the data (preprocess.py), train (process.py), decode and score (postprocess.py), save.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from dataclasses import fields, replace
from pathlib import Path

from transformers import set_seed

from args import LoraArguments, QATrainingArguments, given_options, parse_args, resolved_arguments
from postprocess import PostProcess
from preprocess import Preprocess
from process import Process, hub_options, search_metric
from slmqa.data.splits import SPLIT_FILE_ARG, SPLIT_STAGE_FLAG
from slmqa.decoding.calibration import CalibrationFit
from slmqa.decoding.squad_metrics import V1_METRICS, V2_METRICS
from slmqa.errors import ConfigError, DataError
from slmqa.logs import get_logger, setup_logging
from slmqa.modeling.loading import load_tokenizer
from slmqa.modeling.precision import cpu_has_native_bf16, slow_cpu_bf16_warning
from slmqa.reporting.card import write_run_report
from slmqa.settings import QA_SETTINGS_FILE, check_window, saved_threshold, settings_record
from slmqa.training import hp_search
from slmqa.training.checkpoints import WEIGHT_FILES, check_resume_compatible, file_sha256, last_complete_checkpoint

logger = get_logger("run_qa")


def configure_logging(training_args) -> None:
    """Ours and the Trainer's progress lines at INFO on the main process; replicas only warn; libraries quiet."""
    level = training_args.get_process_log_level()
    ours = logging.INFO if training_args.should_log and level >= logging.INFO else level
    setup_logging(ours, library_level=level, timestamps=True)  # --log_level info/debug opens the libraries up too
    import transformers

    transformers.utils.logging.get_logger("transformers.trainer").setLevel(ours)


def choose_stages(data_args, training_args) -> None:
    """Without any --do_* flag, do what the given files allow."""
    # do_eval alone may come from TrainingArguments itself (set whenever eval_strategy != "no").
    eval_only = training_args.do_eval and training_args.eval_strategy == "no"
    if not (training_args.do_train or training_args.do_predict or eval_only):
        training_args.do_train = bool(data_args.train_file or data_args.dataset_name)
        training_args.do_eval = bool(training_args.do_eval or data_args.validation_file or data_args.dataset_name)
        training_args.do_predict = bool(data_args.test_file)
        logger.info(
            "No --do_train/--do_eval/--do_predict given; running: %s",
            ", ".join(s for s in ("train", "eval", "predict") if getattr(training_args, f"do_{s}")),
        )
    for split, flag in SPLIT_STAGE_FLAG.items():
        file_arg = SPLIT_FILE_ARG[split]
        if getattr(training_args, flag) and not (getattr(data_args, file_arg) or data_args.dataset_name):
            raise ConfigError(f"--{flag} needs --{file_arg} (or --dataset_name).")


def check_best_metric(data_args, training_args) -> None:
    """QA evaluation has no loss: steer metric_for_best_model to a metric that exists."""
    if not training_args.load_best_model_at_end and not training_args.metric_for_best_model:
        return
    name = training_args.metric_for_best_model or "loss"
    bare = name[len("eval_") :] if name.startswith("eval_") else name
    if bare == "loss":
        logger.warning("QA evaluation computes no loss; using metric_for_best_model=eval_f1 instead of '%s'.", name)
        training_args.metric_for_best_model, training_args.greater_is_better = "eval_f1", True
        return
    allowed = V2_METRICS if data_args.version_2_with_negative else V1_METRICS
    if bare not in allowed:
        raise ConfigError(
            f"metric_for_best_model='{name}' is not computed; choose one of {['eval_' + m for m in allowed]}."
        )
    training_args.greater_is_better = True


def check_best_metric_subset(training_args, validation) -> None:
    """HasAns_*/NoAns_* exist only when the evaluation set has such questions (as in the official script).

    Found before training, not by the Trainer's KeyError after the first evaluation.
    """
    name = (training_args.metric_for_best_model or "").removeprefix("eval_")
    subset = name.split("_")[0]
    if validation is None or subset not in ("HasAns", "NoAns"):
        return
    answerable = sum(1 for answer in validation["answers"] if answer["text"])
    count = answerable if subset == "HasAns" else len(validation) - answerable
    if count == 0:
        kind = "answerable" if subset == "HasAns" else "unanswerable"
        raise ConfigError(
            f"metric_for_best_model='{training_args.metric_for_best_model}' needs {kind} questions, and the "
            f"validation data has none; use eval_f1 or eval_exact."
        )


def run_record(model_args, data_args, lora_args, training_args) -> dict:
    """Every resolved argument (secrets masked) plus the facts of this run a resume depends on."""
    record = resolved_arguments(model_args, data_args, lora_args, training_args)
    per_device, accumulation = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
    record["Run"] = {
        "train_file_sha256": file_sha256(data_args.train_file) if training_args.do_train else None,
        "processes": training_args.world_size,
        "samples_per_optimizer_step": per_device * accumulation * training_args.world_size,
        "samples_per_optimizer_step_is": "per_device_train_batch_size x gradient_accumulation_steps x processes",
    }
    return record


def find_resume_checkpoint(model_args, data_args, lora_args, training_args) -> str | None:
    """Resume from the last complete checkpoint; never overwrite a finished model silently."""
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or not output_dir.is_dir():
        return None
    if data_args.overwrite_output_dir:
        for stale in output_dir.glob("checkpoint-*"):
            if training_args.should_save:
                shutil.rmtree(stale, ignore_errors=True)
        logger.info("--overwrite_output_dir: starting over in %s", output_dir)
        return None
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is not None:
        check_resume_compatible(output_dir, run_record(model_args, data_args, lora_args, training_args))
        logger.info("Resuming training from %s (pass --overwrite_output_dir to start over).", checkpoint)
        return str(checkpoint)
    if any((output_dir / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError(
            f"{output_dir} already holds a trained model and no checkpoint to resume from. "
            "Pass --overwrite_output_dir to train again there, or choose another --output_dir."
        )
    return None


def check_reporting(training_args) -> None:
    """Fail before any data work when a requested logger is not installed."""
    from transformers.integrations import is_tensorboard_available

    if "tensorboard" in (training_args.report_to or []) and not is_tensorboard_available():
        raise ConfigError("--report_to tensorboard needs the tensorboard package: pip install -r requirements-extra.txt")


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def calibrate_confidence(post_process: PostProcess, trainer, validation, results: dict) -> CalibrationFit | None:
    """Calibrate answer confidence on the final evaluation's predictions, at the threshold the model is saved with.

    None without an evaluation (or with too few validation questions): qa_settings.json then
    has no calibration and answers carry the plain softmax.
    """
    if trainer.eval_decoded is None or validation is None:
        return None
    threshold, _ = saved_threshold(post_process.settings, results)
    settings = replace(post_process.settings, null_score_diff_threshold=threshold)
    return post_process.calibrate(trainer.eval_decoded, validation, settings)


def check_search(data_args, lora_args, training_args) -> dict | None:
    """With --hp_search_trials: the space to search, checked before any data work; None without it."""
    if training_args.hp_search_trials < 0:
        raise ConfigError(f"--hp_search_trials must be 0 (no search) or more, got {training_args.hp_search_trials}.")
    if not training_args.hp_search_trials:
        return None
    if not (training_args.do_train and training_args.do_eval):
        raise ConfigError("--hp_search_trials trains and scores each trial: it needs training and validation data.")
    if training_args.world_size > 1:
        raise ConfigError(
            "--hp_search_trials runs in one process. To search on several machines, start one search on each "
            "with the same --hp_search_storage database URL and --hp_search_study."
        )
    space = hp_search.default_space(
        training_args.learning_rate, training_args.max_steps, training_args.num_train_epochs,
        lora_args.lora_r if lora_args.use_lora else None,
    )  # fmt: skip
    if training_args.hp_search_space:
        known = {f.name for f in fields(QATrainingArguments)} | {f.name for f in fields(LoraArguments)}
        space = hp_search.read_space(training_args.hp_search_space, known - set(hp_search.SEARCH_OPTIONS), space)
    return space


def reference_steps(training_args, train_features) -> int:
    """Optimizer steps of the run as given: the scale for the trials' evaluation interval."""
    if training_args.max_steps > 0:
        return training_args.max_steps
    per_step = training_args.train_batch_size * training_args.gradient_accumulation_steps
    return max(1, math.ceil(len(train_features) / per_step * training_args.num_train_epochs))


def search(space, process: Process, training_args, lora_args, given: dict, examples, train_features, eval_features):
    """Optuna trials until the study holds --hp_search_trials finished ones; writes the summary and best_trial.json."""
    output_dir = Path(training_args.output_dir)
    metric = search_metric(training_args)
    # Every trial evaluates at the same steps, so that pruning compares like with like: four
    # times over the run's own length, or every eval_steps if the run evaluates by steps.
    if training_args.eval_strategy == "steps" and training_args.eval_steps:
        eval_steps = int(training_args.eval_steps)
    else:
        eval_steps = max(1, reference_steps(training_args, train_features) // 4)
    storage = training_args.hp_search_storage or hp_search.default_storage(output_dir)
    # A trial's first evaluation never prunes it (pruner_warmup): early scores say little.
    study = hp_search.open_study(
        storage, training_args.hp_search_study, training_args.seed, pruner_warmup=eval_steps + 1
    )
    logger.info(
        "Optuna study '%s' in %s; trials evaluate every %d steps on %s.", study.study_name, storage, eval_steps, metric
    )

    def run_trial(values: dict, report) -> float:
        values = hp_search.with_lora_scale(values, lora_args.lora_r, lora_args.lora_alpha)
        return process.train_trial(values, report, train_features, examples["validation"], eval_features, eval_steps)

    def write_summary(study) -> None:
        if training_args.should_save:
            write_json(output_dir / hp_search.SUMMARY_FILE, hp_search.summary(study, space, metric))

    hp_search.run_search(
        study, space, training_args.hp_search_trials, run_trial, on_trial_end=write_summary,
        timeout_s=training_args.hp_search_timeout,
    )  # fmt: skip
    write_summary(study)
    best = hp_search.best_trial(study)
    if best is None:
        raise ConfigError(f"No trial of study '{study.study_name}' finished (all pruned or failed): see the log above.")
    values = hp_search.with_lora_scale(best.params, lora_args.lora_r, lora_args.lora_alpha)
    config_path = output_dir / hp_search.BEST_CONFIG_FILE
    write_json(config_path, hp_search.best_config(given, values, output_dir))
    logger.info(
        "Best trial %d: %s = %.2f with %s. Train it: python run_qa.py %s",
        best.number, metric, best.value, json.dumps(values), config_path,
    )  # fmt: skip
    finished = hp_search.finished_trials(study)
    return {
        f"hp_search_best_{metric}": best.value, "hp_search_best_trial": best.number, "hp_search_trials": len(finished)
    }  # fmt: skip


def run(model_args, data_args, lora_args, training_args, given: dict | None = None) -> dict:
    """The whole pipeline; `given`: the options as typed (a search writes them, with its best values, to a config)."""
    logger.info("Device: %s, processes: %d", training_args.device, training_args.world_size)
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # nothing to pin to without an accelerator
    choice = getattr(model_args, "precision_choice", None)
    if choice is not None:
        logger.info("Precision: %s (%s)", choice.precision, choice.why)
    if training_args.bf16 and training_args.device.type == "cpu":
        warning = slow_cpu_bf16_warning("--bf16 trains", cpu_has_native_bf16())
        if warning:
            logger.warning(warning)
    choose_stages(data_args, training_args)
    check_best_metric(data_args, training_args)
    check_reporting(training_args)
    space = check_search(data_args, lora_args, training_args)
    checkpoint = None if space else find_resume_checkpoint(model_args, data_args, lora_args, training_args)
    set_seed(training_args.seed)

    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path, hub_options(model_args))
    check_window(data_args.max_seq_length, data_args.doc_stride, model_limit=tokenizer.model_max_length)
    # The seed picks the answerless training windows --keep_answerless_windows keeps.
    data_seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    preprocess = Preprocess(data_args, tokenizer, seed=data_seed, cache_dir=model_args.cache_dir, token=model_args.token)
    splits = [split for split, flag in SPLIT_STAGE_FLAG.items() if getattr(training_args, flag)]
    if space and "test" in splits:
        logger.info("The search scores trials on the validation split only; the test split waits for the best trial.")
        splits.remove("test")
        training_args.do_predict = False
    examples = preprocess.load(splits)
    check_best_metric_subset(training_args, examples.get("validation"))  # max_answer_length auto is resolved now
    output_dir = Path(training_args.output_dir)
    arguments = run_record(model_args, data_args, lora_args, training_args)
    data_report = preprocess.report()
    if training_args.should_save:
        write_json(output_dir / "run_args.json", arguments)
        write_json(output_dir / "data_report.json", data_report)

    with training_args.main_process_first(desc="tokenizing"):
        train_features = preprocess.train_features(examples["train"]) if training_args.do_train else None
        eval_features = preprocess.eval_features(examples["validation"], "validation") if training_args.do_eval else None
        test_features = preprocess.eval_features(examples["test"], "test") if training_args.do_predict else None
    data_report = preprocess.report()  # now with the window counts
    if training_args.should_save:
        write_json(output_dir / "data_report.json", data_report)

    if space:  # trials write no prediction files
        trial_post_process = PostProcess(preprocess.settings)
        pad = data_args.pad_to_max_length
        process = Process(model_args, lora_args, training_args, tokenizer, trial_post_process, pad)
        return search(space, process, training_args, lora_args, given or {}, examples, train_features, eval_features)
    post_process = PostProcess(preprocess.settings, training_args.output_dir if training_args.should_save else None)
    process = Process(model_args, lora_args, training_args, tokenizer, post_process, data_args.pad_to_max_length)
    trainer = process.build_trainer(train_features, examples.get("validation"), eval_features)
    results = {}
    data_counts = {f"{split}_{k}": v for split, r in preprocess.reports.items() for k, v in r.counts().items()}
    if training_args.do_train:
        results.update(process.train(checkpoint))
    if training_args.do_eval:
        results.update(process.evaluate())
    if training_args.do_predict:
        results.update(process.predict(examples["test"], test_features))
    trainer.save_metrics("data", data_counts, combined=True)
    results.update(data_counts)
    calibration = None
    if training_args.should_save and training_args.do_train:
        calibration = calibrate_confidence(post_process, trainer, examples.get("validation"), results)
        settings = settings_record(preprocess.settings, results, calibration and calibration.calibration)
        for model_dir in (output_dir, output_dir / "merged"):  # merged/: --merge_lora's plain copy
            if model_dir.is_dir():
                write_json(model_dir / QA_SETTINGS_FILE, settings)
    # Our model card replaces the Trainer's, also in what a push uploads (after the model is
    # saved: peft's save_pretrained writes a placeholder README.md).
    trainer.write_model_card = lambda: write_run_report(
        output_dir, arguments, data_report, results, trainer.state.log_history,
        calibration=calibration.report() if calibration else None,
    )  # fmt: skip
    if training_args.should_save:
        trainer.write_model_card()
    if training_args.push_to_hub and training_args.do_train:
        trainer.push_to_hub()
    return results


def main(argv: list[str] | None = None) -> int:
    try:
        model_args, data_args, lora_args, training_args = parse_args(argv)
        configure_logging(training_args)
        given = given_options(argv) if training_args.hp_search_trials else None
        run(model_args, data_args, lora_args, training_args, given=given)
    except (ConfigError, DataError) as err:
        setup_logging(logging.INFO)
        logger.error("%s", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
