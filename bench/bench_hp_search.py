"""What a hyperparameter search buys: run_qa.py --hp_search_trials on PolicyQA, best trial vs the recipe's values.

    python -m bench.bench_hp_search [--trials 4] [--steps 150] [--space bench/spaces/policyqa.json]

The accuracy bench's PolicyQA split (16 articles train, 4 evaluate) from the general-QA model
(stage one), with the domain recipe's values (learning rate 5e-5, 10% warm-up, batches of 16,
--steps steps). The search never sees the 4 evaluation articles: its trials train on the first
13 training articles and are scored on the other 3. Then two runs train on all 16 and are
evaluated on the 4: the recipe's values and the best trial's, at the best trial's length.
Running it again resumes the search from its storage (bench/results/hp_search/search).
Prints one JSON object and a Markdown table on stderr; saves both under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import RESULTS, ROOT, machine, publish, run_logged
from bench.bench_accuracy import SHARED, prepare

WORK = RESULTS / "hp_search"
DEFAULT_START = ROOT.parent / "shared" / "models" / "general-qa-minilm"
SEARCH_VALIDATION_ARTICLES = 3
RECIPE = {"learning_rate": 5e-5, "warmup_steps": 0.1}  # recipes/domain-from-general.json, bench length


def split_for_search(train: Path) -> tuple[Path, Path]:
    """The training articles cut in two: trials train on the first part and are scored on the last articles."""
    articles = json.loads(train.read_text(encoding="utf-8"))["data"]
    paths = []
    for side, part in (("train", articles[:-SEARCH_VALIDATION_ARTICLES]), ("validation", articles[-SEARCH_VALIDATION_ARTICLES:])):
        path = WORK / "data" / f"policyqa-search-{side}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": f"policyqa-search-{side}", "data": part}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def base_command(start: Path, train: Path, validation: Path, output_dir: Path, steps: int) -> list[str]:
    return [
        sys.executable, "run_qa.py", "--model_name_or_path", str(start), "--train_file", str(train),
        "--validation_file", str(validation), "--output_dir", str(output_dir), "--do_train", "--do_eval",
        "--eval_strategy", "no", "--save_strategy", "no", "--max_seq_length", "384", "--doc_stride", "128",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64", "--weight_decay", "0.01",
        "--max_answer_length", "auto", "--max_steps", str(steps), "--learning_rate", str(RECIPE["learning_rate"]),
        "--warmup_steps", str(RECIPE["warmup_steps"]), "--logging_steps", "10", "--report_to", "none",
        "--seed", "42", "--disable_tqdm", "true",
    ]  # fmt: skip


def with_values(command: list[str], values: dict) -> list[str]:
    """The command with some options replaced (each flag appears once in base_command)."""
    command = list(command)
    for name, value in values.items():
        flag = f"--{name}"
        if flag in command:
            command[command.index(flag) + 1] = str(value)
        else:
            command += [flag, str(value)]
    return command


def final_run(label: str, command: list[str]) -> dict:
    output_dir = Path(command[command.index("--output_dir") + 1])
    wall = run_logged(label, [*command, "--overwrite_output_dir"], WORK / "logs")
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    return {
        "run": label, "wall_s": round(wall, 1), "exact_match": results.get("eval_exact_match"), "f1": results.get("eval_f1"),
        "train_loss": results.get("train_loss"), "command": "python " + " ".join(command[1:]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4, help="finished trials in the study (stored ones count)")
    parser.add_argument("--steps", type=int, default=150, help="the recipe's optimizer steps of 16 windows")
    parser.add_argument("--start", type=Path, default=DEFAULT_START, help="the general-QA model the runs start from")
    parser.add_argument("--space", type=Path, help="an --hp_search_space file (default: run_qa.py's space)")
    parser.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    options = parser.parse_args(argv)
    if not (SHARED / "policyqa-dev.json").is_file() or not (options.start / "config.json").is_file():
        print(json.dumps({"skipped": f"needs {SHARED / 'policyqa-dev.json'} and the model {options.start}"}))
        return 0
    train, evaluation = prepare("policyqa")
    search_train, search_validation = split_for_search(train)
    search_dir = WORK / "search"
    command = base_command(options.start, search_train, search_validation, search_dir, options.steps)
    command += ["--hp_search_trials", str(options.trials)]
    if options.space:
        command += ["--hp_search_space", str(options.space)]
    if options.timeout:
        command += ["--hp_search_timeout", str(options.timeout)]
    search_wall = run_logged("search", command, WORK / "logs")
    summary = json.loads((search_dir / "hp_search.json").read_text(encoding="utf-8"))
    best = summary["best"]["values"]
    steps = best.get("max_steps", options.steps)

    final = base_command(options.start, train, evaluation, WORK / "recipe", steps)
    rows = [final_run("recipe", final), final_run("best", with_values(final, {**best, "output_dir": WORK / "best"}))]
    for row, values in zip(rows, ({**RECIPE, "max_steps": steps}, {**RECIPE, "max_steps": steps, **best}), strict=True):
        row["values"] = values
    seconds = sum(t["seconds"] or 0 for t in summary["trials"])
    table = "\n".join([
        "| run | learning rate | warm-up | steps | EM | F1 | wall s |", "|---|---|---|---|---|---|---|",
        *(f"| {r['run']} | {r['values']['learning_rate']:.2e} | {r['values']['warmup_steps']:.3f} | {r['values']['max_steps']} "
          f"| {r['exact_match']:.2f} | {r['f1']:.2f} | {r['wall_s']:.0f} |" for r in rows),
    ])  # fmt: skip
    result = {
        "benchmark": "hyperparameter search (PolicyQA)",
        "command": "python -m bench.bench_hp_search " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": "PolicyQA dev split by article: trials train on articles 1-13 and are scored on 14-16; the final runs "
                "train on 1-16 and are evaluated on 17-20 (never seen by the search)",
        "start": str(options.start),
        "search": {
            "wall_s": round(search_wall, 1), "trial_seconds": round(seconds, 1), "metric": summary["metric"],
            "space": summary["space"], "best": summary["best"],
            "trials": [{k: t[k] for k in ("number", "state", "values", summary["metric"], "seconds")} for t in summary["trials"]],
        },
        "final": rows,
        "f1_gain": round(rows[1]["f1"] - rows[0]["f1"], 2),
        "table": table,
        "machine": machine(),
    }  # fmt: skip
    publish(result, "hp_search")
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
