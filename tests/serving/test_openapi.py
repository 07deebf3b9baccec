"""/openapi.json describes the API as it is: the same fields the checks accept, replies that validate against it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from slmqa.serving import label_checks, request_checks, schemas
from slmqa.serving.app import create_app
from slmqa.serving.feedback import Feedback
from slmqa.serving.labels import LabelStore
from tests.document_helpers import MANUAL, document_folder, marked_qa


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_model_dir, tokenizer):
    root = tmp_path_factory.mktemp("openapi")
    qa = marked_qa(document_folder(root), tiny_model_dir, tokenizer)
    with TestClient(create_app(qa, feedback=Feedback(LabelStore(root / "labels.sqlite"), qa))) as test_client:
        yield test_client


def request_fields(spec: dict, path: str) -> set[str]:
    return set(spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"])


def test_the_schema_lists_every_endpoint_with_the_fields_the_checks_accept(client):
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Ask your documents"
    assert {"/answer", "/health", "/documents", "/document", "/feedback", "/feedback/{label_id}", "/feedback/export"} <= set(spec["paths"])
    assert request_fields(spec, "/answer") == set(request_checks.ALLOWED_FIELDS)
    assert request_fields(spec, "/feedback") == set(label_checks.ALLOWED_FIELDS)
    answer_errors = spec["paths"]["/answer"]["post"]["responses"]
    assert {"400", "413", "415", "422", "503"} <= set(answer_errors)
    assert answer_errors["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorReply")
    assert "/" not in spec["paths"]  # the page is not part of the API
    assert client.get("/docs").status_code == 404  # no page that would fetch assets from the internet


def test_real_replies_validate_against_the_schema(client):
    answer = client.post("/answer", json={"question": "What is the torque setting?", "passages": True}).json()
    schemas.AnswerReply.model_validate(answer)
    start = MANUAL.index("25 Nm")
    label = client.post("/feedback", json={"question": "Torque?", "document": "manual.txt", "start": start, "end": start + 5})
    schemas.LabelReply.model_validate(label.json())
    client.post("/feedback", json={"question": "Who painted it?", "no_answer": True})
    schemas.LabelList.model_validate(client.get("/feedback").json())
    schemas.DocumentList.model_validate(client.get("/documents").json())
    schemas.DocumentText.model_validate(client.get("/document", params={"name": "manual.txt"}).json())
    schemas.ErrorReply.model_validate(client.post("/answer", json={}).json())


def test_the_precise_messages_stay(client):
    response = client.post("/answer", json={"top_k": 2})
    assert response.status_code == 422 and response.json() == {"error": 'Missing "question": send {"question": "your question"}.'}
