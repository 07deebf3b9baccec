"""slmqa: train, evaluate and serve small extractive question-answering models.

The library under the root scripts (run_qa.py, preprocess.py, process.py, postprocess.py,
qa_predict.py, serve.py, mock_dataset.py). Its layers, lowest first, and the rule that
holds them together (docs/architecture.md):

    errors, settings, logs        shared vocabulary, no heavy imports
    data, decoding                records, windows, span decoding, SQuAD metrics (decoding: no torch)
    modeling                      loading models and tokenizers, LoRA, int8, precision checks
    inference                     the backends that turn windows into logits outside the Trainer
    training                      the Trainer's helpers (sampling, checkpoints)
    serving, reporting, mock      the document server, the run report, mock data

A layer imports only layers above it in this list, and nothing here imports a root script.
"""

__version__ = "0.9.0"
