"""slmqa.serving.label_checks: each rule of a POST /feedback body, as a pure function."""

from __future__ import annotations

import json

import pytest

from slmqa.serving.documents import Document
from slmqa.serving.label_checks import LabelRequest, check_span, parse_label_request
from slmqa.serving.request_checks import Limits, RequestError
from tests.document_helpers import MANUAL

DOCUMENTS = {"manual.txt": Document("manual.txt", MANUAL)}
SPAN = MANUAL.index("25 Nm")


def parsed(**content) -> LabelRequest:
    return parse_label_request(json.dumps(content).encode(), Limits())


def test_the_four_kinds_of_label():
    span = {"question": " Torque? ", "document": "manual.txt", "start": SPAN, "end": SPAN + 5}
    assert parsed(**span) == LabelRequest("Torque?", "answer", "answers", "manual.txt", SPAN, SPAN + 5)
    assert parsed(**span, verdict="right").kind == "confirmed"
    assert parsed(**span, verdict="wrong").kind == "rejected"
    assert parsed(question="Colour?", no_answer=True) == LabelRequest("Colour?", "no_answer")
    assert parsed(**span, source="browse").source == "browse"
    assert parsed(**span, text="25 Nm", no_answer=False).text == "25 Nm"


BAD = {
    "not an object": (["x"], "JSON object"),
    "unknown field": ({"question": "q", "no_answer": True, "path": "/etc/passwd"}, "Unknown field"),
    "missing question": ({"no_answer": True}, "Missing \"question\""),
    "question not a string": ({"question": 3, "no_answer": True}, "must be a string"),
    "question too long": ({"question": "x" * 501, "no_answer": True}, "too long"),
    "no_answer not a bool": ({"question": "q", "no_answer": "yes"}, "true or false"),
    "no_answer with a span": ({"question": "q", "no_answer": True, "document": "manual.txt"}, "takes no 'document'"),
    "missing document": ({"question": "q", "start": 0, "end": 2}, "Missing \"document\""),
    "document not a string": ({"question": "q", "document": 7, "start": 0, "end": 2}, '"document" must be a string'),
    "missing end": ({"question": "q", "document": "manual.txt", "start": 0}, 'Missing "end"'),
    "start a string": ({"question": "q", "document": "manual.txt", "start": "0", "end": 2}, '"start" must be an integer'),
    "start a float": ({"question": "q", "document": "manual.txt", "start": 0.5, "end": 2}, '"start" must be an integer'),
    "end a bool": ({"question": "q", "document": "manual.txt", "start": 0, "end": True}, '"end" must be an integer'),
    "unknown verdict": ({"question": "q", "document": "manual.txt", "start": 0, "end": 2, "verdict": "maybe"}, '"verdict" must be one of'),
    "unknown source": ({"question": "q", "no_answer": True, "source": "api"}, '"source" must be one of'),
    "text not a string": ({"question": "q", "document": "manual.txt", "start": 0, "end": 2, "text": 25}, '"text" must be a string'),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bodies_are_422_with_a_message(case):
    content, message = BAD[case]
    with pytest.raises(RequestError) as err:
        parse_label_request(json.dumps(content).encode(), Limits())
    assert err.value.status == 422 and message in err.value.message


def test_oversized_and_malformed_bodies():
    with pytest.raises(RequestError) as err:
        parse_label_request(b"x" * (Limits().max_body_bytes + 1), Limits())
    assert err.value.status == 413
    with pytest.raises(RequestError) as err:
        parse_label_request(b'{"question": ', Limits())
    assert err.value.status == 400 and "Malformed JSON" in err.value.message


def span_request(start: int, end: int, text: str | None = None, document: str = "manual.txt") -> LabelRequest:
    return LabelRequest("q", "answer", "answers", document, start, end, text)


def test_a_span_is_the_document_text_between_the_offsets():
    assert check_span(span_request(SPAN, SPAN + 5), DOCUMENTS) == "25 Nm"
    assert check_span(span_request(SPAN, SPAN + 5, "25 Nm"), DOCUMENTS) == "25 Nm"


SPAN_PROBLEMS = {
    "unknown document": (span_request(0, 3, document="../secret.txt"), "Unknown document"),
    "negative start": (span_request(-1, 3), "within the document"),
    "end past the text": (span_request(0, len(MANUAL) + 1), "within the document"),
    "empty": (span_request(SPAN, SPAN), "empty"),
    "start past the text": (span_request(len(MANUAL) + 2, len(MANUAL) + 3), "within the document"),
    "reversed": (span_request(SPAN + 5, SPAN), "empty"),
    "too long for this limit": (span_request(0, 20), "too long: 20 characters (at most 10)"),
    "whitespace only": (span_request(SPAN - 1, SPAN), "only whitespace"),
    "leading whitespace": (span_request(SPAN - 1, SPAN + 5), "starts or ends with whitespace"),
    "text does not match": (span_request(SPAN, SPAN + 5, "26 Nm"), "does not match"),
}


@pytest.mark.parametrize("case", sorted(SPAN_PROBLEMS))
def test_spans_that_do_not_fit_the_document_are_422(case):
    request, message = SPAN_PROBLEMS[case]
    with pytest.raises(RequestError) as err:
        check_span(request, DOCUMENTS, max_chars=10)
    assert err.value.status == 422 and message in err.value.message


def test_too_long_needs_a_long_document():
    long_text = {"long.txt": Document("long.txt", "word " * 400)}
    with pytest.raises(RequestError, match="too long: 1004 characters"):
        check_span(span_request(0, 1004, document="long.txt"), long_text)
