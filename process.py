"""Stage 2: the model and the transformers Trainer (optionally with LoRA adapters).

`QATrainer` runs span decoding and SQuAD scoring inside `evaluate`/`predict`, on every
process, so that all ranks see the same metrics (needed for `load_best_model_at_end`
under DDP); only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from datasets import Dataset
from torch.utils.data import Sampler, SequentialSampler
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    default_data_collator,
)
from transformers.trainer_utils import speed_metrics

from args import ConfigError
from postprocess import PostProcess

logger = logging.getLogger(__name__)

# LoRA targets by `config.model_type` where this project chooses otherwise than peft's own
# mapping (which adapts query and value only, and has no entry for several encoders): all
# three attention projections. Other types take peft's mapping, else every linear layer.
LORA_TARGET_OVERRIDES = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "xlm-roberta": ["query", "key", "value"],
    "camembert": ["query", "key", "value"],
    "electra": ["query", "key", "value"],
    "albert": ["query", "key", "value"],
    "mobilebert": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
}
ALL_LINEAR = "all-linear"  # peft's name for every linear layer except the output head

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def _hub_kwargs(model_args) -> dict:
    return {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }


def _cannot_load(what: str, name: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"Cannot load the {what} from '{name}': {err}\n"
        "Give a local model directory (e.g. models/all-MiniLM-L6-v2, made by `make base-model`) "
        "or a Hub id when online."
    )


def adapter_base_model(path: str) -> str:
    return json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))["base_model_name_or_path"]


def load_tokenizer(model_args):
    """A fast tokenizer (offset mappings are required); adapter directories carry their own copy."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if is_adapter_dir(name) and not (Path(name) / "tokenizer_config.json").is_file():
        name = adapter_base_model(name)
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True, **_hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise _cannot_load("tokenizer", name, err) from None


def load_model(model_args, lora_args, is_trainable: bool = True):
    """A question-answering model: full weights, a LoRA adapter directory, or a new LoRA wrapper."""
    name = model_args.model_name_or_path
    if is_adapter_dir(name):
        from peft import PeftModel

        base = _load_full_model(model_args, adapter_base_model(name))
        logger.info("Loading LoRA adapter from %s on top of %s", name, adapter_base_model(name))
        return PeftModel.from_pretrained(base, name, is_trainable=is_trainable)
    if Path(name).is_dir():
        # Recorded as the adapter's base_model_name_or_path: absolute, so the adapter loads
        # from any working directory.
        name = str(Path(name).resolve())
    model = _load_full_model(model_args, name)
    if lora_args is not None and lora_args.use_lora:
        model = add_lora(model, lora_args)
    return model


def _load_full_model(model_args, name: str):
    try:
        config = AutoConfig.from_pretrained(model_args.config_name or name, **_hub_kwargs(model_args))
    except (OSError, ValueError) as err:
        raise _cannot_load("model config", name, err) from None
    try:
        return AutoModelForQuestionAnswering.from_pretrained(name, config=config, **_hub_kwargs(model_args))
    except ValueError as err:
        raise ConfigError(
            f"'{name}' ({config.model_type}) has no question-answering model class in transformers: {err}"
        ) from None
    except OSError as err:
        raise _cannot_load("model weights", name, err) from None


def lora_targets() -> dict[str, list[str]]:
    """Default LoRA target modules by model type: peft's mapping, with this project's overrides."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    return {**TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, **LORA_TARGET_OVERRIDES}


def lora_target_modules(model, lora_args) -> list[str] | str:
    if lora_args.lora_target_modules:
        return list(lora_args.lora_target_modules)
    model_type = model.config.model_type
    targets = lora_targets().get(model_type)
    if targets is None:
        logger.info("LoRA: no default target modules for model type '%s'; adapting %s.", model_type, ALL_LINEAR)
        return ALL_LINEAR
    return list(targets)


def qa_head_names(model) -> list[str]:
    """The new QA head (a Linear to start/end logits): `qa_outputs` in most models, `classifier` in ModernBERT."""
    import torch

    return [
        name for name, module in model.named_children() if isinstance(module, torch.nn.Linear) and module.out_features == 2
    ]


def add_lora(model, lora_args):
    """Wrap the model in LoRA adapters; the new QA head is always trained and saved in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.QUESTION_ANS,
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=lora_target_modules(model, lora_args),
        bias=lora_args.lora_bias,
        modules_to_save=qa_head_names(model),
    )
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def quantize_int8(model):
    """CPU int8 dynamic quantization of every Linear layer, for faster CPU prediction.

    Weights are stored as int8 and activations quantized per batch on the fly, so no
    calibration data is needed. LoRA adapters are merged first. CPU only: the quantized
    kernels do not run on GPUs.
    """
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with warnings.catch_warnings():
        # torch marks its eager-mode quantization as deprecated in favour of torchao (not a
        # dependency here); it still works in the pinned torch, so keep the output quiet.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.cpu().eval(), {torch.nn.Linear}, dtype=torch.qint8)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), as oneDNN sees them."""
    import torch

    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else True  # unknown: assume yes rather than warn wrongly


def slow_cpu_bf16_warning(what: str, native: bool) -> str | None:
    """Why bfloat16 on this CPU is a bad idea, or None when it is fine.

    Without native bfloat16 units every bf16 matmul is emulated: on a 2-core AVX2 machine a
    training step under bf16 autocast ran 10x slower than fp32 (2026-12-02).
    """
    if native:
        return None
    return (
        f"{what} in bfloat16 on a CPU without bfloat16 instructions (no AVX512-BF16 or AMX): it is "
        "emulated and many times slower than float32 (10x for a training step on 2 AVX2 cores); use float32."
    )


def window_lengths(features: Dataset) -> np.ndarray:
    """Tokens per window, read from the Arrow column without materialising the ids.

    `features.data` is the underlying table: a Dataset made by `select` (an indices mapping)
    views its rows through `_indices`, so the lengths are gathered the same way.
    """
    import pyarrow.compute as pc

    lengths = np.asarray(pc.list_value_length(features.data.column("input_ids")))
    if features._indices is not None:
        lengths = lengths[np.asarray(features._indices.column(0))]
    return lengths


def longest_first(features: Dataset) -> tuple[Dataset, np.ndarray]:
    """Windows sorted longest first, so each padded batch wastes little; plus the order to undo it.

    Decoding sees the logits back in the original order, so predictions do not depend on it.
    """
    order = np.argsort(-window_lengths(features), kind="stable")
    return features.select(order), np.argsort(order)


def padding_multiple(training_args) -> int:
    """Dynamic padding rounds each batch's length up to a multiple of this.

    8 keeps tensor-core shapes on GPUs and costs nothing measurable on CPU. A compiled
    model recompiles for every new input shape: at 384 tokens, multiples of 8 give up to
    48 shapes, multiples of 64 only 6.
    """
    return 64 if training_args.torch_compile else 8


class LengthGroupedBatches(Sampler):
    """Training batches of windows of similar length, in random order.

    Windows are shuffled, cut into pools of `pool_batches` batches, sorted by length inside
    each pool and cut into batches; then the batches are shuffled. transformers'
    LengthGroupedSampler keeps each pool's batches in longest-to-shortest order, which gives
    every stretch of training a long-to-short curriculum and cost accuracy in our bench;
    shuffling the batches keeps the padding saving without it. The batch holding the longest
    window goes first (an out-of-memory error shows at once) and a short last batch stays
    last, so the DataLoader cuts batches exactly here. Deterministic per (seed, epoch).
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, pool_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch))
        shuffled = rng.permutation(len(self.lengths))
        full, partial = [], []
        for begin in range(0, len(shuffled), self.pool):
            pool = shuffled[begin : begin + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            for start in range(0, len(pool), self.batch_size):
                batch = pool[start : start + self.batch_size]
                (full if len(batch) == self.batch_size else partial).append(batch)
        full = [full[i] for i in rng.permutation(len(full))]
        if full:
            longest = max(range(len(full)), key=lambda i: self.lengths[full[i]].max())
            full[0], full[longest] = full[longest], full[0]
        return full + partial

    def __iter__(self):
        return iter(np.concatenate(self.batches()).tolist() if len(self.lengths) else [])


class QATrainer(Trainer):
    """A Trainer whose evaluate/predict decode spans and compute SQuAD metrics."""

    def __init__(self, *args, post_process: PostProcess, eval_examples: Dataset | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.post_process = post_process
        self.eval_examples = eval_examples
        # Set by run_qa.py: writes our model card (report.py) into output_dir.
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
        output = self.evaluation_loop(
            get_dataloader(by_length), description=description, prediction_loss_only=False, metric_key_prefix=prefix
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
        _, metrics = self._decode_and_score(
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
        model = load_model(self.model_args, self.lora_args, is_trainable=self.training_args.do_train)
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

    def save_merged(self, adapter_dir: Path) -> None:
        """A plain transformers model with the adapters folded in (adapter_dir/merged): loads without peft.

        Merged from a copy reloaded from the saved adapter, never from the live model, which
        every process goes on evaluating unmerged.
        """
        copy = load_model(dataclasses.replace(self.model_args, model_name_or_path=str(adapter_dir)), None, is_trainable=False)
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
