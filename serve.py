#!/usr/bin/env python
"""Answer questions about a folder of documents over HTTP, with a page to ask them from.

    python serve.py --model models/minilm-qa-demo --documents my/docs [--backend onnx --dtype int8]

GET /        the page: a question box; answers shown highlighted in their passage
POST /answer {"question": str, "top_k": int (optional)} -> {"answers": [...], "no_answer": bool}
GET /health  what is loaded, and how many questions were answered in how many batches

The model and the index are loaded once at start. It listens on loopback unless told
otherwise: there is no authentication, so expose it only behind something that has.
"""

from __future__ import annotations

import argparse
import logging
import sys

from slmqa.errors import ConfigError
from slmqa.inference.runtime import add_runtime_arguments, runtime_from_args
from slmqa.logs import get_logger, setup_logging
from slmqa.serving.app import create_app, is_loopback
from slmqa.serving.docqa import DEFAULT_PASSAGES, DocumentQA, Options
from slmqa.serving.documents import DocumentError

logger = get_logger("serve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Trained model directory (as run_qa.py wrote it).")
    p.add_argument("--documents", required=True, help="Folder of .txt/.md/.html/.json/.pdf documents to answer from.")
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: loopback only).")
    p.add_argument("--port", type=int, default=8000, help="Port to listen on.")
    p.add_argument("--passages", type=int, default=DEFAULT_PASSAGES, help="Passages read per question.")
    p.add_argument("--max_batch", type=int, default=8, help="Most questions answered in one model call.")
    p.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    add_runtime_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    setup_logging(getattr(logging, args.log_level.upper()))
    if not is_loopback(args.host):
        logger.warning("Listening on %s: anyone who can reach it can ask questions (there is no authentication).", args.host)
    try:
        runtime = runtime_from_args(args)
        qa = DocumentQA(args.model, args.documents, runtime=runtime, options=Options(passages=args.passages))
    except (ConfigError, DocumentError, ValueError) as err:
        logger.error("%s", err)
        return 2
    app = create_app(qa, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, limit_concurrency=256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
