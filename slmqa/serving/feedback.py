"""The labelling loop's server side: checked label requests become stored labels; stored labels become SQuAD.

Sits between the web app and the label database: it knows the served documents (to check a
span and fingerprint its document), the retriever (to pair "not in these documents" with
the passages the model read) and the model (whose answers were being judged).
"""

from __future__ import annotations

from collections.abc import Mapping

from slmqa.serving.documents import Document
from slmqa.serving.label_checks import LabelRequest, check_span
from slmqa.serving.label_export import DEFAULT_NEGATIVE_PASSAGES, ExportReport, export_squad
from slmqa.serving.labels import Label, LabelStore, PassageRef, text_sha256
from slmqa.serving.request_checks import RequestError


class Feedback:
    """Labels about one served collection (`qa`: a DocumentQA, or anything with its documents/retrieve/fits)."""

    def __init__(self, store: LabelStore, qa):
        self.store, self.qa = store, qa

    def sha256(self, name: str) -> str:
        """The fingerprint of a served document's text now (the folder may have been re-read since start)."""
        return text_sha256(self.qa.documents[name].text)

    def label_of(self, request: LabelRequest) -> Label:
        """The label a checked request stores (RequestError when it does not fit the served documents)."""
        if not self.qa.fits(request.question):
            raise RequestError(422, '"question" has too many tokens to leave room for any document text.')
        model = self.qa.model_id if request.source == "answers" else None
        if request.kind == "no_answer":
            passages = tuple(
                PassageRef(hit.passage.document, self.sha256(hit.passage.document), hit.passage.start, hit.passage.end)
                for hit in self.qa.retrieve(request.question)
            )
            return Label(request.question, "no_answer", passages=passages, model=model, source=request.source)
        answer = check_span(request, self.qa.documents)
        return Label(
            request.question, request.kind, document=request.document, document_sha256=self.sha256(request.document),
            start=request.start, end=request.end, answer=answer, model=model, source=request.source,
        )

    def add(self, request: LabelRequest) -> Label:
        """Check and store one label; returned with its id once committed."""
        label = self.label_of(request)
        return Label(**{**label.__dict__, "id": self.store.add(label)})

    def export(self, negative_passages: int = DEFAULT_NEGATIVE_PASSAGES) -> tuple[dict, ExportReport]:
        """Every stored label as nested SQuAD v2 against the documents as they are now."""
        return export_labels(self.store, self.qa.documents, self.qa.options, negative_passages)


def export_labels(store: LabelStore, documents: Mapping[str, Document], options,
                  negative_passages: int = DEFAULT_NEGATIVE_PASSAGES) -> tuple[dict, ExportReport]:
    """The store's labels as SQuAD v2, contexts cut as `options` (passage_words, passage_overlap) cut passages."""
    return export_squad(store.all(), documents, options.passage_words, options.passage_overlap, negative_passages)
