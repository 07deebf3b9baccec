"""slmqa.serving.app: answers over HTTP, every kind of bad input (a 4xx with a message, never a 500), concurrency."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from slmqa.serving.app import create_app, is_loopback
from slmqa.serving.request_checks import Limits
from tests.document_helpers import MANUAL, MarkedTokenBackend, document_folder, marked_qa
from tools.live_server import running_server

QUESTION = "What is the torque setting of the CM-7 compressor?"


class SlowBackend(MarkedTokenBackend):
    """The marked-token backend taking 50 ms per batch, so that concurrent questions queue up and get batched."""

    def logits(self, batch):
        time.sleep(0.05)
        return super().logits(batch)


@pytest.fixture(scope="module")
def qa(tmp_path_factory, tiny_model_dir, tokenizer):
    """A DocumentQA over the test folder whose model always points at the token '25' (deterministic answers)."""
    return marked_qa(document_folder(tmp_path_factory.mktemp("serve")), tiny_model_dir, tokenizer, backend_class=SlowBackend)


@pytest.fixture(scope="module")
def client(qa):
    with TestClient(create_app(qa), raise_server_exceptions=False) as test_client:
        yield test_client


def test_answer_with_document_offsets_and_passage(client):
    response = client.post("/answer", json={"question": QUESTION})
    assert response.status_code == 200
    body = response.json()
    assert body["no_answer"] is False and 1 <= len(body["answers"]) <= Limits().default_top_k
    best = body["answers"][0]
    assert best["text"] == "25" and best["document"] == "manual.txt"
    assert MANUAL[best["start"] : best["end"]] == "25"
    assert best["passage"][best["answer_start"] : best["answer_end"]] == "25"
    assert set(best) >= {"text", "score", "probability", "document", "start", "end", "passage", "retrieval_score"}


def test_top_k_bounds_the_answers(client):
    assert len(client.post("/answer", json={"question": QUESTION, "top_k": 1}).json()["answers"]) == 1
    # The spans around the marked "25" all overlap it and fold into one answer (tests/serving/test_reader.py
    # counts top_k after folding on hand-made candidates).
    answers = client.post("/answer", json={"question": QUESTION, "top_k": 10}).json()["answers"]
    assert 1 <= len(answers) <= 10 and answers[0]["text"] == "25"


def test_question_matching_no_document_has_no_answer(client):
    body = client.post("/answer", json={"question": "zebra xylophone quux?"}).json()
    assert body == {"question": "zebra xylophone quux?", "answers": [], "no_answer": True, "passages_read": 0}


HUGE = "x" * (Limits().max_body_bytes + 1)
BAD_BODIES = {
    "malformed json": (b'{"question": "torque?"', 400, "Malformed JSON"),
    "trailing garbage": (b'{"question": "torque?"} x', 400, "Malformed JSON"),
    "empty body": (b"", 400, "empty"),
    "not utf-8": (b'{"question": "\xff\xfe"}', 400, "UTF-8"),
    "deeply nested": (b"[" * 5000 + b"]" * 5000, 400, "Malformed JSON"),
    "array": (b'["torque?"]', 422, "JSON object"),
    "string": (b'"torque?"', 422, "JSON object"),
    "missing question": (b'{"top_k": 2}', 422, "Missing"),
    "null question": (b'{"question": null}', 422, "Missing"),
    "empty question": (b'{"question": ""}', 422, "empty"),
    "blank question": (b'{"question": "  \\n\\t "}', 422, "empty"),
    "number question": (b'{"question": 42}', 422, "must be a string"),
    "object question": (b'{"question": {"text": "x"}}', 422, "must be a string"),
    "long question": (json.dumps({"question": "torque " * 80}).encode(), 422, "too long"),
    "too many tokens": (json.dumps({"question": "\u4e00\u4e8c\u4e09" * 160}).encode(), 422, "too many tokens"),
    "top_k string": (b'{"question": "torque?", "top_k": "3"}', 422, "integer"),
    "top_k float": (b'{"question": "torque?", "top_k": 2.5}', 422, "integer"),
    "top_k bool": (b'{"question": "torque?", "top_k": true}', 422, "integer"),
    "top_k zero": (b'{"question": "torque?", "top_k": 0}', 422, "between 1 and"),
    "top_k negative": (b'{"question": "torque?", "top_k": -3}', 422, "between 1 and"),
    "top_k too big": (b'{"question": "torque?", "top_k": 11}', 422, "between 1 and"),
    "top_k huge": (b'{"question": "torque?", "top_k": 1e400}', 422, "integer"),
    "names a file": (b'{"question": "torque?", "path": "/etc/passwd"}', 422, "Unknown field"),
    "oversized body": (json.dumps({"question": HUGE}).encode(), 413, "too large"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_is_a_4xx_with_a_message(client, case):
    body, status, message = BAD_BODIES[case]
    response = client.post("/answer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_wrong_content_type_method_and_path(client):
    response = client.post("/answer", content=b"question=torque", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert client.get("/answer").status_code == 405
    assert client.get("/etc/passwd").status_code == 404
    assert client.get("/static/../../etc/passwd").status_code == 404


def test_declared_oversized_length_is_refused_before_reading(client):
    response = client.post("/answer", content=b"{}", headers={"Content-Type": "application/json", "Content-Length": "99999999"})
    assert response.status_code in (400, 413)


def test_health_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["documents"] == 6 and health["backend"] == "marked"
    assert "/" not in json.dumps(health["settings_source"])
    page = client.get("/")
    assert page.status_code == 200 and 'id="question"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_concurrent_requests_on_loopback_are_batched_and_all_answered(qa):
    """24 questions from 8 parallel clients: every one answered as it is alone; the worker batched some."""
    questions = [QUESTION, "How often is the compressor serviced?", "Who answers remote work requests?"] * 8
    app = create_app(qa, max_batch=8)
    with running_server(app) as url:
        with httpx.Client(base_url=url, timeout=30) as one:
            alone = {q: one.post("/answer", json={"question": q, "top_k": 2}).json() for q in set(questions)}

        def ask(question: str) -> tuple[str, int, dict]:
            with httpx.Client(base_url=url, timeout=30) as each:
                response = each.post("/answer", json={"question": question, "top_k": 2})
                return question, response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(ask, questions))
        served = httpx.get(f"{url}/health", timeout=10).json()["served"]
    assert [status for _, status, _ in results] == [200] * len(questions)
    for question, _, body in results:
        assert body == alone[question]
    assert served["questions"] == len(questions) + len(alone)
    assert served["largest_batch"] > 1 and served["batches"] < served["questions"]


def test_loopback_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
