"""The server under load on loopback: requests/s and latency at 1, 4 and 16 concurrent clients.

    python -m bench.bench_server --model /tmp/squad-qa --data_file ../shared/data/covid-qa-dev.json \
        --backend onnx --dtype int8 --requests 64

Starts `serve.py` as its own process on a free loopback port (the data file's folder
copy is the document collection), then for each concurrency level sends `--requests`
POST /answer requests with the data file's questions from that many client threads, each
with its own connection. Reports requests/s, p50/p95 latency, failures (any non-200 or
transport error) and the server's own batching counters. `--workers N` starts N server
processes over one saved index (each with cores / N model threads unless `--threads`).
Prints JSON; saves it under bench/results/.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import machine, publish
from bench.collection import load_collection, percentiles
from slmqa.inference.runtime import add_runtime_arguments, runtime_from_args

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 300.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve.py exited with {process.returncode}")
        try:
            return httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("serve.py did not come up in time")


def load_level(url: str, questions: list[str], clients: int, requests: int, workers: int = 1) -> dict:
    """`requests` questions from `clients` threads at once; latency of each, failures counted.

    With several workers /health answers from one of them, so the batching counters are
    only reported for one.
    """
    import httpx

    def worker(offset: int) -> list[tuple[float, bool]]:
        results = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(offset, requests, clients):
                started = time.perf_counter()
                try:
                    ok = client.post("/answer", json={"question": questions[i % len(questions)], "top_k": 3}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                results.append((time.perf_counter() - started, ok))
        return results

    before = httpx.get(f"{url}/health", timeout=10).json()["served"]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        outcomes = [item for part in pool.map(worker, range(clients)) for item in part]
    wall = time.perf_counter() - started
    after = httpx.get(f"{url}/health", timeout=10).json()["served"]
    batches = after["batches"] - before["batches"]
    level = {
        "clients": clients, "requests": len(outcomes), "failed": sum(not ok for _, ok in outcomes),
        "requests_per_s": round(len(outcomes) / wall, 2), **percentiles([s for s, _ in outcomes]),
    }
    if workers == 1:
        level["mean_questions_per_model_call"] = round((after["questions"] - before["questions"]) / max(1, batches), 2)
    return level


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data_file", required=True, help="SQuAD-format file: its contexts are served, its questions asked.")
    add_runtime_arguments(p)
    p.set_defaults(backend="onnx", dtype="int8")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--requests", type=int, default=64, help="Requests per concurrency level.")
    p.add_argument("--max_batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1, help="serve.py --workers (processes sharing one index).")
    p.add_argument("--retriever", help="serve.py --retriever (default: serving's default).")
    p.add_argument("--passage_ratio", type=float, help="serve.py --passage_ratio (default: read all --passages).")
    p.add_argument("--min_passages", type=int, default=3, help="serve.py --min_passages (with --passage_ratio).")
    args = p.parse_args(argv)
    data_file = Path(args.data_file)
    _, queries = load_collection(data_file)
    questions = [q.question for q in queries]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as index_dir:
        shutil.copy(data_file, Path(folder) / data_file.name)
        command = [sys.executable, str(ROOT / "serve.py"), "--model", args.model, "--documents", folder, "--port", str(port),
                   "--backend", args.backend, "--device", args.device, "--dtype", args.dtype, "--max_batch", str(args.max_batch), "--log_level", "warning"]
        if args.passage_ratio is not None:
            command += ["--passage_ratio", str(args.passage_ratio), "--min_passages", str(args.min_passages)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.retriever:
            command += ["--retriever", args.retriever]
        command += ["--workers", str(args.workers), "--index_dir", index_dir, "--no_feedback"]
        server = subprocess.Popen(command, cwd=ROOT)
        try:
            health = wait_until_up(url, server)
            load_level(url, questions, 2 * args.workers, 4 * args.workers, args.workers)  # warm-up (every worker)
            levels = [load_level(url, questions, clients, args.requests, args.workers) for clients in args.clients]
        finally:
            server.terminate()
            server.wait(30)
    publish({
        "benchmark": "server",
        "command": " ".join(["python -m bench.bench_server", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model, "data_file": str(data_file), "backend": runtime_from_args(args).name, "max_batch": args.max_batch,
        "workers": args.workers, "threads": args.threads,
        "passage_ratio": args.passage_ratio, "min_passages": args.min_passages if args.passage_ratio is not None else None,
        "server": {k: v for k, v in health.items() if k != "served"}, "levels": levels, "machine": machine(),
    }, "server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
