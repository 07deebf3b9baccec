"""What the labelling loop buys: a simulated expert labels through the server's API, then train and compare.

    python -m bench.bench_labelling                                    # PolicyQA, mock, COVID-QA at 100/200/300 labels
    python -m bench.bench_labelling --corpora policyqa --labels 100 200 300
    python -m bench.bench_labelling --corpora covid --max_eval_questions 100

For each corpus the questions' documents become a folder of .txt files (one per policy,
mock article or paper; each gold answer mapped to document offsets and checked). Documents
are split into evaluation documents (never labelled) and labelling documents. Then:

1. Label. The app of serve.py runs in-process (DocumentQA + Feedback + LabelStore + create_app,
   driven by fastapi's TestClient) with the current model (../shared/models/general-qa-minilm).
   For each sampled question of the labelling documents, as the page does:
   POST /answer {"question", "top_k": 3, "passages": true}; if the top answer is the gold span
   (same document and offsets as one gold answer, or the same text after SQuAD normalisation)
   POST /feedback with that answer and "verdict": "right"; otherwise POST it with
   "verdict": "wrong" (when there is one) and then POST the gold span. Nested samples: the
   database is snapshotted after the first 100, 200, ... questions.
2. Export each snapshot with `serve.py --export_feedback --heldout_fraction 0.2` (train +
   held-out by document) and check both files with `preprocess.py --check`.
3. Train from the current model with recipes/from-labels.json (`--bf16 --use_cpu` on a CPU).
4. Evaluate the current model and each new one, each with its own qa_settings.json, on the
   original records of the evaluation documents (what `qa_predict.py --tuned_model X
   --data_file F` does; one pass of the model, decoded as SQuAD v2 with the model's
   threshold and with abstention off, as `--no-version_2_with_negative` does).

Times every step. Prints JSON; saves it under bench/results/; work files (documents,
databases, exports, models, logs) under --work_dir (default bench/results/labelling/).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import RESULTS, bf16_flags, machine, publish

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CURRENT_MODEL = SHARED / "models" / "general-qa-minilm"
RECIPE = ROOT / "recipes" / "from-labels.json"
CORPORA = ("policyqa", "mock", "covid")
DEFAULT_MAX_EVAL = {"policyqa": None, "mock": None, "covid": 100}
MAX_ANSWER_CHARS = 1000  # slmqa.serving.label_checks.MAX_ANSWER_CHARS: longer spans cannot be labelled
MAX_QUESTION_CHARS = 500  # slmqa.serving.request_checks.Limits.max_question_chars
TOP_K = 3


def log(message: str) -> None:
    print(f"[labelling] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure helpers (tests/bench/test_bench_labelling.py)


@dataclass(frozen=True)
class GoldSpan:
    start: int  # character offsets in the document text
    end: int
    text: str


@dataclass(frozen=True)
class GoldQuestion:
    """A question of the original data, its gold answers mapped to document offsets, and its original record."""

    id: str
    question: str
    document: str  # document (file) name, as the server names it
    spans: tuple[GoldSpan, ...]  # whitespace-trimmed, in the original order (the first is what the expert selects)
    context: str  # the original context, for evaluation on the original records
    answers: tuple[dict, ...]  # the original {"text", "answer_start"} answers


@dataclass
class Corpus:
    name: str
    documents: dict[str, str]  # name -> text
    questions: list[GoldQuestion]
    eval_documents: list[str] | None = None  # fixed evaluation documents (else a seeded split)
    label_documents: list[str] | None = None
    problems: Counter = field(default_factory=Counter)
    source: str = ""


def trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """start/end moved inwards past surrounding whitespace (the server refuses spans that start or end with it)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def build_documents(articles: list[tuple[str, list[dict]]], separator: str = "\n\n") -> Corpus:
    """One document per article (name, SQuAD paragraphs): its contexts joined by `separator`.

    Every answer is mapped to document offsets (context offset + answer_start), checked
    against the document text, and trimmed of surrounding whitespace. An answer whose
    offsets do not cut out its text is a ValueError (the data and the mapping disagree).
    Questions without any usable answer are counted in `problems`, not kept.
    """
    documents: dict[str, str] = {}
    questions: list[GoldQuestion] = []
    problems: Counter = Counter()
    for name, paragraphs in articles:
        if name in documents:
            raise ValueError(f"Two articles are named {name!r}.")
        parts, offset = [], 0
        located = []
        for paragraph in paragraphs:
            context = paragraph["context"]
            parts.append(context)
            located.append((offset, paragraph))
            offset += len(context) + len(separator)
        text = separator.join(parts)
        documents[name] = text
        for context_offset, paragraph in located:
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                spans = []
                for answer in qa.get("answers", []):
                    start = context_offset + answer["answer_start"]
                    end = start + len(answer["text"])
                    if context[answer["answer_start"] : answer["answer_start"] + len(answer["text"])] != answer["text"]:
                        raise ValueError(f"{name}: answer {answer['text']!r} of {qa['id']} is not at {answer['answer_start']} in its context.")
                    if text[start:end] != answer["text"]:
                        raise ValueError(f"{name}: answer of {qa['id']} maps to {text[start:end]!r}, not {answer['text']!r}.")
                    if answer["text"] != answer["text"].strip():
                        problems["answers trimmed of surrounding whitespace"] += 1
                    start, end = trimmed(text, start, end)
                    if end > start:
                        spans.append(GoldSpan(start, end, text[start:end]))
                if not spans:
                    problems["questions without an answer"] += 1
                    continue
                questions.append(GoldQuestion(str(qa["id"]), qa["question"].strip(), name, tuple(spans), context,
                                              tuple(qa.get("answers", []))))
    return Corpus("", documents, questions, problems=problems)


def split_documents(names: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(evaluation, labelling) documents: a seeded shuffle, at least one on each side, each side sorted."""
    if len(names) < 2:
        raise ValueError(f"Need at least 2 documents to split, got {len(names)}.")
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    count = min(len(names) - 1, max(1, round(eval_fraction * len(names))))
    return sorted(shuffled[:count]), sorted(shuffled[count:])


def labellable(question: GoldQuestion) -> bool:
    """Whether the page could label it: a question the server takes and a first gold span it accepts."""
    span = question.spans[0]
    return 0 < len(question.question) <= MAX_QUESTION_CHARS and 0 < span.end - span.start <= MAX_ANSWER_CHARS


def sample_questions(questions: list[GoldQuestion], documents: list[str], count: int, seed: int) -> list[GoldQuestion]:
    """A seeded order of the labellable questions of `documents`, cut at `count`: the first n of it are the n-label sample."""
    allowed = set(documents)
    pool = [q for q in questions if q.document in allowed and labellable(q)]
    random.Random(seed).shuffle(pool)
    return pool[:count]


def eval_sample(questions: list[GoldQuestion], documents: list[str], max_questions: int | None, seed: int) -> list[GoldQuestion]:
    """The questions of the evaluation documents (a seeded sample of max_questions, kept in data order)."""
    allowed = set(documents)
    chosen = [q for q in questions if q.document in allowed]
    if max_questions is not None and len(chosen) > max_questions:
        keep = set(random.Random(seed).sample(range(len(chosen)), max_questions))
        chosen = [q for i, q in enumerate(chosen) if i in keep]
    return chosen


def squad_of(questions: list[GoldQuestion]) -> dict:
    """The original records of these questions as nested SQuAD (one article per document, contexts in order)."""
    articles: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    for q in questions:
        articles[q.document].setdefault(q.context, []).append(
            {"id": q.id, "question": q.question, "answers": list(q.answers), "is_impossible": False})
    return {"version": "v2.0", "data": [
        {"title": name, "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
        for name, paragraphs in articles.items()
    ]}


def is_right(answer: dict | None, gold: GoldQuestion) -> str | None:
    """How the top answer matches the gold ("offsets", "text") or None when it is wrong (or there is none)."""
    from slmqa.decoding.squad_metrics import normalize_answer

    if not answer:
        return None
    if any(answer["document"] == gold.document and answer["start"] == s.start and answer["end"] == s.end for s in gold.spans):
        return "offsets"
    said = normalize_answer(answer["text"])
    if said and any(said == normalize_answer(s.text) for s in gold.spans):
        return "text"
    return None


def label_posts(gold: GoldQuestion, reading: dict) -> tuple[str | None, list[dict]]:
    """What the page posts to /feedback after showing `reading` (the /answer reply): (match, bodies in order)."""
    top = reading["answers"][0] if reading.get("answers") else None
    match = is_right(top, gold)

    def of(answer_fields: dict) -> dict:
        return {"question": gold.question, **{k: answer_fields[k] for k in ("document", "start", "end", "text")}}

    if match:
        return match, [{**of(top), "verdict": "right"}]
    posts = [{**of(top), "verdict": "wrong"}] if top else []
    span = gold.spans[0]
    posts.append(of({"document": gold.document, "start": span.start, "end": span.end, "text": span.text}))
    return None, posts


# ---------------------------------------------------------------- corpora


def _squad_articles(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def load_policyqa() -> Corpus | str:
    path = SHARED / "data" / "policyqa-dev.json"
    if not path.is_file():
        return f"{path} not found: PolicyQA needs ../shared/data (see bench/README.md)."
    corpus = build_documents([(f"{a['title']}.txt", a["paragraphs"]) for a in _squad_articles(path)])
    corpus.name, corpus.source = "policyqa", str(path)
    return corpus


def load_mock(work: Path, seed: int) -> Corpus:
    """mock_dataset.py --domain equipment_manual (its default sizes; every split), one document per article."""
    data = work / "data"
    command = [sys.executable, "mock_dataset.py", "--domain", "equipment_manual", "--output_dir", str(data),
               "--format", "squad", "--seed", str(seed)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    articles = []
    for split in ("train", "validation", "test"):
        for index, article in enumerate(_squad_articles(data / f"{split}.json")):
            articles.append((f"{split}-{index:03d}.txt", article["paragraphs"]))
    corpus = build_documents(articles)
    corpus.name, corpus.source = "mock", " ".join(["python", *command[1:]])
    return corpus


def load_covid() -> Corpus | str:
    train, dev = SHARED / "data" / "covid-qa-train.json", SHARED / "data" / "covid-qa-dev.json"
    for path in (train, dev):
        if not path.is_file():
            return f"{path} not found: COVID-QA needs ../shared/data (see bench/README.md)."
    articles, sides = [], {"train": [], "dev": []}
    for side, path in (("train", train), ("dev", dev)):
        for index, article in enumerate(_squad_articles(path)):
            paper = article["paragraphs"][0].get("document_id", index)
            name = f"{side}-{paper}.txt"
            articles.append((name, article["paragraphs"]))
            sides[side].append(name)
    corpus = build_documents(articles)
    corpus.name, corpus.source = "covid", f"{train} + {dev}"
    corpus.eval_documents, corpus.label_documents = sorted(sides["dev"]), sorted(sides["train"])
    return corpus


def write_documents(corpus: Corpus, folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in corpus.documents.items():
        (folder / name).write_bytes(text.encode("utf-8"))


# ---------------------------------------------------------------- steps


def run_logged(label: str, command: list[str], logs: Path) -> float:
    """Run a command from the repo root, its output in logs/<label>.log; wall seconds (exits on failure)."""
    log(f"{label}: {' '.join(str(part) for part in command[1:])}")
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{label}.log"
    started = time.perf_counter()
    with path.open("w", encoding="utf-8") as handle:
        finished = subprocess.run([str(c) for c in command], cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{label} failed (exit {finished.returncode}), log {path}:\n{path.read_text(encoding='utf-8')[-4000:]}")
    return wall


def relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def snapshot(database: Path, target: Path) -> None:
    """A consistent copy of the label database as it is now (sqlite backup: committed labels, WAL included)."""
    if target.exists():
        target.unlink()
    source, copy = sqlite3.connect(database), sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()


def label(corpus: Corpus, docs: Path, sample: list[GoldQuestion], counts: list[int], work: Path) -> tuple[dict, dict[int, Path]]:
    """Label `sample` through the app's API with the current model; database snapshots after each count."""
    from fastapi.testclient import TestClient

    from slmqa.serving.app import create_app
    from slmqa.serving.docqa import DocumentQA
    from slmqa.serving.feedback import Feedback
    from slmqa.serving.labels import LabelStore

    database = work / "labels.sqlite"
    for stale in work.glob("labels*.sqlite*"):
        stale.unlink()
    started = time.perf_counter()
    qa = DocumentQA(CURRENT_MODEL, docs)
    load_s = time.perf_counter() - started
    changed = [name for name, text in corpus.documents.items() if qa.documents[name].text != text]
    if changed or len(qa.documents) != len(corpus.documents):
        raise SystemExit(f"The server read {len(qa.documents)} documents, {len(changed)} differing from what was written: {changed[:3]}")
    store = LabelStore(database)
    app = create_app(qa, feedback=Feedback(store, qa))
    snapshots: dict[int, Path] = {}
    per_question, failures = [], []
    with TestClient(app) as client:
        for number, gold in enumerate(sample, start=1):
            t0 = time.perf_counter()
            reply = client.post("/answer", json={"question": gold.question, "top_k": TOP_K, "passages": True})
            t1 = time.perf_counter()
            if reply.status_code != 200:
                failures.append({"question": gold.id, "step": "answer", "status": reply.status_code, "body": reply.text[:300]})
                continue
            reading = reply.json()
            match, posts = label_posts(gold, reading)
            for body in posts:
                posted = client.post("/feedback", json=body)
                if posted.status_code != 201:
                    failures.append({"question": gold.id, "step": body.get("verdict", "span"), "status": posted.status_code,
                                     "body": posted.text[:300]})
            t2 = time.perf_counter()
            top = reading["answers"][0] if reading["answers"] else None
            per_question.append({
                "id": gold.id, "match": match, "answered": top is not None, "answer_s": t1 - t0, "feedback_s": t2 - t1,
                "top_in_gold_document": bool(top and top["document"] == gold.document),
                "gold_document_read": any(p["document"] == gold.document for p in reading.get("passages", [])),
            })
            if number in counts:
                snapshots[number] = work / f"labels-{number}.sqlite"
                snapshot(database, snapshots[number])
                right = sum(q["match"] is not None for q in per_question)
                log(f"{corpus.name}: {number} questions labelled, model right on {right} "
                    f"({time.perf_counter() - started - load_s:.0f}s)")
        listed = client.get("/feedback", params={"limit": 1}).json()
        exported = client.get("/feedback/export").json()["slmqa_export"]
    store.connection.close()

    def summary(rows: list[dict]) -> dict:
        n = len(rows)
        return {
            "questions": n,
            "model_right": sum(r["match"] is not None for r in rows),
            "right_rate": round(sum(r["match"] is not None for r in rows) / max(n, 1), 3),
            "right_by_offsets": sum(r["match"] == "offsets" for r in rows),
            "right_by_text_only": sum(r["match"] == "text" for r in rows),
            "model_abstained": sum(not r["answered"] for r in rows),
            "top_answer_in_gold_document": sum(r["top_in_gold_document"] for r in rows),
            "gold_document_among_passages_read": sum(r["gold_document_read"] for r in rows),
            "seconds": round(sum(r["answer_s"] + r["feedback_s"] for r in rows), 2),
            "seconds_per_label": round(sum(r["answer_s"] + r["feedback_s"] for r in rows) / max(n, 1), 3),
            "answer_s_per_question": round(sum(r["answer_s"] for r in rows) / max(n, 1), 3),
            "feedback_s_per_question": round(sum(r["feedback_s"] for r in rows) / max(n, 1), 4),
        }

    result = {
        "server_load_s": round(load_s, 1), "server": qa.describe(),
        "by_count": {str(n): summary(per_question[:n]) for n in counts if n <= len(per_question)},
        "failed_requests": failures, "stored_labels": listed["total"], "labels_by_kind": listed["by_kind"],
        "export_via_api": {k: v for k, v in exported.items() if k != "skipped_labels"},
    }
    return result, snapshots


def export(docs: Path, database: Path, target: Path, seed: int, logs: Path, tag: str) -> dict:
    """serve.py --export_feedback with a held-out split, then preprocess.py --check on both files."""
    command = [sys.executable, "serve.py", "--documents", docs, "--feedback_db", database, "--export_feedback", target,
               "--heldout_fraction", "0.2", "--seed", str(seed)]
    export_s = run_logged(f"export-{tag}", command, logs)
    stem = target.with_suffix("")
    train, heldout = stem.with_name(stem.name + ".train.json"), stem.with_name(stem.name + ".heldout.json")
    report = json.loads(target.read_text(encoding="utf-8"))["slmqa_export"]

    def questions(path: Path) -> tuple[int, int]:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        return len(data), sum(len(p["qas"]) for a in data for p in a["paragraphs"])

    check_command = [sys.executable, "preprocess.py", "--check", train, heldout, "--tokenizer", CURRENT_MODEL,
                     "--version_2_with_negative", "--output_file", target.with_name(f"check-{tag}.json")]
    check_s = run_logged(f"check-{tag}", check_command, logs)
    (train_docs, train_q), (heldout_docs, heldout_q) = questions(train), questions(heldout)
    return {
        "train_file": relative(train), "heldout_file": relative(heldout),
        "train_documents": train_docs, "train_questions": train_q, "heldout_documents": heldout_docs, "heldout_questions": heldout_q,
        "report": {k: v for k, v in report.items() if k != "skipped_labels"},
        "export_s": round(export_s, 2), "check_s": round(check_s, 2), "check_passed": True,
        "export_command": "python " + " ".join(relative(c) if isinstance(c, Path) else c for c in command[1:]),
        "check_command": "python " + " ".join(relative(c) if isinstance(c, Path) else c for c in check_command[1:]),
    }


def train(train_file: str, heldout_file: str, output_dir: Path, logs: Path, tag: str, bf16: bool) -> dict:
    command = [sys.executable, "run_qa.py", RECIPE, "--model_name_or_path", CURRENT_MODEL, "--train_file", train_file,
               "--validation_file", heldout_file, "--output_dir", output_dir, "--overwrite_output_dir",
               "--disable_tqdm", "true", *(bf16_flags() if bf16 else [])]
    wall = run_logged(f"train-{tag}", command, logs)
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    settings = json.loads((output_dir / "qa_settings.json").read_text(encoding="utf-8"))
    for checkpoint in output_dir.glob("checkpoint-*"):  # the recipe saves each epoch; the final model is in output_dir
        shutil.rmtree(checkpoint)
    return {
        "wall_s": round(wall, 1), "train_runtime_s": results.get("train_runtime"),
        "train_records": results.get("train_records"), "train_features": results.get("train_features"),
        "train_loss": results.get("train_loss"), "heldout_questions": results.get("eval_examples"),
        "heldout_f1": results.get("eval_f1"), "heldout_best_f1": results.get("eval_best_f1"),
        "null_score_diff_threshold": settings.get("null_score_diff_threshold"),
        "max_answer_length": settings.get("max_answer_length"), "threshold_source": settings.get("threshold_source"),
        "command": "python " + " ".join(relative(c) if isinstance(c, Path) else str(c) for c in command[1:]),
    }


def evaluate(model_dir: Path, eval_file: Path) -> dict:
    """qa_predict.py --tuned_model model_dir --data_file eval_file, with and without abstention, from one pass."""
    from slmqa.data.checks import RecordChecker, SplitReport
    from slmqa.data.formats import read_records
    from slmqa.decoding.predictions import references, squad_scores
    from slmqa.decoding.squad_metrics import squad_v1_scores
    from slmqa.inference.predictor import Predictor
    from slmqa.inference.runtime import Runtime
    from slmqa.settings import model_settings

    settings, source = model_settings(model_dir)
    started = time.perf_counter()
    predictor = Predictor(model_dir, settings, Runtime().resolve())
    checker = RecordChecker(predictor.tokenizer, settings, max_bad_fraction=1.0)
    examples = checker.check("validation", read_records(str(eval_file)), SplitReport(source=str(eval_file)))
    prediction = predictor.predict(examples, 32)
    v2 = squad_scores(prediction.decoded, examples, settings)
    no_abstention = squad_v1_scores(prediction.decoded.span_predictions, references(examples))
    abstained = sum(not text for text in prediction.decoded.predictions.values())
    return {
        "model": relative(model_dir), "settings_from": relative(Path(source)), "threshold": settings.null_score_diff_threshold,
        "version_2_with_negative": settings.version_2_with_negative, "questions": len(examples), "windows": prediction.windows,
        "exact": round(v2.get("exact", v2.get("exact_match", 0.0)), 2), "f1": round(v2["f1"], 2),
        "abstained": abstained, "best_f1": round(v2.get("best_f1", v2["f1"]), 2), "best_f1_thresh": v2.get("best_f1_thresh"),
        "no_abstention_exact": round(no_abstention["exact_match"], 2), "no_abstention_f1": round(no_abstention["f1"], 2),
        "seconds": round(time.perf_counter() - started, 1),
        "commands": [f"python qa_predict.py --tuned_model {relative(model_dir)} --data_file {relative(eval_file)}",
                     f"python qa_predict.py --tuned_model {relative(model_dir)} --data_file {relative(eval_file)} "
                     "--no-version_2_with_negative"],
    }


def run_corpus(corpus: Corpus, options, work: Path) -> dict:
    counts = sorted(options.labels)
    docs, logs = work / "documents", work / "logs"
    work.mkdir(parents=True, exist_ok=True)
    write_documents(corpus, docs)
    if corpus.eval_documents is not None:
        eval_docs, label_docs = corpus.eval_documents, corpus.label_documents
    else:
        eval_docs, label_docs = split_documents(list(corpus.documents), options.eval_fraction, options.seed)
    sample = sample_questions(corpus.questions, label_docs, max(counts), options.seed)
    if len(sample) < max(counts):
        log(f"{corpus.name}: only {len(sample)} labellable questions in the labelling documents; counts above it are dropped")
        counts = [n for n in counts if n <= len(sample)] or [len(sample)]
    max_eval = options.max_eval_questions if options.max_eval_questions is not None else DEFAULT_MAX_EVAL[corpus.name]
    evaluated = eval_sample(corpus.questions, eval_docs, max_eval or None, options.seed)
    eval_file = work / "eval.json"
    eval_file.write_text(json.dumps(squad_of(evaluated), ensure_ascii=False), encoding="utf-8")
    in_labels = {q.document for q in corpus.questions if q.document in set(label_docs)}
    log(f"{corpus.name}: {len(corpus.documents)} documents ({len(eval_docs)} evaluation, {len(label_docs)} labelling), "
        f"{len(corpus.questions)} questions, {len(evaluated)} evaluated, labelling {counts}")
    row = {
        "corpus": corpus.name, "source": corpus.source, "documents": len(corpus.documents),
        "document_characters": sum(map(len, corpus.documents.values())),
        "eval_documents": eval_docs if len(eval_docs) <= 30 else len(eval_docs), "label_documents": len(label_docs),
        "label_documents_with_questions": len(in_labels),
        "questions": len(corpus.questions), "labellable_questions_in_label_documents": len(sample_questions(corpus.questions, label_docs, 10**9, 0)),
        "data_problems": dict(corpus.problems), "eval_questions": len(evaluated), "eval_file": relative(eval_file),
        "label_counts": counts, "current_model": relative(CURRENT_MODEL),
    }
    started = time.perf_counter()
    row["current"] = evaluate(CURRENT_MODEL, eval_file)
    log(f"{corpus.name}: current model EM/F1 {row['current']['exact']}/{row['current']['f1']}, no abstention "
        f"{row['current']['no_abstention_exact']}/{row['current']['no_abstention_f1']} ({time.perf_counter() - started:.0f}s)")
    row["labelling"], snapshots = label(corpus, docs, sample, counts, work)
    row["steps"] = []
    for n in counts:
        tag = f"{corpus.name}-{n}"
        step = {"labels": n, "labelling": row["labelling"]["by_count"][str(n)]}
        step["export"] = export(docs, snapshots[n], work / f"export-{n}" / "labels.json", options.seed, logs, tag)
        step["train"] = train(step["export"]["train_file"], step["export"]["heldout_file"], work / f"model-{n}", logs, tag, options.bf16)
        step["eval"] = evaluate(work / f"model-{n}", eval_file)
        current, new = row["current"], step["eval"]
        step["gain"] = {key: round(new[key] - current[key], 2) for key in ("exact", "f1", "no_abstention_exact", "no_abstention_f1")}
        log(f"{tag}: EM/F1 {new['exact']}/{new['f1']} (no abstention {new['no_abstention_exact']}/{new['no_abstention_f1']}), "
            f"gain {step['gain']}; train {step['train']['wall_s']}s, eval {new['seconds']}s")
        row["steps"].append(step)
        Path(work / "partial.json").write_text(json.dumps(row, indent=2), encoding="utf-8")
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA), help="In this order.")
    p.add_argument("--labels", nargs="+", type=int, default=[100, 200, 300], help="Label counts (nested samples).")
    p.add_argument("--max_eval_questions", type=int, help="Evaluate on at most N questions of the evaluation documents "
                   "(0: all; default: all, except 100 for COVID-QA, whose questions span whole papers).")
    p.add_argument("--eval_fraction", type=float, default=0.25, help="Share of documents kept for evaluation (PolicyQA, mock).")
    p.add_argument("--seed", type=int, default=42, help="Seed of the document split, the samples and the export split.")
    p.add_argument("--work_dir", default=str(RESULTS / "labelling"), help="Documents, databases, exports, models, logs.")
    p.add_argument("--no_bf16", dest="bf16", action="store_false", help="Train in float32 (default: bfloat16 autocast).")
    options = p.parse_args(argv)
    if min(options.labels) < 1:
        p.error("--labels must be positive.")
    work = Path(options.work_dir)
    rows = []
    if not (CURRENT_MODEL / "model.safetensors").is_file():
        message = f"{CURRENT_MODEL} not found: this benchmark needs ../shared/models/general-qa-minilm (see ../shared/data/README.md)."
        log(message)
        rows = [{"corpus": name, "skipped": message} for name in options.corpora]
    else:
        for name in options.corpora:
            corpus = {"policyqa": load_policyqa, "covid": load_covid, "mock": lambda: load_mock(work / "mock", options.seed)}[name]()
            if isinstance(corpus, str):
                log(f"skipping {name}: {corpus}")
                rows.append({"corpus": name, "skipped": corpus})
                continue
            rows.append(run_corpus(corpus, options, work / name))
    result = {
        "benchmark": "labelling",
        "command": " ".join(["python -m bench.bench_labelling", *(argv if argv is not None else sys.argv[1:])]),
        "recipe": relative(RECIPE), "precision": "bf16" if options.bf16 else "fp32", "corpora": rows,
        "machine": machine(),
    }
    publish(result, "labelling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
