"""Helpers shared by the document-QA tests: a small document folder, a hand-made PDF, a fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MANUAL = (
    "The CM-7 compressor is installed in hall 3. Its torque setting is 25 Nm under normal load. "
    "The compressor must be serviced every 400 operating hours by a certified technician."
)
POLICY = "Employees may work from home two days a week. Requests go to the team lead, who answers within five days."


def minimal_pdf(*pages: str) -> bytes:
    """A PDF whose pages show the given texts (Helvetica), with a correct cross-reference table."""
    count = len(pages)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count)), count),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for number, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * number))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def document_folder(root: Path) -> Path:
    """One document of each supported kind, plus files that must be skipped."""
    folder = root / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "manual.txt").write_text(MANUAL, encoding="utf-8")
    (folder / "sub" / "policy.md").write_text("# Remote work\n\n" + POLICY, encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><title>x</title><style>p {color: red}</style></head><body><h1>Pumps</h1>"
        "<p>The P-9 pump delivers 12&nbsp;bar.</p><script>var secret = 1;</script></body></html>",
        encoding="utf-8",
    )
    squad = {"data": [{"title": "Fans", "paragraphs": [
        {"context": "The F-2 fan turns at 900 rpm.", "qas": [{"id": "a", "question": "How fast?", "answers": []}]},
        {"context": "The F-3 fan is grey.", "qas": []},
    ]}]}
    (folder / "fans.json").write_text(json.dumps(squad), encoding="utf-8")
    (folder / "valve.pdf").write_bytes(minimal_pdf("The V-4 valve opens at 6 bar."))
    (folder / "image.png").write_bytes(b"\x89PNG not a document")
    (folder / ".hidden.txt").write_text("never indexed", encoding="utf-8")
    (folder / "empty.txt").write_text("   \n", encoding="utf-8")
    return folder


class MarkedTokenBackend:
    """Logits that point at one token: start and end logit 10 where input_ids == marked, 0 elsewhere.

    Makes the whole reading path deterministic without a trained model: the answer to any
    question is the marked word, wherever it is retrieved.
    """

    name = "marked"

    def __init__(self, marked_id: int, cls_logit: float = 0.0):
        self.marked_id, self.cls_logit = marked_id, cls_logit
        self.batches: list[tuple[int, int]] = []

    def logits(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        ids = batch["input_ids"]
        self.batches.append(ids.shape)
        scores = np.where(ids == self.marked_id, 10.0, 0.0).astype(np.float32)
        scores[:, 0] = self.cls_logit
        return scores, scores.copy()


def marked_qa(folder: Path, model_dir: Path, tokenizer, marked: str = "25", backend_class=None):
    """A DocumentQA over `folder` (3 passages of 30 words read) whose model always answers the token `marked`."""
    from slmqa.serving.docqa import DocumentQA, Options

    qa = DocumentQA(model_dir, folder, options=Options(passages=3, passage_words=30, passage_overlap=5, retriever="bm25"))
    qa.reader.backend = (backend_class or MarkedTokenBackend)(tokenizer.convert_tokens_to_ids(marked))
    return qa
