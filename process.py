"""Stage 2: the model and the transformers Trainer (optionally with LoRA adapters).

`QATrainer` runs span decoding and SQuAD scoring inside `evaluate`/`predict`, on every
process, so that all ranks see the same metrics (needed for `load_best_model_at_end`
under DDP); only the main process writes files. Loading, LoRA and batching live in the
library (slmqa.modeling, slmqa.training); this file wires them to the Trainer.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

from datasets import Dataset
from torch.utils.data import SequentialSampler
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, default_data_collator
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, speed_metrics

from postprocess import PostProcess
from slmqa.inference.logits import MODEL_INPUTS
from slmqa.modeling.loading import HubOptions, is_adapter_dir, load_model
from slmqa.modeling.lora import add_lora
from slmqa.training.sampling import LengthGroupedBatches, longest_first, padding_multiple, window_lengths

logger = logging.getLogger("slmqa.process")


def hub_options(model_args) -> HubOptions:
    return HubOptions(
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )


def build_model(model_args, lora_args, is_trainable: bool = True):
    """The model to train or evaluate: full weights, a LoRA adapter folder, or a new LoRA wrapper (--use_lora)."""
    name = model_args.model_name_or_path
    model = load_model(name, hub_options(model_args), config_name=model_args.config_name, is_trainable=is_trainable)
    if lora_args is not None and lora_args.use_lora and not is_adapter_dir(name):
        model = add_lora(
            model,
            r=lora_args.lora_r,
            alpha=lora_args.lora_alpha,
            dropout=lora_args.lora_dropout,
            target_modules=lora_args.lora_target_modules,
            bias=lora_args.lora_bias,
        )
    return model


class QATrainer(Trainer):
    """A Trainer whose evaluate/predict decode spans and compute SQuAD metrics."""

    def __init__(self, *args, post_process: PostProcess, eval_examples: Dataset | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.post_process = post_process
        self.eval_examples = eval_examples
        # The latest evaluation's decoded predictions: run_qa.py calibrates answer confidence on them.
        self.eval_decoded = None
        # Set by run_qa.py: writes our model card (slmqa.reporting.card) into output_dir.
        self.write_model_card = None

    def create_model_card(self, *args, **kwargs) -> None:
        """The Trainer calls this just before a push uploads output_dir: our card goes up, not its own."""
        if self.write_model_card is not None and self.args.should_save:
            self.write_model_card()

    def _get_train_sampler(self, train_dataset=None):
        """group_by_length uses LengthGroupedBatches (random batch order) instead of transformers' sampler."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not isinstance(dataset, Dataset):
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedBatches(window_lengths(dataset), self.args.train_batch_size, self.args.seed)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation keeps our order whatever the training sampler: decoding restores it by position.

        transformers groups evaluation batches by length too when train_sampling_strategy is
        group_by_length, which would hand the logits back shuffled. Several processes get
        None here, and accelerate then splits the windows into contiguous, ordered shards.
        """
        if eval_dataset is None:
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def _decode_and_score(self, features, examples, prefix: str, description: str, get_dataloader, score=None):
        start_time = time.time()
        by_length, restore = longest_first(features)
        # Only the model's inputs go to the dataloader (decoding reads the rest from `features`),
        # so the Trainer has no unused columns to drop and announce.
        inputs = by_length.select_columns([name for name in MODEL_INPUTS if name in by_length.column_names])
        output = self.evaluation_loop(
            get_dataloader(inputs), description=description, prediction_loss_only=False, metric_key_prefix=prefix
        )
        logits = tuple(array[restore] for array in output.predictions[:2])
        decoded, scores = self.post_process(examples, features, logits, prefix=prefix, score=score)
        metrics = {f"{prefix}_{key}": value for key, value in scores.items()}
        metrics[f"{prefix}_examples"] = len(examples)
        metrics[f"{prefix}_features"] = len(features)
        metrics.update(
            speed_metrics(
                prefix,
                start_time,
                num_samples=len(features),
                num_steps=math.ceil(len(features) / (self.args.eval_batch_size * self.args.world_size)),
            )
        )
        return decoded, metrics

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", eval_examples=None):
        features = self.eval_dataset if eval_dataset is None else eval_dataset
        examples = self.eval_examples if eval_examples is None else eval_examples
        if features is None or examples is None:
            raise ValueError("evaluate() needs evaluation features and their examples.")
        self._memory_tracker.start()
        self.eval_decoded, metrics = self._decode_and_score(
            features, examples, metric_key_prefix, "Evaluation", self.get_eval_dataloader, score=True
        )
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self._memory_tracker.stop_and_update_metrics(metrics)
        return metrics

    def predict(self, test_dataset, test_examples=None, ignore_keys=None, metric_key_prefix: str = "predict"):
        if test_examples is None:
            raise ValueError("predict() needs the test examples the features were made from.")
        decoded, metrics = self._decode_and_score(
            test_dataset, test_examples, metric_key_prefix, "Prediction", self.get_test_dataloader
        )
        self.log(metrics)
        return decoded, metrics


def search_metric(training_args) -> str:
    """The evaluation metric a search maximises: metric_for_best_model, else eval_f1."""
    name = training_args.metric_for_best_model or "eval_f1"
    return name if name.startswith("eval_") else f"eval_{name}"


class ReportScores(TrainerCallback):
    """Hands each evaluation's score to a search trial; stops training when the trial is pruned."""

    def __init__(self, metric: str, report):
        self.metric, self.report = metric, report
        self.last_step, self.last_score = None, None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and self.metric in metrics:
            self.last_step, self.last_score = state.global_step, metrics[self.metric]
            if self.report(state.global_step, self.last_score):
                control.should_training_stop = True
        return control


class Process:
    """Stage 2: builds the model and the QATrainer, then trains, evaluates and predicts."""

    def __init__(
        self, model_args, lora_args, training_args, tokenizer, post_process: PostProcess, pad_to_max_length: bool = False
    ):
        """`post_process` decodes and scores inside evaluate/predict; `pad_to_max_length` picks the collator."""
        self.model_args = model_args
        self.lora_args = lora_args
        self.training_args = training_args
        self.tokenizer = tokenizer
        self.post_process = post_process
        self.pad_to_max_length = pad_to_max_length
        self.trainer: QATrainer | None = None

    def _collator(self):
        if self.pad_to_max_length:
            return default_data_collator
        return DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=padding_multiple(self.training_args))

    def build_trainer(
        self,
        train_features: Dataset | None = None,
        eval_examples: Dataset | None = None,
        eval_features: Dataset | None = None,
    ) -> QATrainer:
        model = build_model(self.model_args, self.lora_args, is_trainable=self.training_args.do_train)
        self.trainer = QATrainer(
            model=model,
            args=self.training_args,
            train_dataset=train_features,
            eval_dataset=eval_features,
            eval_examples=eval_examples,
            processing_class=self.tokenizer,
            data_collator=self._collator(),
            post_process=self.post_process,
        )
        return self.trainer

    def train(self, resume_from_checkpoint: str | None = None) -> dict:
        trainer = self.trainer
        result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        # _internal_call: save without pushing; run_qa.py pushes once, after our model card is written.
        trainer.save_model(_internal_call=True)
        if self.lora_args.use_lora and self.lora_args.merge_lora and trainer.args.should_save:
            self.save_merged(Path(trainer.args.output_dir))
        metrics = dict(result.metrics)
        metrics["train_features"] = len(trainer.train_dataset)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        return metrics

    def train_trial(self, values: dict, report, train_features, eval_examples, eval_features, eval_steps: int) -> float:
        """One search trial: this run's arguments with `values`, scored on the validation split.

        It evaluates every eval_steps and hands each score to report(step, score), which may stop
        it (pruning); nothing is saved. Returns the last score, taken at the trial's last step.
        """
        args, lora_args = copy.deepcopy(self.training_args), copy.deepcopy(self.lora_args)
        for name, value in values.items():
            setattr(args if hasattr(args, name) else lora_args, name, value)
        if "num_train_epochs" in values and "max_steps" not in values:
            args.max_steps = -1  # the searched epochs decide the length
        args.eval_strategy, args.eval_steps = IntervalStrategy.STEPS, eval_steps
        args.save_strategy, args.load_best_model_at_end = SaveStrategy.NO, False
        args.report_to, args.push_to_hub = [], False
        metric = search_metric(args)
        trial = Process(self.model_args, lora_args, args, self.tokenizer, self.post_process, self.pad_to_max_length)
        trainer = trial.build_trainer(train_features, eval_examples, eval_features)
        scores = ReportScores(metric, report)
        trainer.add_callback(scores)
        trainer.train()
        if scores.last_step != trainer.state.global_step:  # the final step fell between evaluations
            scores.last_score = trainer.evaluate()[metric]
        return scores.last_score

    def save_merged(self, adapter_dir: Path) -> None:
        """A plain transformers model with the adapters folded in (adapter_dir/merged): loads without peft.

        Merged from a copy reloaded from the saved adapter, never from the live model, which
        every process goes on evaluating unmerged.
        """
        copy = load_model(adapter_dir, hub_options(self.model_args), config_name=self.model_args.config_name)
        directory = adapter_dir / "merged"
        copy.merge_and_unload().save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        logger.info("Merged LoRA model saved to %s", directory)

    def evaluate(self) -> dict:
        metrics = self.trainer.evaluate()
        self.trainer.log_metrics("eval", metrics)
        self.trainer.save_metrics("eval", metrics)
        return metrics

    def predict(self, test_examples: Dataset, test_features: Dataset) -> dict:
        _, metrics = self.trainer.predict(test_features, test_examples)
        self.trainer.log_metrics("predict", metrics)
        self.trainer.save_metrics("predict", metrics)
        return metrics
