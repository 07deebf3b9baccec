#!/usr/bin/env python
"""Answer questions about a folder of documents over HTTP, with a page to ask and label from.

    python serve.py --model models/minilm-qa-demo --documents my/docs [--backend onnx --dtype int8]
    python serve.py --documents my/docs --export_feedback labels.json --heldout_fraction 0.2

GET /        the page: ask, mark answers right or wrong, select the right words, browse documents
POST /answer {"question": str, "top_k": int (optional)} -> {"answers": [...], "no_answer": bool}
POST /feedback, GET /feedback, DELETE /feedback/{id}, GET /feedback/export   labels (docs/labelling.md)
GET /health  what is loaded, how many labels, how many questions were answered in how many batches

Labels are stored in SQLite (--feedback_db; the path is logged at start). It listens on
loopback unless told otherwise; beyond loopback the label endpoints need an API key
(SLMQA_API_KEY or --api_key), and asking has no authentication: put it behind a proxy that has.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from slmqa.errors import ConfigError
from slmqa.inference.runtime import Runtime, add_runtime_arguments, runtime_from_args
from slmqa.logs import get_logger, setup_logging
from slmqa.serving.app import is_loopback
from slmqa.serving.docqa import DEFAULT_PASSAGES, DEFAULT_RETRIEVER, Options
from slmqa.serving.documents import DocumentError, read_folder
from slmqa.serving.feedback import export_labels
from slmqa.serving.index import default_index_dir
from slmqa.serving.label_export import DEFAULT_NEGATIVE_PASSAGES, split_by_document
from slmqa.serving.labels import LabelStore, LabelStoreError, default_database
from slmqa.serving.retrieval import RETRIEVERS
from slmqa.serving.service import CONFIG_VARIABLE, ServeConfig, build_app, prepare_index

logger = get_logger("serve")
API_KEY_VARIABLE = "SLMQA_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="Trained model directory (as run_qa.py wrote it); not needed with --export_feedback.")
    p.add_argument("--documents", required=True, help="Folder of .txt/.md/.html/.json/.pdf documents to answer from.")
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: loopback only).")
    p.add_argument("--port", type=int, default=8000, help="Port to listen on.")
    p.add_argument("--passages", type=int, default=DEFAULT_PASSAGES, help="Passages read per question (at most).")
    p.add_argument("--passage_ratio", type=float, help="Read fewer passages when retrieval is confident: beyond "
                   "--min_passages, only those scoring at least this fraction of the best one (default 0.9 with hybrid "
                   "retrieval, measured in bench/README.md; 0 = always read --passages).")
    p.add_argument("--min_passages", type=int, default=3, help="Passages always read with --passage_ratio.")
    p.add_argument("--max_batch", type=int, default=8, help="Most questions answered in one model call.")
    p.add_argument("--workers", type=int, default=1, help="Server processes sharing one index (each loads the model).")
    index = p.add_argument_group("retrieval and the index (docs/serving.md)")
    index.add_argument("--retriever", choices=RETRIEVERS, default=DEFAULT_RETRIEVER,
                       help="bm25 (words), dense (sentence embeddings) or hybrid (both, fused by reciprocal rank).")
    index.add_argument("--embedder", help="Sentence encoder for dense/hybrid (default: all-MiniLM-L6-v2, never the QA model).")
    index.add_argument("--index_dir", help="Where the folder's index is kept between starts (default: one per documents "
                       "folder under $XDG_CACHE_HOME/slmqa/index, i.e. ~/.cache/slmqa/index).")
    index.add_argument("--rescan_s", type=float, default=30.0, help="Check the folder for added or changed files at most "
                       "this often (a changed file among a question's passages is always re-read first).")
    p.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    labels = p.add_argument_group("labels (docs/labelling.md)")
    labels.add_argument("--feedback_db", help="SQLite file for labels (default: one per documents folder under "
                        "$XDG_DATA_HOME/slmqa/labels, i.e. ~/.local/share/slmqa/labels).")
    labels.add_argument("--no_feedback", action="store_true", help="Serve answers only: no label endpoints, no database.")
    labels.add_argument("--api_key", help=f"Key the label endpoints require (Authorization: Bearer); prefer ${API_KEY_VARIABLE}, "
                        "which ps cannot show. Required when --host is not loopback.")
    labels.add_argument("--export_feedback", metavar="FILE", help="Write the labels as SQuAD v2 to FILE and exit (no server, no model).")
    labels.add_argument("--heldout_fraction", type=float, default=0.0, help="With --export_feedback: also write FILE's "
                        "documents split into <stem>.train.json and <stem>.heldout.json (this fraction held out).")
    labels.add_argument("--negative_passages", type=int, default=DEFAULT_NEGATIVE_PASSAGES,
                        help="Passages each 'not in these documents' label becomes an unanswerable question on.")
    labels.add_argument("--seed", type=int, default=42, help="Seed of the document split.")
    add_runtime_arguments(p)
    return p


def export_command(args: argparse.Namespace) -> int:
    """--export_feedback: the labels against the folder as it is now, optionally split by document."""
    database = Path(args.feedback_db) if args.feedback_db else default_database(args.documents)
    if not database.is_file():
        raise ConfigError(f"No label database at {database}: pass the --feedback_db the server used.")
    store = LabelStore(database)
    documents, _ = read_folder(args.documents)
    squad, report = export_labels(store, {d.name: d for d in documents}, Options(passages=args.passages), args.negative_passages)
    outputs = {Path(args.export_feedback): squad}
    if args.heldout_fraction:
        train, heldout = split_by_document(squad, args.heldout_fraction, args.seed)
        stem = Path(args.export_feedback).with_suffix("")
        outputs[stem.with_name(stem.name + ".train.json")] = train
        outputs[stem.with_name(stem.name + ".heldout.json")] = heldout
    for path, content in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**content, "slmqa_export": report.to_json()}, ensure_ascii=False, indent=1), encoding="utf-8")
        questions = sum(len(p["qas"]) for article in content["data"] for p in article["paragraphs"])
        print(f"{path}: {len(content['data'])} documents, {questions} questions")
    print(f"{report.labels} labels from {database}: {report.answers} answers, {report.unanswerable} 'not in these documents' "
          f"({report.negative_passages} passages), {len(report.skipped)} not exported {report.skipped_by_reason() or ''}")
    return 0


def open_label_store(args: argparse.Namespace) -> tuple[LabelStore | None, str | None]:
    """The label store and the key guarding it (before the model loads: a bad setting fails at once)."""
    if args.no_feedback:
        logger.info("Labelling is off (--no_feedback)")
        return None, None
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    if not is_loopback(args.host) and api_key is None:
        raise ConfigError(
            f"Listening on {args.host} with label endpoints open to anyone: set ${API_KEY_VARIABLE} (or --api_key), "
            "or pass --no_feedback."
        )
    database = Path(args.feedback_db) if args.feedback_db else default_database(args.documents)
    store = LabelStore(database)
    logger.info("Labels are stored in %s (%d so far%s)", database.resolve(), store.count(),
                "; read-only" if store.read_only else "")
    store.close()  # each serving process opens its own connection
    return store, api_key


def worker_runtime(args: argparse.Namespace) -> Runtime:
    """The runtime each server process uses: with --workers N and no --threads, the cores split between them.

    N processes each running the model on every core would fight over the cores (each
    matrix product waiting for threads the others hold); cores / N threads each do not.
    """
    runtime = runtime_from_args(args).resolve()
    if args.workers > 1 and runtime.threads is None and runtime.device == "cpu":
        threads = max(1, (os.cpu_count() or 1) // args.workers)
        logger.info("%d workers on %d cores: %d model thread(s) each (--threads to change)", args.workers, os.cpu_count() or 1, threads)
        runtime = replace(runtime, threads=threads)
    return runtime


def serve_config(args: argparse.Namespace, store: LabelStore | None, api_key: str | None,
                 runtime: Runtime | None = None) -> ServeConfig:
    """What every server process needs; `runtime`: worker_runtime(args) when already resolved (it logs its choice)."""
    options = Options(passages=args.passages, retriever=args.retriever, embedder=args.embedder, rescan_s=args.rescan_s,
                      passage_ratio=args.passage_ratio, min_passages=args.min_passages)
    return ServeConfig(
        model=args.model, documents=args.documents, runtime=asdict(runtime or worker_runtime(args)), options=asdict(options),
        index_dir=str(Path(args.index_dir) if args.index_dir else default_index_dir(args.documents)),
        feedback_db=str(store.path) if store is not None else None, api_key=api_key, max_batch=args.max_batch,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(logging, args.log_level.upper()))
    try:
        if args.export_feedback:
            return export_command(args)
        if not args.model:
            raise ConfigError("--model is required to serve (only --export_feedback works without one).")
        if args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {args.workers}.")
        runtime = worker_runtime(args)  # an impossible runtime fails before anything is read
        if not Path(args.documents).is_dir():
            raise DocumentError(f"Documents folder not found: {args.documents}")
        store, api_key = open_label_store(args)
        config = serve_config(args, store, api_key, runtime)
        if args.workers == 1:
            app = build_app(config)
        else:
            prepare_index(config)  # once, here: the workers then find it up to date
    except (ConfigError, DocumentError, LabelStoreError, ValueError) as err:
        logger.error("%s", err)
        return 2
    if not is_loopback(args.host):
        logger.warning("Listening on %s: anyone who can reach it can ask questions (labels need the API key).", args.host)
    import uvicorn

    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, limit_concurrency=256)
    else:
        os.environ[CONFIG_VARIABLE] = config.to_json()
        uvicorn.run("slmqa.serving.service:app_from_environment", factory=True, workers=args.workers, host=args.host,
                    port=args.port, log_level=args.log_level, limit_concurrency=256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
