#!/usr/bin/env python
"""Answer questions about a folder of documents over HTTP, with a page to ask them from.

    python serve.py --model models/minilm-qa-demo --documents my/docs [--host 127.0.0.1] [--port 8000]

GET /        the page: a question box; answers shown highlighted in their passage
POST /answer {"question": str, "top_k": int (optional)} -> {"answers": [...], "no_answer": bool}
GET /health  what is loaded, and how many questions were answered in how many batches

The model and the index are loaded once at start. Requests are checked before they reach
the model (requests_check.py: a bad one gets a 4xx with a message, never a 500) and are
answered by one worker thread in small batches (batching.py). It listens on loopback
unless told otherwise: there is no authentication, so expose it only behind something that has.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from batching import Batcher, Busy
from requests_check import Limits, RequestError, parse_request

logger = logging.getLogger("serve")

PAGE = Path(__file__).resolve().parent / "web" / "index.html"
# The page's script and style are inline and it talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
REQUEST_TIMEOUT_S = 60.0


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it (or its declared length) passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "Invalid Content-Length header.")
        if int(declared) > limit:
            raise RequestError(413, f"The request body is too large: {declared} bytes (at most {limit}).")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"The request body is too large: more than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(request: Request) -> None:
    """JSON or no declared type; a form or plain text post is a client mistake worth naming."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise RequestError(415, f"Send the question as application/json, not {kind}.")


def create_app(qa, limits: Limits = Limits(), max_batch: int = 8, max_pending: int = 64) -> FastAPI:
    """The web app around one loaded DocumentQA (or anything with ask/fits/describe)."""
    batcher = Batcher(qa.ask, max_batch=max_batch, max_pending=max_pending)
    page = PAGE.read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="Ask your documents", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, err: RequestError) -> JSONResponse:
        return error(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", **qa.describe(), "served": batcher.stats.to_json()}

    @app.post("/answer")
    async def answer(request: Request) -> JSONResponse:
        check_content_type(request)
        asked = parse_request(await read_body(request, limits.max_body_bytes), limits)
        if not qa.fits(asked.text):
            raise RequestError(422, '"question" has too many tokens to leave room for any document text.')
        try:
            reading = await asyncio.wait_for(asyncio.wrap_future(batcher.submit(asked.text, asked.top_k)), REQUEST_TIMEOUT_S)
        except Busy as err:
            return JSONResponse({"error": f"Server busy: {err}. Retry shortly."}, status_code=503, headers={"Retry-After": "1"})
        except asyncio.TimeoutError:
            return error(503, f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded.")
        return JSONResponse(reading.to_json())

    return app


def build_parser() -> argparse.ArgumentParser:
    from backends import BACKENDS, DEFAULT_BACKEND
    from docqa import DEFAULT_PASSAGES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Trained model directory (as run_qa.py wrote it).")
    p.add_argument("--documents", required=True, help="Folder of .txt/.md/.html/.json/.pdf documents to answer from.")
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: loopback only).")
    p.add_argument("--port", type=int, default=8000, help="Port to listen on.")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="What runs the model (see README).")
    p.add_argument("--passages", type=int, default=DEFAULT_PASSAGES, help="Passages read per question.")
    p.add_argument("--max_batch", type=int, default=8, help="Most questions answered in one model call.")
    p.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from args import ConfigError
    from docqa import DocumentQA, Options
    from documents import DocumentError

    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=args.log_level.upper())
    if not is_loopback(args.host):
        logger.warning("Listening on %s: anyone who can reach it can ask questions (there is no authentication).", args.host)
    try:
        qa = DocumentQA(args.model, args.documents, backend=args.backend, options=Options(passages=args.passages))
    except (ConfigError, DocumentError, ValueError) as err:
        logger.error("%s", err)
        return 2
    app = create_app(qa, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, limit_concurrency=256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
