"""Real-data accuracy: the offline MiniLM before and after fine-tuning (full and LoRA).

    python bench/bench_accuracy.py                       # every recipe
    python bench/bench_accuracy.py --recipe policyqa     # one recipe: base, full, lora
    python bench/bench_accuracy.py --recipe squad --variants base full --steps 100

Each recipe splits or picks files from ../shared/data (whole articles go to one side, so no
context is in both train and eval), then runs run_qa.py three times: the base model
evaluated as it is (its question-answering head is freshly initialised, which is what a
user starts from), full fine-tuning, and LoRA, each for the same number of optimizer
steps (max_steps keeps every CPU run well under an hour). Prints one JSON object with
every metric, wall time and features/s, plus a Markdown table on stderr; saves both
under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import RESULTS, machine, publish  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
WORK = RESULTS / "accuracy"
BASE_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"

# file: the source; split: articles that go to training (the rest are evaluated), or
# eval_file: a separate evaluation file; v2: SQuAD v2.0 mode (unanswerable questions);
# steps: optimizer steps of 16 windows, sized so that a CPU run stays well under an hour
# (COVID-QA windows are all 384 tokens long, so it gets fewer).
RECIPES = {
    "policyqa": {"file": "policyqa-dev.json", "split": 16, "v2": False, "steps": 150,
                 "about": "PolicyQA dev split by article, 16 train / 4 eval"},
    "covid_qa": {"file": "covid-qa-train.json", "eval_file": "covid-qa-dev.json", "v2": False, "steps": 100,
                 "about": "COVID-QA train -> dev (whole papers, ~21 windows per question)"},
    "squad": {"file": "squad-v1.1-dev.json", "split": 40, "v2": False, "steps": 150,
              "about": "SQuAD v1.1 dev split by article, 40 train / 8 eval"},
    "squad_v2": {"file": "squad-v2.0-dev-half.json", "split": 13, "v2": True, "steps": 150,
                 "about": "SQuAD v2.0 dev half split by article, 13 train / 3 eval, unanswerable included"},
}
VARIANTS = {
    "base": [],
    "full": ["--learning_rate", "2e-4"],
    "lora": ["--use_lora", "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "1e-3"],
    # Not run by default: full fine-tuning with length-grouped batches (process.LengthGroupedBatches).
    "full_grouped": ["--learning_rate", "2e-4", "--train_sampling_strategy", "group_by_length"],
}
DEFAULT_VARIANTS = ["base", "full", "lora"]
METRIC_KEYS = (
    "exact_match", "f1", "exact", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
    "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
)


def prepare(name: str) -> tuple[Path, Path]:
    """Train and eval files for a recipe, written under bench/results/accuracy/data."""
    recipe = RECIPES[name]
    source = SHARED / recipe["file"]
    if "eval_file" in recipe:
        return source, SHARED / recipe["eval_file"]
    articles = json.loads(source.read_text(encoding="utf-8"))["data"]
    folder = WORK / "data"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for side, part in (("train", articles[: recipe["split"]]), ("eval", articles[recipe["split"]:])):
        path = folder / f"{name}-{side}.json"
        path.write_text(json.dumps({"version": f"{name}-split", "data": part}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def run(name: str, variant: str, train: Path, dev: Path, options) -> dict:
    recipe = RECIPES[name]
    output_dir = WORK / f"{name}-{variant}"
    steps = options.steps or recipe["steps"]
    command = [
        sys.executable, "run_qa.py", "--model_name_or_path", str(BASE_MODEL), "--validation_file", str(dev),
        "--output_dir", str(output_dir), "--overwrite_output_dir", "--do_eval", "--eval_strategy", "no",
        "--save_strategy", "no", "--per_device_eval_batch_size", "64", "--max_seq_length", "384",
        "--doc_stride", "128", "--report_to", "none", "--seed", "42", "--disable_tqdm", "true",
        *VARIANTS[variant],
    ]
    if variant != "base":
        command += [
            "--train_file", str(train), "--do_train", "--max_steps", str(steps),
            "--per_device_train_batch_size", "16", "--warmup_steps", str(max(1, steps // 10)),
            "--weight_decay", "0.01", "--logging_steps", "10",
        ]
    if recipe["v2"]:
        command.append("--version_2_with_negative")
    if options.max_eval_samples:
        command += ["--max_eval_samples", str(options.max_eval_samples)]
    print(f"[{name}/{variant}] {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{name}/{variant} failed (exit {finished.returncode}):\n{finished.stderr[-4000:]}")
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    row = {
        "recipe": name,
        "variant": variant,
        "steps": 0 if variant == "base" else steps,
        "wall_s": round(wall, 1),
        "train_runtime_s": results.get("train_runtime"),
        "train_features_per_s": results.get("train_samples_per_second"),
        "eval_runtime_s": results.get("eval_runtime"),
        "eval_features_per_s": results.get("eval_samples_per_second"),
        "eval_examples": results.get("eval_examples"),
        "eval_features": results.get("eval_features"),
        "train_features": results.get("train_features"),
        "command": "python " + " ".join(str(part) for part in command[1:]),
    }
    row.update({key: results[f"eval_{key}"] for key in METRIC_KEYS if f"eval_{key}" in results})
    print(f"[{name}/{variant}] {json.dumps({k: v for k, v in row.items() if k != 'command'})}", file=sys.stderr, flush=True)
    return row


def _number(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per run: v1 recipes show EM/F1, v2 shows overall, HasAns, NoAns and best."""
    lines = [
        "| data | model | steps | EM | F1 | HasAns F1 | NoAns F1 | best F1 (thresh) | train features/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        exact = row.get("exact_match", row.get("exact"))
        best = f"{_number(row.get('best_f1'))} ({_number(row.get('best_f1_thresh'))})" if "best_f1" in row else ""
        lines.append(
            f"| {row['recipe']} | {row['variant']} | {row['steps']} | {_number(exact)} | {_number(row.get('f1'))} "
            f"| {_number(row.get('HasAns_f1'))} | {_number(row.get('NoAns_f1'))} | {best} "
            f"| {_number(row.get('train_features_per_s'), 1)} | {row['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    parser.add_argument("--steps", type=int, help="optimizer steps of 16 windows (default: the recipe's)")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="evaluate on the first N questions only")
    options = parser.parse_args(argv)
    missing = [RECIPES[n]["file"] for n in options.recipe if not (SHARED / RECIPES[n]["file"]).is_file()]
    if missing:
        print(json.dumps({"skipped": f"not found under {SHARED}: {missing}"}))
        return 0
    if not (BASE_MODEL / "config.json").is_file():
        raise SystemExit(f"{BASE_MODEL} is missing: run `make base-model` first")
    rows = []
    for name in options.recipe:
        train, dev = prepare(name)
        for variant in options.variants:
            rows.append(run(name, variant, train, dev, options))
    table = markdown_table(rows)
    result = {
        "benchmark": "real-data accuracy",
        "command": "python bench/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": "all-MiniLM-L6-v2 (offline), max_seq_length 384, doc_stride 128, batch 16",
        "recipes": {name: RECIPES[name]["about"] for name in options.recipe},
        "variants": {name: " ".join(VARIANTS[name]) or "no training" for name in options.variants},
        "runs": rows,
        "table": table,
        "machine": machine(),
    }
    publish(result, "accuracy")
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
