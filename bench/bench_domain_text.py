"""Domain text before domain questions: stage one -> MLM on domain text -> domain QA, against stage one -> domain QA
with the MLM stage's compute spent on more QA steps instead.

    python -m bench.bench_domain_text [--corpora covid_qa policyqa] [--arms qa_more mlm_qa qa] [--reuse]

Arms, all from the general-QA model (../shared/models/general-qa-minilm), domain QA as in the
accuracy bench (learning rate 5e-5, 10% warm-up, batches of 16 windows of 384 tokens):
  qa        QA_STEPS of domain QA (the accuracy bench's row)
  qa_more   QA_STEPS + EXTRA_STEPS of domain QA: the same compute as mlm_qa
  mlm_qa    MLM_STEPS of run_qa.py --mlm_text on the training documents only (batches of 16 windows of
            384 tokens, learning rate 1e-4, 10% warm-up), then QA_STEPS of domain QA from its output
Compute is counted as the Trainer counts it (total_flos: 6 x parameters x tokens, output layer
excluded); the MLM steps' output layer on the masked tokens adds about 16% on top, counted
in EXTRA_STEPS. COVID-QA's MLM text is the 103 training papers (never the dev papers);
PolicyQA's is the 16 training policies of the accuracy bench's split.
--reuse keeps a run whose output folder already holds all_results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import RESULTS, ROOT, machine, publish, run_logged
from bench.bench_accuracy import SHARED, prepare

WORK = RESULTS / "domain_text"
START = ROOT.parent / "shared" / "models" / "general-qa-minilm"
CORPORA = {
    # COVID-QA windows are all 384 tokens, as MLM windows are: 90 MLM steps ~ 104 QA steps of compute.
    "covid_qa": {"train": "covid-qa-train.json", "eval": "covid-qa-dev.json", "qa_steps": 100, "mlm_steps": 90,
                 "extra_steps": 100},
    # PolicyQA windows are shorter (a question and one paragraph): an MLM step costs about two QA steps.
    "policyqa": {"split": "policyqa", "qa_steps": 100, "mlm_steps": 20, "extra_steps": 40},
}  # fmt: skip
ARMS = ("qa", "qa_more", "mlm_qa")


def files(corpus: str) -> tuple[Path, Path]:
    spec = CORPORA[corpus]
    if "split" in spec:
        return prepare(spec["split"])
    return SHARED / spec["train"], SHARED / spec["eval"]


def common(output_dir: Path, steps: int) -> list[str]:
    return [
        "--output_dir", str(output_dir), "--overwrite_output_dir", "--max_seq_length", "384", "--max_steps", str(steps),
        "--per_device_train_batch_size", "16", "--warmup_steps", str(max(1, steps // 10)), "--weight_decay", "0.01",
        "--logging_steps", "10", "--save_strategy", "no", "--report_to", "none", "--seed", "42",
        "--disable_tqdm", "true",
    ]  # fmt: skip


def qa_command(start: Path, train: Path, evaluation: Path, output_dir: Path, steps: int) -> list[str]:
    return [
        sys.executable, "run_qa.py", "--model_name_or_path", str(start), "--train_file", str(train),
        "--validation_file", str(evaluation), "--do_train", "--do_eval", "--eval_strategy", "no",
        "--per_device_eval_batch_size", "64", "--doc_stride", "128", "--max_answer_length", "auto",
        "--learning_rate", "5e-5", *common(output_dir, steps),
    ]  # fmt: skip


def mlm_command(start: Path, text: Path, output_dir: Path, steps: int) -> list[str]:
    return [
        sys.executable, "run_qa.py", "--model_name_or_path", str(start), "--mlm_text", str(text),
        "--learning_rate", "1e-4", "--per_device_eval_batch_size", "64", *common(output_dir, steps),
    ]  # fmt: skip


def run(label: str, command: list[str], reuse: bool) -> dict:
    output_dir = Path(command[command.index("--output_dir") + 1])
    done = output_dir / "all_results.json"
    if not (reuse and done.is_file()):
        wall = run_logged(label, command, WORK / "logs")
        print(f"[{label}] {wall:.0f} s", file=sys.stderr, flush=True)
    results = json.loads(done.read_text(encoding="utf-8"))
    keys = ("train_runtime", "train_loss", "eval_exact_match", "eval_f1", "eval_loss", "eval_perplexity")
    row = {"command": "python " + " ".join(command[1:]), **{k: results[k] for k in keys if k in results}}
    # The Trainer's count of training FLOPs (6 x non-embedding parameters x tokens) is kept in its state.
    row["total_flos"] = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))["total_flos"]
    return row


def arm(corpus: str, name: str, reuse: bool) -> dict:
    spec = CORPORA[corpus]
    train, evaluation = files(corpus)
    folder = WORK / corpus
    row = {"corpus": corpus, "arm": name}
    if name == "mlm_qa":
        row["mlm"] = run(f"{corpus}-mlm", mlm_command(START, train, folder / "mlm", spec["mlm_steps"]), reuse)
        start, steps = folder / "mlm", spec["qa_steps"]
    else:
        start, steps = START, spec["qa_steps"] + (spec["extra_steps"] if name == "qa_more" else 0)
    row["qa"] = run(f"{corpus}-{name}", qa_command(start, train, evaluation, folder / name, steps), reuse)
    row["qa_steps"], row["mlm_steps"] = steps, spec["mlm_steps"] if name == "mlm_qa" else 0
    row["total_flos"] = row["qa"].get("total_flos", 0) + row.get("mlm", {}).get("total_flos", 0)
    row["train_seconds"] = round(row["qa"].get("train_runtime", 0) + row.get("mlm", {}).get("train_runtime", 0), 1)
    row["f1"], row["exact_match"] = row["qa"].get("eval_f1"), row["qa"].get("eval_exact_match")
    print(f"[{corpus}/{name}] F1 {row['f1']:.2f} EM {row['exact_match']:.2f}", file=sys.stderr, flush=True)
    return row


def markdown_table(rows: list[dict]) -> str:
    lines = ["| data | arm | MLM steps | QA steps | compute (TFLOPs, Trainer) | train s | MLM held-out perplexity | EM | F1 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        perplexity = r.get("mlm", {}).get("eval_perplexity")
        lines.append(
            f"| {r['corpus']} | {r['arm']} | {r['mlm_steps']} | {r['qa_steps']} | {r['total_flos'] / 1e12:.1f} "
            f"| {r['train_seconds']:.0f} | {'' if perplexity is None else f'{perplexity:.1f}'} | {r['exact_match']:.2f} "
            f"| {r['f1']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["qa_more", "mlm_qa"])
    parser.add_argument("--reuse", action="store_true", help="keep runs whose output folder holds all_results.json")
    options = parser.parse_args(argv)
    if not (START / "config.json").is_file() or not (SHARED / "covid-qa-train.json").is_file():
        print(json.dumps({"skipped": f"needs {START} and the data under {SHARED}"}))
        return 0
    rows = [arm(corpus, name, options.reuse) for corpus in options.corpora for name in options.arms]
    table = markdown_table(rows)
    result = {
        "benchmark": "domain text before domain questions",
        "command": "python -m bench.bench_domain_text " + " ".join(argv if argv is not None else sys.argv[1:]),
        "start": str(START),
        "corpora": CORPORA,
        "runs": rows,
        "table": table,
        "machine": machine(),
    }
    publish(result, "domain_text")
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
