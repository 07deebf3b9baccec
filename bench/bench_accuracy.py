"""Real-data accuracy: the offline MiniLM from its random QA head, from a general-QA warm start, per domain.

    python -m bench.bench_accuracy                       # every recipe, the default variants
    python -m bench.bench_accuracy --recipe policyqa     # one recipe
    python -m bench.bench_accuracy --recipe covid_qa --variants general warm warm_sub --steps 300

Each recipe splits or picks files from ../shared/data (whole articles go to one side, so no
context is in both train and eval), then runs run_qa.py once per variant:
  base        the base model as it is (random QA head: what a user starts from)
  general     the general-QA model, no domain data at all (zero-shot)
  full / lora domain training from the base model (full fine-tuning / LoRA)
  warm / warm_lora   domain training from the general-QA model (not on squad, whose training
              side is all in stage one; on squad_v2 it is the v2 stage, at its 52% unanswerable)
  *_sub       the same with --keep_answerless_windows SUBSAMPLE (answerless windows subsampled)
  full_grouped / warm_grouped   full / warm with length-grouped batches (opt-in: ~2x the steps per hour)
Every trained variant takes --max_answer_length auto from its training answers.

The general-QA model (stage one, built once and cached in bench/results/accuracy/general-qa,
rebuilt with --rebuild_general) trains in SQuAD v2.0 mode on the ../shared SQuAD articles that
no evaluation here uses: the SQuAD v1.1 dev articles outside both SQuAD recipes' evaluation
sides, and the unanswerable questions of the v2.0 half on those articles.
Prints one JSON object with every metric, wall time and features/s, plus a Markdown table on
stderr; saves both under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import RESULTS, bf16_flags, machine, publish, run_logged

ROOT = Path(__file__).resolve().parents[1]

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
# start: the model a variant begins from; train: whether it trains on the recipe's train side.
FULL, LORA = ["--learning_rate", "2e-4"], ["--use_lora", "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "1e-3"]
WARM_FULL = ["--learning_rate", "5e-5"]
GROUPED = ["--train_sampling_strategy", "group_by_length"]  # process.LengthGroupedBatches
VARIANTS = {
    "base": {"start": "base", "train": False, "args": []},
    "general": {"start": "general", "train": False, "args": []},
    "full": {"start": "base", "train": True, "args": FULL},
    "full_sub": {"start": "base", "train": True, "args": FULL, "subsample": True},
    "lora": {"start": "base", "train": True, "args": LORA},
    # Not run by default: full fine-tuning with length-grouped batches.
    "full_grouped": {"start": "base", "train": True, "args": [*FULL, *GROUPED]},
    "warm": {"start": "general", "train": True, "args": WARM_FULL},
    "warm_sub": {"start": "general", "train": True, "args": WARM_FULL, "subsample": True},
    "warm_lora": {"start": "general", "train": True, "args": LORA},
    # Not run by default: the warm start with length-grouped batches, about twice the steps per hour.
    "warm_grouped": {"start": "general", "train": True, "args": [*WARM_FULL, *GROUPED]},
}
DEFAULT_VARIANTS = ["base", "general", "full", "warm", "warm_lora"]
# The SQuAD recipes' evaluation articles are kept out of the general-QA data.
SQUAD_RECIPES = ("squad", "squad_v2")
# squad's training side lies wholly inside the general-QA data, so only its zero-shot row is new there.
# squad_v2's is not: 3 of its 13 articles are squad's evaluation articles, and it holds 52% unanswerable
# questions where stage one holds 19%, so a warm start on it is the v2 "domain" stage.
GENERAL_ONLY_RECIPES = {"squad"}
GENERAL = {
    "steps": 1000, "batch": 16, "learning_rate": "2e-4",
    "about": "SQuAD v1.1 dev articles outside every SQuAD evaluation side (39 articles) plus the v2.0-half "
             "unanswerable questions on them, SQuAD v2.0 mode",
}
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


def precision_flags(options) -> list[str]:
    return bf16_flags() if options.bf16 else []


def held_out_titles() -> set[str]:
    """Titles of every SQuAD article a recipe evaluates on: the general-QA model must never see them."""
    titles = set()
    for name in SQUAD_RECIPES:
        recipe = RECIPES[name]
        articles = json.loads((SHARED / recipe["file"]).read_text(encoding="utf-8"))["data"]
        titles |= {article["title"] for article in articles[recipe["split"]:]}
    return titles


def prepare_general() -> Path:
    """Stage-one data: SQuAD v1.1 dev articles no recipe evaluates, plus the v2.0 half's new questions on them.

    The v2.0 half shares its contexts and about half its questions with v1.1 dev; questions already in
    v1.1 (same context and question text) are left out, so what it adds is mostly unanswerable.
    """
    held_out = held_out_titles()
    v1 = json.loads((SHARED / RECIPES["squad"]["file"]).read_text(encoding="utf-8"))["data"]
    v2 = json.loads((SHARED / RECIPES["squad_v2"]["file"]).read_text(encoding="utf-8"))["data"]
    articles = {article["title"]: article for article in v1 if article["title"] not in held_out}
    seen = {(p["context"], q["question"]) for a in articles.values() for p in a["paragraphs"] for q in p["qas"]}
    for article in v2:
        if article["title"] not in articles:
            continue
        paragraphs = articles[article["title"]]["paragraphs"]
        by_context = {p["context"]: p for p in paragraphs}
        for paragraph in article["paragraphs"]:
            target = by_context.get(paragraph["context"])
            if target is None:
                target = by_context[paragraph["context"]] = {"context": paragraph["context"], "qas": []}
                paragraphs.append(target)
            target["qas"] += [q for q in paragraph["qas"] if (paragraph["context"], q["question"]) not in seen]
    path = WORK / "data" / "general-train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "general-qa", "data": list(articles.values())}), encoding="utf-8")
    return path


def general_settings(output_dir: Path) -> dict:
    """How the cached general-QA model was trained, read back from its run_args.json."""
    training = json.loads((output_dir / "run_args.json").read_text(encoding="utf-8"))["QATrainingArguments"]
    return {
        "steps": training["max_steps"], "batch": training["per_device_train_batch_size"],
        "learning_rate": training["learning_rate"], "precision": "bf16" if training.get("bf16") else "fp32",
    }


def build_general(options) -> Path:
    """Train the general-QA model once (v2 mode, evaluated on the squad_v2 recipe's held-out side); reuse it after.

    A cached model is reused as it is, unless --general_steps asks for another length: then the
    bench stops rather than mixing rows from two different stage ones.
    """
    output_dir = WORK / "general-qa"
    if (output_dir / "all_results.json").is_file() and not options.rebuild_general:
        cached = general_settings(output_dir)
        if options.general_steps and options.general_steps != cached["steps"]:
            raise SystemExit(
                f"{output_dir} holds a general-QA model of {cached['steps']} steps, not the {options.general_steps} "
                "asked for: pass --rebuild_general to train it again, or leave out --general_steps to reuse it."
            )
        return output_dir
    _, v2_eval = prepare("squad_v2")
    steps = options.general_steps or GENERAL["steps"]
    command = [
        sys.executable, "run_qa.py", "--model_name_or_path", str(BASE_MODEL), "--train_file", str(prepare_general()),
        "--validation_file", str(v2_eval), "--version_2_with_negative", "--do_train", "--do_eval",
        "--output_dir", str(output_dir), "--overwrite_output_dir", "--eval_strategy", "no",
        "--save_strategy", "steps", "--save_steps", "200", "--save_total_limit", "1",
        "--max_seq_length", "384", "--doc_stride", "128", "--max_steps", str(steps),
        "--per_device_train_batch_size", str(GENERAL["batch"]), "--per_device_eval_batch_size", "64",
        "--learning_rate", GENERAL["learning_rate"], "--warmup_steps", str(steps // 10), "--weight_decay", "0.01",
        "--logging_steps", "50", "--report_to", "none", "--seed", "42", "--disable_tqdm", "true",
        *precision_flags(options),
    ]
    _run_logged("general-qa", command)
    return output_dir


def _run_logged(label: str, command: list[str]) -> float:
    """Run one run_qa.py command from the repo root, its log kept beside the results; wall seconds."""
    return run_logged(label, command, WORK / "logs")


def run(name: str, variant: str, train: Path, dev: Path, options) -> dict:
    recipe, spec = RECIPES[name], VARIANTS[variant]
    label = f"{name}-{variant}" + (f"-{options.subsample:g}" if spec.get("subsample") else "")  # one folder per P
    output_dir = WORK / label
    steps = options.steps or recipe["steps"]
    start = build_general(options) if spec["start"] == "general" else BASE_MODEL
    command = [
        sys.executable, "run_qa.py", "--model_name_or_path", str(start), "--validation_file", str(dev),
        "--output_dir", str(output_dir), "--overwrite_output_dir", "--do_eval", "--eval_strategy", "no",
        "--save_strategy", "no", "--per_device_eval_batch_size", "64", "--max_seq_length", "384",
        "--doc_stride", "128", "--report_to", "none", "--seed", "42", "--disable_tqdm", "true",
        *spec["args"],
    ]
    if spec["train"]:
        command += [
            "--train_file", str(train), "--do_train", "--max_steps", str(steps),
            "--per_device_train_batch_size", "16", "--warmup_steps", str(max(1, steps // 10)),
            "--weight_decay", "0.01", "--logging_steps", "10", "--max_answer_length", "auto",
        ]
    if spec.get("subsample"):
        command += ["--keep_answerless_windows", str(options.subsample)]
    if recipe["v2"]:
        command.append("--version_2_with_negative")
    command += precision_flags(options)
    if options.max_eval_samples:
        command += ["--max_eval_samples", str(options.max_eval_samples)]
    wall = _run_logged(label, command)
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    row = {
        "recipe": name,
        "variant": variant,
        "start": spec["start"],
        "steps": steps if spec["train"] else 0,
        "keep_answerless_windows": options.subsample if spec.get("subsample") else 1.0,
        "precision": "bf16" if options.bf16 else "fp32",
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


def _describe(variant: str, options) -> str:
    spec = VARIANTS[variant]
    start = "general-QA model" if spec["start"] == "general" else "base model"
    if not spec["train"]:
        return f"{start}, no training"
    sub = f" --keep_answerless_windows {options.subsample}" if spec.get("subsample") else ""
    return f"{start}, {' '.join(spec['args'])}{sub} --max_answer_length auto"


def _number(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per run: v1 recipes show EM/F1, v2 shows overall, HasAns, NoAns and best."""
    lines = [
        "| data | model | steps | answerless windows kept | EM | F1 | HasAns F1 | NoAns F1 | best F1 (thresh) "
        "| train features/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        exact = row.get("exact_match", row.get("exact"))
        best = f"{_number(row.get('best_f1'))} ({_number(row.get('best_f1_thresh'))})" if "best_f1" in row else ""
        lines.append(
            f"| {row['recipe']} | {row['variant']} | {row['steps']} | {row.get('keep_answerless_windows', 1.0):g} | {_number(exact)} | {_number(row.get('f1'))} "
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
    parser.add_argument("--subsample", type=float, default=0.1,
                        help="keep_answerless_windows for the *_sub variants (default 0.1)")
    parser.add_argument("--general_steps", type=int, help=f"optimizer steps of the general-QA stage (default {GENERAL['steps']})")
    parser.add_argument("--bf16", action="store_true",
                        help="bfloat16 autocast for training and evaluation (the 2026-12-02 rows; on a CPU with AMX "
                             "prediction ran about 2x faster, training 0.9-1.2x; without AMX or AVX512-BF16 it is "
                             "emulated and about 10x slower: leave it out; see bench/README.md)")
    parser.add_argument("--rebuild_general", action="store_true", help="train the general-QA model again even if cached")
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
            if name in GENERAL_ONLY_RECIPES and VARIANTS[variant]["start"] == "general" and VARIANTS[variant]["train"]:
                print(f"[{name}/{variant}] skipped: the general-QA data already holds this recipe's training side",
                      file=sys.stderr, flush=True)
                continue
            rows.append(run(name, variant, train, dev, options))
    table = markdown_table(rows)
    result = {
        "benchmark": "real-data accuracy",
        "command": "python -m bench.bench_accuracy " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": "all-MiniLM-L6-v2 (offline), max_seq_length 384, doc_stride 128, batch 16, "
                 + ("bf16 autocast" if options.bf16 else "fp32"),
        "recipes": {name: RECIPES[name]["about"] for name in options.recipe},
        "variants": {name: _describe(name, options) for name in options.variants},
        "general_qa": {"about": GENERAL["about"], **general_settings(WORK / "general-qa")}
        if any(row["start"] == "general" for row in rows) else None,
        "runs": rows,
        "table": table,
        "machine": machine(),
    }
    publish(result, "accuracy")
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
