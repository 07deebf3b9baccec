"""Training throughput: pad-to-max + random batches vs dynamic padding (random or length-grouped batches, fp32 or bf16).

    python -m bench.bench_training [--steps 40] [--reps 2] [--quick]
    python -m bench.bench_training --arms dynamic_random dynamic_random_bf16    # bf16 autocast vs fp32

Every arm trains the offline MiniLM with run_qa.py for the same number of optimizer steps on
PolicyQA (../shared/data/policyqa-dev.json split by article: 16 to train, 4 to evaluate),
max_seq_length=384; the arms run alternately (A B C C B A ...). Repetition r uses seed 42+r
in every arm, so the eval-F1 medians are over seeds: F1 after a few steps moves by points
with the seed (and with dropout masks, whose shape follows the padding). Throughput is the
Trainer's train_samples_per_second (features/s, training only). Length-grouped batches are
process.LengthGroupedBatches. dynamic_random_bf16 (not run by default) is dynamic_random under
bfloat16 autocast (--bf16, plus --use_cpu where there is no GPU). Prints one JSON object; saves
it under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import RESULTS, bf16_flags, machine, publish

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data" / "policyqa-dev.json"
BASE_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"

ARMS = {
    "pad_to_max_random": ["--pad_to_max_length", "--train_sampling_strategy", "random"],
    "dynamic_random": ["--train_sampling_strategy", "random"],
    "dynamic_length_grouped": ["--train_sampling_strategy", "group_by_length"],
    "dynamic_random_bf16": ["--train_sampling_strategy", "random"],  # + bf16_flags()
}
BF16_ARMS = {"dynamic_random_bf16"}
DEFAULT_ARMS = ["pad_to_max_random", "dynamic_random", "dynamic_length_grouped"]


def split_by_article(train_articles: int = 16) -> tuple[Path, Path]:
    """No context on both sides: whole articles go to one split."""
    articles = json.loads(DATA.read_text(encoding="utf-8"))["data"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in (("train", articles[:train_articles]), ("dev", articles[train_articles:])):
        path = RESULTS / f"policyqa-{name}.json"
        path.write_text(json.dumps({"version": "policyqa-split", "data": part}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def run_arm(name: str, train: Path, dev: Path, steps: int, rep: int, max_eval: int | None) -> dict:
    """One training run; repetition r uses seed 42 + r for every arm (same init and data order)."""
    output_dir = RESULTS / f"train-{name}-{rep}"
    command = [
        sys.executable, "run_qa.py", "--model_name_or_path", str(BASE_MODEL), "--train_file", str(train),
        "--validation_file", str(dev), "--output_dir", str(output_dir), "--overwrite_output_dir",
        "--do_train", "--do_eval", "--max_steps", str(steps), "--per_device_train_batch_size", "16",
        "--per_device_eval_batch_size", "64", "--learning_rate", "2e-4", "--warmup_steps", "5",
        "--max_seq_length", "384", "--doc_stride", "128", "--save_strategy", "no", "--report_to", "none",
        "--seed", str(42 + rep), "--disable_tqdm", "true", *ARMS[name],
        *(bf16_flags() if name in BF16_ARMS else ["--precision", "fp32"]),  # fp32 arms stay fp32 on bf16 CPUs
    ]
    if max_eval:
        command += ["--max_eval_samples", str(max_eval)]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    results = json.loads((output_dir / "all_results.json").read_text())
    return {
        "arm": name,
        "rep": rep,
        "seed": 42 + rep,
        "train_features_per_s": results["train_samples_per_second"],
        "train_runtime_s": results["train_runtime"],
        "eval_f1": results["eval_f1"],
        "eval_exact_match": results["eval_exact_match"],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10 steps, 1 rep, 200 eval questions")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=DEFAULT_ARMS,
                        help="arms to run (ratios are against the first one given)")
    options = parser.parse_args(argv)
    if not DATA.is_file():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0
    steps, reps, max_eval = (10, 1, 200) if options.quick else (options.steps, options.reps, None)
    train, dev = split_by_article()
    runs = []
    for rep in range(reps):
        order = list(options.arms) if rep % 2 == 0 else list(reversed(options.arms))
        for name in order:
            runs.append(run_arm(name, train, dev, steps, rep, max_eval))
            print(json.dumps(runs[-1]), file=sys.stderr)
    median = {
        name: {
            key: statistics.median(r[key] for r in runs if r["arm"] == name)
            for key in ("train_features_per_s", "eval_f1", "eval_exact_match")
        }
        for name in options.arms
    }
    baseline_arm = options.arms[0]
    baseline = median[baseline_arm]
    result = {
        "benchmark": "training throughput",
        "command": "python -m bench.bench_training " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": "policyqa-dev.json split by article: 16 train / 4 eval",
        "model": "all-MiniLM-L6-v2 (offline)",
        "steps": steps,
        "repetitions": reps,
        "runs": runs,
        "median": median,
        "baseline_arm": baseline_arm,
        "speedup_features_per_s_vs_baseline": {
            name: round(median[name]["train_features_per_s"] / baseline["train_features_per_s"], 2)
            for name in options.arms
        },
        "eval_f1_difference_vs_baseline": {
            name: round(median[name]["eval_f1"] - baseline["eval_f1"], 2) for name in options.arms
        },
        "machine": machine(),
    }
    publish(result, "training")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
