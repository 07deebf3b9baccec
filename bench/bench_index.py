"""The saved index at scale: first start vs later starts, an incremental update, query latency vs collection size.

    python -m bench.bench_index --passages 50000 --retriever hybrid

Builds a documents folder of at least --passages passages from the shared corpora (COVID-QA
papers, SQuAD articles, PolicyQA policies: one .txt per document, copied into numbered
subfolders with a distinguishing first line until the folder is large enough), then times
each phase in a fresh process (so that its peak memory is its own):
  first   no index yet: read every file, cut passages, BM25, embed (for dense/hybrid)
  later   the same folder again: everything reused
  update  1% of the files changed, 1% added, 1% removed: only those are read and embedded
  query   latency of bm25/dense/hybrid search at growing collection sizes (prefixes of the index)
Prints JSON; saves it under bench/results/. The folder and index live under bench/results/index/.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import RESULTS, machine, publish

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SOURCES = ("covid-qa-train.json", "covid-qa-dev.json", "squad-v1.1-dev.json", "squad-v2.0-dev-half.json", "policyqa-dev.json")
WORK = RESULTS / "index"


def source_documents() -> list[tuple[str, str]]:
    """(name, text): one document per article of each shared file, its paragraphs joined by blank lines."""
    documents = []
    for file_name in SOURCES:
        path = SHARED / file_name
        if not path.is_file():
            raise SystemExit(f"{path} not found: this benchmark needs ../shared/data (see bench/README.md).")
        for number, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
            text = "\n\n".join(dict.fromkeys(p["context"] for p in article["paragraphs"]))
            documents.append((f"{Path(file_name).stem}-{number:03d}.txt", text))
    return documents


def build_folder(folder: Path, target_passages: int) -> dict:
    """Copies of the shared documents until the folder holds at least `target_passages` passages."""
    from slmqa.serving.documents import Document, split_passages

    documents = source_documents()
    per_copy = sum(len(split_passages(Document(name, f"Copy 0.\n{text}"))) for name, text in documents)
    copies = -(-target_passages // per_copy)
    if folder.is_dir() and (folder / "DONE").is_file() and json.loads((folder / "DONE").read_text())["copies"] == copies:
        return json.loads((folder / "DONE").read_text())
    for copy in range(copies):
        sub = folder / f"copy-{copy:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        for name, text in documents:
            (sub / name).write_text(f"Copy {copy}.\n{text}", encoding="utf-8")
    summary = {"copies": copies, "files": copies * len(documents), "passages": copies * per_copy}
    (folder / "DONE").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def index_of(args):
    from slmqa.serving.embedding import SentenceEncoder
    from slmqa.serving.index import FolderIndex

    encoder = SentenceEncoder() if args.retriever != "bm25" else None
    return FolderIndex(WORK / "corpus", WORK / f"index-{args.retriever}", 100, 25, encoder)


def phase_load(args) -> dict:
    """One start: load (and update when needed) the index; time and peak memory of this process."""
    started = time.perf_counter()
    index = index_of(args)
    collection = index.load()
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_rss_mb(),
            "documents": len(collection.documents), "passages": len(collection.passages)}


def phase_query(args) -> dict:
    """Search latency of each retriever over growing prefixes of the collection."""
    import numpy as np

    from slmqa.serving.retrieval import BM25Retriever, DenseRetriever, HybridRetriever

    index = index_of(args)
    collection = index.load()
    questions = [qa["question"] for article in json.loads((SHARED / "covid-qa-dev.json").read_text())["data"]
                 for p in article["paragraphs"] for qa in p["qas"]][: args.queries]
    rows = []
    for size in sorted({s for s in (1_000, 5_000, 10_000, 25_000, len(collection.passages)) if s <= len(collection.passages)}):
        passages = collection.passages[:size]
        bm25 = BM25Retriever(passages)
        retrievers = {"bm25": bm25}
        if collection.embeddings is not None:
            dense = DenseRetriever(passages, np.asarray(collection.embeddings[:size]), index.encoder)
            retrievers |= {"dense": dense, "hybrid": HybridRetriever(bm25, dense)}
        row = {"passages": size}
        for name, retriever in retrievers.items():
            seconds = []
            for question in questions:
                started = time.perf_counter()
                retriever.search(question, 8)
                seconds.append(time.perf_counter() - started)
            row[f"{name}_p50_ms"] = round(1000 * statistics.median(seconds), 2)
        rows.append(row)
    return {"rows": rows, "queries": len(questions)}


def touch_files(count: int) -> dict:
    """Change, add and remove `count` files each (the update phase's edits)."""
    files = sorted((WORK / "corpus").rglob("*.txt"))
    for path in files[:count]:
        path.write_text(path.read_text(encoding="utf-8") + "\nAn added sentence about maintenance.", encoding="utf-8")
    for path in files[count : 2 * count]:
        path.unlink()
    extra = WORK / "corpus" / "added"
    extra.mkdir(exist_ok=True)
    for number, path in enumerate(files[2 * count : 3 * count]):
        (extra / f"new-{number}.txt").write_text("A new file.\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return {"changed": count, "removed": count, "added": count}


def run_phase(args, phase: str) -> dict:
    command = [sys.executable, "-m", "bench.bench_index", "--phase", phase, "--retriever", args.retriever,
               "--queries", str(args.queries)]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--passages", type=int, default=50_000, help="At least this many passages in the folder.")
    p.add_argument("--retriever", choices=("bm25", "dense", "hybrid"), default="hybrid")
    p.add_argument("--queries", type=int, default=100, help="Questions timed per retriever and size.")
    p.add_argument("--phase", choices=("load", "query"), help=argparse.SUPPRESS)  # one phase in this process
    args = p.parse_args(argv)
    if args.phase:
        print(json.dumps(phase_load(args) if args.phase == "load" else phase_query(args)))
        return 0
    import shutil

    folder = build_folder(WORK / "corpus", args.passages)
    shutil.rmtree(WORK / f"index-{args.retriever}", ignore_errors=True)
    first = run_phase(args, "load")
    later = run_phase(args, "load")
    edits = touch_files(max(1, folder["files"] // 100))
    update = run_phase(args, "load")
    after_update = run_phase(args, "load")
    query = run_phase(args, "query")
    shutil.rmtree(WORK / "corpus")  # the edits made it differ from a fresh build; rebuilt next time
    result = {
        "benchmark": "index",
        "command": " ".join(["python -m bench.bench_index", *(argv if argv is not None else sys.argv[1:])]),
        "retriever": args.retriever, "folder": folder,
        "first_start": first, "later_start": later, "update": {**edits, **update}, "start_after_update": after_update,
        "query_latency": query,
    }
    publish({**result, "machine": machine()}, "index")
    return 0


if __name__ == "__main__":
    sys.exit(main())
