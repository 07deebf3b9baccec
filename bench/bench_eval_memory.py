"""Peak memory of a whole evaluation (`run_qa.py --do_eval`) on COVID-QA dev, 1x and 4x.

    python -m bench.bench_eval_memory                     # COVID-QA dev x1 and x4 (~35 min on 2 cores)
    python -m bench.bench_eval_memory --max_questions 40  # its first 40 questions, x1 and x4 (~7 min)
    python -m bench.bench_eval_memory --quick             # first 10 questions

bench_decoding.py measures the decoder alone; this measures what a user's evaluation run
needs end to end: tokenizing into windows, the model's forward passes, the Trainer
gathering start/end logits, decoding, scoring and writing the prediction files. The
4x input repeats every article four times with distinct question ids, so there are 4x as
many windows and predictions. Each run is a fresh `run_qa.py` process; its peak resident
set size is the kernel's ru_maxrss for that process (os.wait4).

What is expected to grow with the input: the Trainer keeps every window's start and end
logits (float32, `windows x padded length x 2 x 4` bytes: 13 MB for COVID-QA dev's 4,250
windows of 384 tokens) and the predictions and n-best lists themselves. Nothing else
should. Prints one JSON object and saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import machine, publish

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data" / "covid-qa-dev.json"
BASE_MODEL = ROOT / "models" / "all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 384


def first_questions(articles: list[dict], limit: int) -> list[dict]:
    """The articles cut down to their first `limit` questions, in file order."""
    kept = []
    for article in articles:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = paragraph["qas"][:limit]
            limit -= len(qas)
            if qas:
                paragraphs.append({**paragraph, "qas": qas})
        if paragraphs:
            kept.append({**article, "paragraphs": paragraphs})
    return kept


def repeated(articles: list[dict], times: int) -> list[dict]:
    """The articles `times` over, every question id suffixed so that all ids stay distinct."""
    return [
        {**article, "paragraphs": [
            {**p, "qas": [{**qa, "id": f"{qa['id']}-{copy}"} for qa in p["qas"]]} for p in article["paragraphs"]
        ]}
        for copy in range(times)
        for article in articles
    ]


def evaluate(data_file: Path, output_dir: Path, model: str) -> dict:
    command = [
        sys.executable, "run_qa.py", "--model_name_or_path", model, "--validation_file", str(data_file),
        "--output_dir", str(output_dir), "--do_eval", "--per_device_eval_batch_size", "64",
        "--max_seq_length", str(MAX_SEQ_LENGTH), "--doc_stride", "128", "--report_to", "none", "--disable_tqdm", "true",
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run_qa.py failed on {data_file}:\n{stderr[-4000:]}")
    results = json.loads((output_dir / "eval_results.json").read_text(encoding="utf-8"))
    files = ("eval_predictions.json", "eval_nbest_predictions.json")
    return {
        "examples": results.get("eval_examples"),
        "windows": results.get("eval_features"),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(wall, 1),
        "f1": round(results["eval_f1"], 2),
        "prediction_files_mb": round(sum((output_dir / f).stat().st_size for f in files) / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BASE_MODEL))
    parser.add_argument("--max_questions", type=int, help="first N questions of COVID-QA dev (default: all 203)")
    parser.add_argument("--quick", action="store_true", help="first 10 questions only")
    options = parser.parse_args(argv)
    if not DATA.is_file():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0
    articles = json.loads(DATA.read_text(encoding="utf-8"))["data"]
    max_questions = 10 if options.quick else options.max_questions
    if max_questions is not None:
        articles = first_questions(articles, max_questions)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for times in (1, 4):
            data_file = Path(tmp) / f"covid-x{times}.json"
            data_file.write_text(json.dumps({"data": repeated(articles, times)}), encoding="utf-8")
            runs[f"x{times}"] = evaluate(data_file, Path(tmp) / f"out-x{times}", options.model)
            print(f"x{times}: {json.dumps(runs[f'x{times}'])}", file=sys.stderr, flush=True)
    one, four = runs["x1"], runs["x4"]
    logits_mb = lambda run: run["windows"] * MAX_SEQ_LENGTH * 2 * 4 / 2**20  # noqa: E731 - float32 start+end per window
    result = {
        "benchmark": "evaluation peak memory",
        "command": "python -m bench.bench_eval_memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": options.model,
        "data": f"{DATA.name}" + (f", first {max_questions} questions" if max_questions else "")
                + ", x1 and x4 with distinct ids",
        "runs": runs,
        "peak_rss_ratio_x4_vs_x1": round(four["peak_rss_mb"] / one["peak_rss_mb"], 2),
        "peak_rss_growth_mb": round(four["peak_rss_mb"] - one["peak_rss_mb"], 1),
        "logits_growth_mb": round(logits_mb(four) - logits_mb(one), 1),
        "machine": machine(),
    }
    publish(result, "eval-memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
