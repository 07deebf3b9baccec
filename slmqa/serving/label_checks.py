"""Check a POST /feedback body before anything is stored: every problem is a 4xx with a clear message.

A label says "the answer to `question` is `document_text[start:end]`" (optionally: the model's
answer there was right, or wrong), or "`question` is not answered in these documents". A
request names a document only by the name /answer gave it, never by a path; its offsets
must lie in that document's text, and an optional `text` must match what they cut out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slmqa.serving.request_checks import Limits, RequestError, check_question, parse_object, type_name

ALLOWED_FIELDS = ("question", "document", "start", "end", "text", "verdict", "no_answer", "source")
SPAN_FIELDS = ("document", "start", "end", "text", "verdict")
VERDICTS = {"right": "confirmed", "wrong": "rejected"}
SOURCES = ("answers", "browse")
MAX_ANSWER_CHARS = 1000


@dataclass(frozen=True)
class LabelRequest:
    """A checked label request; `kind` is what will be stored (answer, confirmed, rejected, no_answer)."""

    question: str
    kind: str
    source: str = "answers"
    document: str | None = None
    start: int | None = None
    end: int | None = None
    text: str | None = None


def _offset(content: dict, name: str) -> int:
    value = content.get(name)
    if value is None:
        raise RequestError(422, f'Missing "{name}": a label needs "document", "start" and "end" (or "no_answer": true).')
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, f'"{name}" must be an integer character offset, got {type_name(value)}.')
    return value


def _optional_string(content: dict, name: str, choices: tuple[str, ...] | None = None) -> str | None:
    value = content.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(422, f'"{name}" must be a string, got {type_name(value)}.')
    if choices is not None and value not in choices:
        raise RequestError(422, f'"{name}" must be one of {", ".join(map(repr, choices))}, got {value!r}.')
    return value


def parse_label_request(body: bytes, limits: Limits) -> LabelRequest:
    """The checked fields of a POST /feedback body (document-independent rules only)."""
    content = parse_object(body, limits, ALLOWED_FIELDS, '{"question": "...", "document": "...", "start": 0, "end": 5}')
    question = check_question(content.get("question"), limits)
    source = _optional_string(content, "source", SOURCES) or "answers"
    no_answer = content.get("no_answer", False)
    if not isinstance(no_answer, bool):
        raise RequestError(422, f'"no_answer" must be true or false, got {type_name(no_answer)}.')
    if no_answer:
        given = [name for name in SPAN_FIELDS if name in content]
        if given:
            raise RequestError(422, f'"no_answer": true takes no {", ".join(map(repr, given))}: it says the documents hold no answer.')
        return LabelRequest(question, "no_answer", source)
    document = _optional_string(content, "document")
    if not document:
        raise RequestError(422, 'Missing "document": a label needs "document", "start" and "end" (or "no_answer": true).')
    verdict = _optional_string(content, "verdict", tuple(VERDICTS))
    return LabelRequest(
        question, VERDICTS[verdict] if verdict else "answer", source, document,
        _offset(content, "start"), _offset(content, "end"), _optional_string(content, "text"),
    )


def check_span(request: LabelRequest, documents: Mapping[str, object], max_chars: int = MAX_ANSWER_CHARS) -> str:
    """The answer text `document_text[start:end]`, after checking the document and the offsets.

    `documents` maps a document name to an object with a `text` (the served folder's documents).
    """
    document = documents.get(request.document)
    if document is None:
        raise RequestError(422, f"Unknown document {request.document!r}: use a document name as /answer or /documents gives it.")
    text, start, end = document.text, request.start, request.end
    if not 0 <= start <= len(text) or not 0 <= end <= len(text):
        raise RequestError(422, f'"start" {start} and "end" {end} must lie within the document ({len(text)} characters).')
    if end <= start:
        raise RequestError(422, f'The span is empty: "end" ({end}) must be greater than "start" ({start}).')
    if end - start > max_chars:
        raise RequestError(422, f"The span is too long: {end - start} characters (at most {max_chars}).")
    answer = text[start:end]
    if not answer.strip():
        raise RequestError(422, "The span holds only whitespace.")
    if answer != answer.strip():
        raise RequestError(422, f"The span starts or ends with whitespace ({answer!r}): move start/end onto the words.")
    if request.text is not None and request.text != answer:
        raise RequestError(422, f'"text" {request.text!r} does not match the document at {start}-{end}, which reads {answer!r}.')
    return answer
