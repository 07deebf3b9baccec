"""The JSON shapes of the HTTP API, for /openapi.json.

The endpoints check their bodies themselves (request_checks.py, label_checks.py), because
each mistake deserves its own message rather than a generic validation dump; these models
only describe the API to clients and code generators. tests/serving/test_openapi.py keeps
them in step with the checks (same fields) and with the replies (a real reply validates).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskRequest(Strict):
    question: str = Field(min_length=1, max_length=500, description="The question; it must leave room for document text in a window.")
    top_k: int = Field(3, ge=1, le=10, description="How many answers to return.")
    passages: bool = Field(False, description="Also return every passage read (the page labels on them).")


class AnswerItem(Strict):
    text: str
    score: float = Field(description="Start + end logit of the span.")
    probability: float = Field(description="How likely this answer is right (calibrated when the model has a calibration).")
    softmax_probability: float = Field(description="Softmax of the span score over the question's answers (and 'no answer').")
    document: str = Field(description="Document name, as /documents lists it.")
    start: int = Field(description="Character offset in the document: text == document_text[start:end].")
    end: int
    passage: str = Field(description="The passage the answer was read in.")
    passage_start: int = Field(description="Where the passage starts in the document.")
    answer_start: int = Field(description="Offsets of the answer within the passage.")
    answer_end: int
    retrieval_score: float
    page: int | None = Field(None, description="1-based page of a PDF document; null for other formats.")


class PassageItem(Strict):
    document: str
    start: int
    end: int
    text: str
    retrieval_score: float


class AnswerReply(BaseModel):
    question: str
    answers: list[AnswerItem]
    no_answer: bool = Field(description="True when the model abstained or no passage matched.")
    passages_read: int
    passages: list[PassageItem] | None = Field(None, description='Only with "passages": true.')


class ErrorReply(Strict):
    error: str = Field(description="What was wrong and how to fix it.")


class LabelRequest(Strict):
    question: str = Field(min_length=1, max_length=500)
    document: str | None = Field(None, description="Document name as /answer or /documents gives it (never a path).")
    start: int | None = Field(None, ge=0, description="Character offsets in the document: the answer is document_text[start:end].")
    end: int | None = Field(None, ge=1)
    text: str | None = Field(None, description="If given, must equal document_text[start:end].")
    verdict: Literal["right", "wrong"] | None = Field(None, description="The model's answer at start:end was right or wrong.")
    no_answer: bool = Field(False, description="The documents hold no answer (no document/start/end then).")
    source: Literal["answers", "browse"] = "answers"


class LabelReply(Strict):
    id: int
    kind: Literal["answer", "confirmed", "rejected", "no_answer"]
    text: str | None
    labels: int = Field(description="How many labels are stored now.")


class PassageRefItem(Strict):
    document: str
    document_sha256: str
    start: int
    end: int


class LabelItem(Strict):
    id: int
    question: str
    kind: Literal["answer", "confirmed", "rejected", "no_answer"]
    document: str | None
    document_sha256: str | None
    start: int | None
    end: int | None
    answer: str | None
    passages: list[PassageRefItem]
    model: str | None
    source: str
    created: str


class LabelList(Strict):
    total: int
    offset: int
    by_kind: dict[str, int]
    labels: list[LabelItem]


class DocumentItem(Strict):
    name: str
    characters: int


class DocumentList(Strict):
    total: int
    offset: int
    documents: list[DocumentItem]


class DocumentText(Strict):
    name: str
    text: str


def body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for an endpoint that reads this model as its JSON body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


def errors(*statuses: int) -> dict:
    """`responses` entries: these statuses answer with an ErrorReply."""
    return {status: {"model": ErrorReply} for status in statuses}
