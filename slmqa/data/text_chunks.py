"""Domain text as masked-language-model training examples: each document cut into windows of whole tokens.

Windows never cross documents, so no example joins the end of one paper to the start of
another; a short tail is kept only when it is the document's only window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A document's last window shorter than this fraction of a window is dropped (too little context to learn from).
MIN_TAIL_FRACTION = 0.125


@dataclass
class ChunkReport:
    documents: int = 0
    empty_documents: int = 0
    tokens: int = 0
    chunks: int = 0
    dropped_tail_tokens: int = 0
    held_out_chunks: int = 0
    sources: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def chunk_texts(texts: list[str], tokenizer, max_seq_length: int, report: ChunkReport | None = None) -> list[list[int]]:
    """Token ids of every window: [CLS] up to max_seq_length - 2 document tokens [SEP]."""
    report = report if report is not None else ChunkReport()
    first, last = tokenizer.cls_token_id, tokenizer.sep_token_id  # BERT-family windows: [CLS] text [SEP]
    if first is None or last is None:
        raise ValueError("The tokenizer has no [CLS]/[SEP] tokens: a BERT-family tokenizer is needed.")
    body = max_seq_length - 2
    if body < 1:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for text.")
    chunks = []
    for text in texts:
        report.documents += 1
        # verbose=False: a whole paper is longer than the model's limit, and is cut here, not truncated.
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if not ids:
            report.empty_documents += 1
            continue
        report.tokens += len(ids)
        pieces = [ids[start : start + body] for start in range(0, len(ids), body)]
        if len(pieces) > 1 and len(pieces[-1]) < MIN_TAIL_FRACTION * body:
            report.dropped_tail_tokens += len(pieces.pop())
        chunks += [[first, *piece, last] for piece in pieces]
    report.chunks = len(chunks)
    return chunks


def hold_out(chunks: list[list[int]], fraction: float, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """A seeded random `fraction` of the windows set aside to measure the model on (its perplexity)."""
    import random

    count = int(len(chunks) * fraction)
    if count == 0:
        return chunks, []
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [c for i, c in enumerate(chunks) if i not in held], [c for i, c in enumerate(chunks) if i in held]
