"""serve.py, the command: loopback by default, runtime options, clear exits, the label database and its export, kill -9."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import serve
from slmqa.serving.documents import read_folder
from slmqa.serving.labels import Label, LabelStore, text_sha256
from tests.document_helpers import MANUAL, document_folder
from tests.helpers import ROOT


def test_loopback_torch_and_auto_precision_are_the_defaults():
    args = serve.build_parser().parse_args(["--model", "m", "--documents", "d"])
    assert (args.host, args.backend, args.device, args.dtype) == ("127.0.0.1", "torch", "auto", "auto")


@pytest.mark.parametrize("cores, workers, threads, expected", [(4, 1, None, None), (4, 2, None, 2), (2, 2, None, 1),
                                                             (1, 3, None, 1), (4, 2, "4", 4)])
def test_workers_split_the_cores_unless_threads_are_given(monkeypatch, cores, workers, threads, expected):
    monkeypatch.setattr(serve.os, "cpu_count", lambda: cores)
    argv = ["--model", "m", "--documents", "d", "--device", "cpu", "--workers", str(workers)]
    config = serve.serve_config(serve.build_parser().parse_args(argv + (["--threads", threads] if threads else [])), None, None)
    assert config.runtime["threads"] == expected


def test_passage_ratio_reaches_the_options_and_defaults_to_the_retrievers(tmp_path, tiny_model_dir, caplog):
    parse = serve.build_parser().parse_args
    options = serve.serve_config(parse(["--model", "m", "--documents", "d"]), None, None).options
    assert (options["passage_ratio"], options["min_passages"]) == (None, 3)
    options = serve.serve_config(parse(["--model", "m", "--documents", "d", "--passage_ratio", "0.4", "--min_passages", "2"]),
                                 None, None).options
    assert (options["passage_ratio"], options["min_passages"]) == (0.4, 2)
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(document_folder(tmp_path)), "--no_feedback",
                       "--passage_ratio", "1.5"]) == 2
    assert "passage_ratio must be in [0, 1]" in caplog.text


def test_unusable_documents_folder_exits_with_a_message(tmp_path, tiny_model_dir, caplog):
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(tmp_path / "missing")]) == 2
    assert "not found" in caplog.text


def test_impossible_runtime_exits_before_reading_the_folder(tmp_path, tiny_model_dir, caplog):
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(tmp_path / "missing"), "--backend", "onnx",
                       "--dtype", "bfloat16"]) == 2
    assert "--backend onnx runs float32 or int8" in caplog.text and "not found" not in caplog.text


# ---------------------------------------------------------------- labels


def test_a_feedback_db_that_is_not_a_database_stops_the_start_and_is_kept(tmp_path, tiny_model_dir, caplog):
    folder = document_folder(tmp_path)
    notes = tmp_path / "notes.db"
    notes.write_text("shopping list: bread, milk\n" * 10, encoding="utf-8")
    before = notes.read_bytes()
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(folder), "--feedback_db", str(notes)]) == 2
    assert f"{notes} is not a SQLite database" in caplog.text
    assert notes.read_bytes() == before


def test_beyond_loopback_label_endpoints_need_a_key(tmp_path, tiny_model_dir, caplog, monkeypatch):
    folder = document_folder(tmp_path)
    monkeypatch.delenv(serve.API_KEY_VARIABLE, raising=False)
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(folder), "--host", "0.0.0.0"]) == 2
    assert "SLMQA_API_KEY" in caplog.text and "--no_feedback" in caplog.text
    parse = serve.build_parser().parse_args
    base = ["--documents", str(folder), "--host", "0.0.0.0", "--feedback_db", str(tmp_path / "l.sqlite")]
    monkeypatch.setenv(serve.API_KEY_VARIABLE, "from-env")
    store, key = serve.open_label_store(parse(base))
    assert key == "from-env" and store is not None
    assert serve.open_label_store(parse([*base, "--api_key", "flag"]))[1] == "flag"
    monkeypatch.delenv(serve.API_KEY_VARIABLE)
    assert serve.open_label_store(parse([*base, "--no_feedback"])) == (None, None)


def test_export_command_writes_squad_and_a_split_by_document(tmp_path, capsys):
    folder = document_folder(tmp_path)
    database = tmp_path / "labels.sqlite"
    store = LabelStore(database)
    documents = {d.name: d for d in read_folder(folder)[0]}
    for name, needle in (("manual.txt", "25 Nm"), ("sub/policy.md", "two days"), ("page.html", "12 bar"), ("valve.pdf", "6 bar")):
        text = documents[name].text
        start = text.index(needle)
        store.add(Label(f"What about {needle}?", "answer", document=name, document_sha256=text_sha256(text),
                        start=start, end=start + len(needle), answer=needle))
    output = tmp_path / "out" / "labels.json"
    assert serve.main(["--documents", str(folder), "--feedback_db", str(database), "--export_feedback", str(output),
                       "--heldout_fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "4 labels" in printed and "4 answers" in printed
    everything = json.loads(output.read_text())
    train, heldout = (json.loads((tmp_path / "out" / f"labels.{side}.json").read_text()) for side in ("train", "heldout"))
    titles = lambda squad: {article["title"] for article in squad["data"]}  # noqa: E731
    assert titles(train) | titles(heldout) == titles(everything) and not titles(train) & titles(heldout)
    assert len(titles(heldout)) == 1 and everything["slmqa_export"]["answers"] == 4
    assert serve.main(["--documents", str(folder), "--feedback_db", str(tmp_path / "none.sqlite"), "--export_feedback", str(output)]) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, folder: Path, database: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "serve.py", "--model", str(model), "--documents", str(folder), "--feedback_db", str(database),
               "--port", str(port), "--log_level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not start within 120 s")


@pytest.mark.subprocess
def test_kill_9_under_load_loses_no_acknowledged_label(tmp_path, tiny_model_dir):
    """8 clients post labels; the server is SIGKILLed mid-load; after a restart every acknowledged label is there."""
    folder, database, port = document_folder(tmp_path), tmp_path / "labels.sqlite", free_port()
    hours = MANUAL.index("400 operating hours")
    server = start_server(tiny_model_dir, folder, database, port)
    acknowledged: dict[int, str] = {}
    lock, stop = threading.Lock(), threading.Event()

    def client(number: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for attempt in range(10_000):
                if stop.is_set():
                    return
                question = f"Service interval, client {number}, try {attempt}?"
                try:
                    response = http.post("/feedback", json={"question": question, "document": "manual.txt",
                                                            "start": hours, "end": hours + 19})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 201:
                    with lock:
                        acknowledged[response.json()["id"]] = question

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(acknowledged) >= 150, "too few labels were acknowledged before the kill"
    server = start_server(tiny_model_dir, folder, database, port)
    try:
        listing = httpx.get(f"http://127.0.0.1:{port}/feedback", params={"limit": 500}, timeout=30).json()
        total = listing["total"]
        while len(listing["labels"]) < total:
            more = httpx.get(f"http://127.0.0.1:{port}/feedback", params={"limit": 500, "offset": len(listing["labels"])}, timeout=30)
            listing["labels"] += more.json()["labels"]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    stored = {label["id"]: label["question"] for label in listing["labels"]}
    assert {label_id: stored.get(label_id) for label_id in acknowledged} == acknowledged
    assert total >= len(acknowledged)


@pytest.mark.subprocess
def test_two_worker_processes_share_one_index_and_one_label_database(tmp_path, tiny_model_dir):
    import psutil

    folder, database, port = document_folder(tmp_path), tmp_path / "labels.sqlite", free_port()
    hours = MANUAL.index("400 operating hours")
    command = [sys.executable, "serve.py", "--model", str(tiny_model_dir), "--documents", str(folder), "--feedback_db",
               str(database), "--port", str(port), "--log_level", "warning", "--workers", "2",
               "--index_dir", str(tmp_path / "index")]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, pids = time.monotonic() + 120, set()
        while time.monotonic() < deadline and len(pids) < 2:
            assert server.poll() is None, "the server exited during start-up"
            try:
                with httpx.Client(timeout=5) as fresh:  # a new connection each time: either worker may take it
                    pids.add(fresh.get(f"http://127.0.0.1:{port}/health").json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        assert len(pids) == 2 and pids <= {child.pid for child in psutil.Process(server.pid).children(recursive=True)}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.post("/answer", json={"question": "How often is the compressor serviced?"}).status_code == 200

        def post(number: int) -> int:
            with httpx.Client(timeout=30) as fresh:
                return fresh.post(f"http://127.0.0.1:{port}/feedback", json={"question": f"Interval {number}?",
                                  "document": "manual.txt", "start": hours, "end": hours + 19}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(post, range(20))) == [201] * 20
    finally:
        for child in psutil.Process(server.pid).children(recursive=True):
            child.kill()
        server.kill()
        server.wait(30)
    assert LabelStore(database).count() == 20
    assert len(list((tmp_path / "index").glob("gen-*"))) == 1  # built once, by the parent, not once per worker
