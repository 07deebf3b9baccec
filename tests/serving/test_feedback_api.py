"""The label endpoints of slmqa.serving.app: storing, listing, deleting, exporting; every bad input a 4xx; keys; 503s."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

import preprocess
from slmqa.serving.app import create_app
from slmqa.serving.feedback import Feedback
from slmqa.serving.labels import LabelStore
from slmqa.serving.request_checks import Limits
from tests.document_helpers import MANUAL, document_folder, marked_qa
from tests.helpers import run_main, run_qa
from tools.live_server import running_server

TORQUE = "What is the torque setting of the CM-7 compressor?"
SERVICE = "How often must the compressor be serviced?"
HOURS = MANUAL.index("400 operating hours")


def service_label(**extra) -> dict:
    return {"question": SERVICE, "document": "manual.txt", "start": HOURS, "end": HOURS + 19, **extra}


@pytest.fixture(scope="module")
def qa(tmp_path_factory, tiny_model_dir, tokenizer):
    """A DocumentQA over the test folder whose model always answers the token '25'."""
    return marked_qa(document_folder(tmp_path_factory.mktemp("labels")), tiny_model_dir, tokenizer)


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(tmp_path / "labels.sqlite")


@pytest.fixture
def client(qa, store):
    with TestClient(create_app(qa, feedback=Feedback(store, qa)), raise_server_exceptions=False) as test_client:
        yield test_client


def test_each_kind_of_label_is_stored_with_its_document_and_model(client, store, qa):
    shown = client.post("/answer", json={"question": TORQUE, "passages": True}).json()
    best = shown["answers"][0]
    assert shown["passages"] and all(MANUAL[p["start"] : p["end"]] == p["text"] for p in shown["passages"] if p["document"] == "manual.txt")
    replies = [
        client.post("/feedback", json={"question": TORQUE, "document": best["document"], "start": best["start"],
                                       "end": best["end"], "text": best["text"], "verdict": "right"}),
        client.post("/feedback", json=service_label(verdict="wrong")),
        client.post("/feedback", json=service_label(text="400 operating hours")),
        client.post("/feedback", json={"question": "Who painted the F-3 fan?", "no_answer": True}),
        client.post("/feedback", json=service_label(source="browse")),
    ]
    assert [r.status_code for r in replies] == [201] * 5, [r.text for r in replies]
    assert [r.json()["kind"] for r in replies] == ["confirmed", "rejected", "answer", "no_answer", "answer"]
    assert [r.json()["labels"] for r in replies] == [1, 2, 3, 4, 5]
    stored = {label.id: label for label in store.all()}
    assert stored[1].answer == "25" and (stored[1].start, stored[1].end) == (best["start"], best["end"])
    assert stored[3].answer == MANUAL[stored[3].start : stored[3].end] == "400 operating hours"
    assert stored[3].model == qa.model_id and stored[5].model is None and stored[5].source == "browse"
    assert len(stored[3].document_sha256) == 64
    assert stored[4].passages and {p.document for p in stored[4].passages} <= set(qa.documents)


def label_error(client, content: object, status: int, message: str) -> None:
    body = content if isinstance(content, bytes) else json.dumps(content).encode()
    response = client.post("/feedback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"], response.json()


BAD_LABELS = {
    "unknown document": (service_label(document="secret.txt"), 422, "Unknown document"),
    "a path as document": (service_label(document="../../etc/passwd"), 422, "Unknown document"),
    "start outside": (service_label(start=-5), 422, "within the document"),
    "end outside": (service_label(end=len(MANUAL) + 10), 422, "within the document"),
    "empty span": (service_label(end=HOURS), 422, "empty"),
    "text that does not match": (service_label(text="500 operating hours"), 422, "does not match"),
    "empty question": (service_label(question="  "), 422, "empty"),
    "long question": (service_label(question="x" * 501), 422, "too long"),
    "too many tokens": (service_label(question="\u4e00\u4e8c\u4e09" * 160), 422, "too many tokens"),
    "wrong type": (service_label(start="12"), 422, "must be an integer"),
    "unknown field": (service_label(path="/etc/passwd"), 422, "Unknown field"),
    "array body": ([1, 2], 422, "JSON object"),
    "malformed": (b'{"question": "x", ', 400, "Malformed JSON"),
    "oversized": (json.dumps(service_label(text="x" * Limits().max_body_bytes)).encode(), 413, "too large"),
}


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_bad_labels_are_a_4xx_with_a_message_and_store_nothing(client, store, case):
    label_error(client, *BAD_LABELS[case])
    assert store.count() == 0


def test_a_span_over_1000_characters_is_refused(tmp_path, tiny_model_dir, tokenizer):
    from slmqa.serving.docqa import DocumentQA

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "long.txt").write_text("word " * 500, encoding="utf-8")
    qa = DocumentQA(tiny_model_dir, folder)
    with TestClient(create_app(qa, feedback=Feedback(LabelStore(tmp_path / "l.sqlite"), qa))) as client:
        label_error(client, {"question": "q", "document": "long.txt", "start": 0, "end": 1004}, 422, "at most 1000")


def test_form_posts_and_wrong_methods(client):
    response = client.post("/feedback", content=b"question=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert client.put("/feedback", json={}).status_code == 405


def test_listing_is_paged_newest_first_and_checks_its_parameters(client):
    for number in range(5):
        assert client.post("/feedback", json=service_label(question=f"Service interval {number}?")).status_code == 201
    page = client.get("/feedback", params={"offset": 1, "limit": 2}).json()
    assert page["total"] == 5 and [label["question"] for label in page["labels"]] == ["Service interval 3?", "Service interval 2?"]
    assert page["by_kind"]["answer"] == 5
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}):
        response = client.get("/feedback", params=params)
        assert response.status_code == 422 and "must be an integer" in response.json()["error"]


def test_delete_removes_one_label(client, store):
    label_id = client.post("/feedback", json=service_label()).json()["id"]
    assert client.delete(f"/feedback/{label_id}").status_code == 204
    assert store.count() == 0
    missing = client.delete(f"/feedback/{label_id}")
    assert missing.status_code == 404 and "No label" in missing.json()["error"]
    assert client.delete("/feedback/abc").status_code == 422


def test_documents_can_be_listed_and_read_by_name_only(client):
    listed = client.get("/documents", params={"contains": "MANUAL"}).json()
    assert listed["total"] == 1 and listed["documents"] == [{"name": "manual.txt", "characters": len(MANUAL)}]
    assert client.get("/documents").json()["total"] == 6
    assert client.get("/document", params={"name": "manual.txt"}).json()["text"] == MANUAL
    assert client.get("/document", params={"name": "/etc/passwd"}).status_code == 404
    assert client.get("/document").status_code == 422


def test_export_round_trips_through_the_data_check_and_trains(client, tmp_path, tiny_model_dir):
    client.post("/feedback", json=service_label())
    client.post("/feedback", json={"question": TORQUE, "document": "manual.txt", "start": MANUAL.index("25 Nm"),
                                   "end": MANUAL.index("25 Nm") + 5, "verdict": "right"})
    client.post("/feedback", json={"question": "What does the P-9 pump deliver?", "document": "page.html",
                                   "start": 0, "end": 3, "verdict": "wrong"})
    client.post("/feedback", json={"question": "Who painted the F-3 fan?", "no_answer": True})
    response = client.get("/feedback/export")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    squad = response.json()
    report = squad["slmqa_export"]
    assert (report["labels"], report["answers"], report["unanswerable"], report["skipped"]) == (4, 2, 1, 1)
    qas = {qa["id"]: (paragraph["context"], qa) for article in squad["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    context, exported = qas["label-1"]
    answer = exported["answers"][0]
    assert context[answer["answer_start"] : answer["answer_start"] + 19] == answer["text"] == "400 operating hours"
    path = tmp_path / "labels.json"
    path.write_text(response.text, encoding="utf-8")
    run_main(preprocess.main, ["--check", path, "--version_2_with_negative", "--tokenizer", tiny_model_dir,
                               "--output_file", tmp_path / "check.json"])
    counts = json.loads((tmp_path / "check.json").read_text())[str(path)]["counts"]
    assert counts["repaired_spans"] == 0  # every answer_start was exact
    assert (counts["kept"], counts["answerable"], counts["unanswerable"], counts["dropped_records"]) == (5, 2, 3, 0)
    out = tmp_path / "model"
    run_qa("--model_name_or_path", tiny_model_dir, "--train_file", path, "--validation_file", path,
           "--version_2_with_negative", "true", "--output_dir", out, "--do_train", "--do_eval", "--max_steps", 2,
           "--max_seq_length", 64, "--doc_stride", 16, "--per_device_train_batch_size", 2, "--report_to", "none",
           "--disable_tqdm", "true", "--save_strategy", "no")
    assert (out / "model.safetensors").is_file() and json.loads((out / "eval_results.json").read_text())["eval_total"] >= 3


def test_without_labelling_the_endpoints_say_so_and_answers_work(qa):
    with TestClient(create_app(qa), raise_server_exceptions=False) as client:
        for method, path in (("post", "/feedback"), ("get", "/feedback"), ("delete", "/feedback/1"), ("get", "/feedback/export")):
            response = getattr(client, method)(path, **({"json": service_label()} if method == "post" else {}))
            assert response.status_code == 404 and "--no_feedback" in response.json()["error"], path
        assert client.post("/answer", json={"question": TORQUE}).status_code == 200
        assert client.get("/health").json()["labelling"] is False


def test_with_a_key_every_label_endpoint_wants_it(qa, store):
    with TestClient(create_app(qa, feedback=Feedback(store, qa), api_key="s3cret"), raise_server_exceptions=False) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            response = client.post("/feedback", json=service_label(), headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["error"]
            assert client.get("/feedback/export", headers=headers).status_code == 401
        assert store.count() == 0
        key = {"Authorization": "Bearer s3cret"}
        assert client.post("/feedback", json=service_label(), headers=key).status_code == 201
        assert client.get("/feedback", headers=key).json()["total"] == 1
        assert client.post("/answer", json={"question": TORQUE}).status_code == 200  # asking needs no key
        assert client.get("/health").json()["key_required"] is True


@pytest.mark.parametrize("problem", ["read-only", "full"])
def test_an_unwritable_database_gives_503_while_answers_keep_working(client, store, problem):
    assert client.post("/feedback", json=service_label()).status_code == 201
    if problem == "read-only":
        store.connection.execute("PRAGMA query_only = ON")  # what SQLite says for a file it may not write
    else:
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count = {pages}")  # what SQLite says on a full disk
    responses = [client.post("/feedback", json=service_label(question=f"{'long ' * 90}{n}?")) for n in range(30)]
    refused = [r for r in responses if r.status_code != 201]
    assert refused and all(r.status_code == 503 for r in refused), [r.text for r in responses]
    assert "Answers still work" in refused[0].json()["error"]
    assert client.post("/answer", json={"question": TORQUE}).status_code == 200
    assert client.get("/feedback").status_code == 200


def test_fifty_concurrent_labels_over_http_are_fifty_rows(qa, store):
    with running_server(create_app(qa, feedback=Feedback(store, qa))) as url:
        def post(number: int) -> httpx.Response:
            return httpx.post(f"{url}/feedback", json=service_label(question=f"Interval {number}?"), timeout=60)

        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(pool.map(post, range(50)))
    assert [r.status_code for r in responses] == [201] * 50
    assert sorted(r.json()["id"] for r in responses) == list(range(1, 51))
    assert store.count() == 50 and {label.question for label in store.all()} == {f"Interval {n}?" for n in range(50)}
