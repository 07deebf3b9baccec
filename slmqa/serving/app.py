"""The web app around one loaded DocumentQA: a page to ask and label from, and its JSON API.

    GET  /                  the page
    POST /answer            answers (request_checks.py says what a request may hold)
    GET  /health            what is loaded, counts
    GET  /documents         document names (paged, filterable); GET /document?name=... one text
    POST /feedback          store a label (label_checks.py); GET /feedback (paged), DELETE /feedback/{id}
    GET  /feedback/export   the labels as SQuAD v2 (label_export.py)

Requests are checked before they reach the model or the database (a bad one gets a 4xx
with a message, never a 500); questions are answered by one worker thread in small
batches (batching.py). With an API key every /feedback endpoint wants `Authorization:
Bearer <key>`. serve.py is the command that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmqa.serving import schemas
from slmqa.serving.batching import Batcher, Busy
from slmqa.serving.feedback import Feedback
from slmqa.serving.label_checks import parse_label_request
from slmqa.serving.label_export import DEFAULT_NEGATIVE_PASSAGES
from slmqa.serving.labels import LabelStoreUnavailable
from slmqa.serving.request_checks import Limits, RequestError, parse_request

logger = logging.getLogger(__name__)

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


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; 422 naming it otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.lstrip("-").isdigit() or not low <= int(value) <= high:
        raise RequestError(422, f"Query parameter {name!r} must be an integer from {low} to {high}, got {value!r}.")
    return int(value)


def create_app(
    qa,
    limits: Limits = Limits(),
    max_batch: int = 8,
    max_pending: int = 64,
    feedback: Feedback | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The web app around one loaded DocumentQA (or anything with ask/fits/describe/documents).

    `feedback`: where labels go (None: the /feedback endpoints answer 404). `api_key`: when
    set, every /feedback endpoint requires it as a Bearer token.
    """
    batcher = Batcher(qa.ask, max_batch=max_batch, max_pending=max_pending)
    page = PAGE.read_text(encoding="utf-8")

    def labelling(request: Request) -> Feedback:
        """The feedback store, after checking the caller may use it."""
        if feedback is None:
            raise RequestError(404, "Labelling is off on this server (it was started with --no_feedback).")
        if api_key is not None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                raise RequestError(401, "This server needs its API key for labels: send 'Authorization: Bearer <key>'.")
        return feedback

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    # /openapi.json describes the API; no docs page (it would load assets from the internet).
    app = FastAPI(title="Ask your documents", description="Extractive answers from a folder of documents, and labels for "
                  "the next model (docs/serving.md, docs/labelling.md).", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, err: RequestError) -> JSONResponse:
        response = error(err.status, err.message)
        if err.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(LabelStoreUnavailable)
    async def store_unavailable(request: Request, err: LabelStoreUnavailable) -> JSONResponse:
        logger.error("%s", err)
        return error(503, f"{err} Answers still work; labels cannot be stored until this is fixed.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/health", summary="What is loaded; counters")
    async def health() -> dict:
        labels = None if feedback is None else await run_in_threadpool(feedback.store.count)
        return {"status": "ok", "pid": os.getpid(), **qa.describe(), "served": batcher.stats.to_json(),
                "labelling": feedback is not None, "labels": labels, "key_required": api_key is not None}

    @app.get("/documents", summary="Document names (filter with ?contains=, page with ?offset=&limit=)",
             responses={200: {"model": schemas.DocumentList}, **schemas.errors(422)})
    async def documents(request: Request) -> dict:
        contains = request.query_params.get("contains", "").lower()
        names = [name for name in qa.documents if contains in name.lower()]
        offset = query_int(request, "offset", 0, 0, 10**9)
        limit = query_int(request, "limit", 100, 1, 1000)
        return {"total": len(names), "offset": offset,
                "documents": [{"name": name, "characters": len(qa.documents[name].text)} for name in names[offset : offset + limit]]}

    @app.get("/document", summary="One document's text (?name=)", responses={200: {"model": schemas.DocumentText}, **schemas.errors(404, 422)})
    async def document(request: Request) -> dict:
        name = request.query_params.get("name")
        if name is None:
            raise RequestError(422, "Missing query parameter 'name' (a name from /documents).")
        if name not in qa.documents:
            raise RequestError(404, f"Unknown document {name!r}: /documents lists the names.")
        return {"name": name, "text": qa.documents[name].text}

    @app.post("/feedback", status_code=201, summary="Store a label", openapi_extra=schemas.body(schemas.LabelRequest),
              responses={201: {"model": schemas.LabelReply}, **schemas.errors(400, 401, 404, 413, 415, 422, 503)})
    async def add_label(request: Request) -> JSONResponse:
        store = labelling(request)
        check_content_type(request)
        asked = parse_label_request(await read_body(request, limits.max_body_bytes), limits)
        label = await run_in_threadpool(store.add, asked)
        return JSONResponse({"id": label.id, "kind": label.kind, "text": label.answer,
                             "labels": await run_in_threadpool(store.store.count)}, status_code=201)

    @app.get("/feedback", summary="Labels, newest first (?offset=&limit=)",
             responses={200: {"model": schemas.LabelList}, **schemas.errors(401, 404, 422)})
    async def list_labels(request: Request) -> dict:
        store = labelling(request)
        offset = query_int(request, "offset", 0, 0, 10**9)
        limit = query_int(request, "limit", 50, 1, 500)
        labels = await run_in_threadpool(store.store.page, offset, limit)
        return {"total": await run_in_threadpool(store.store.count), "offset": offset,
                "by_kind": await run_in_threadpool(store.store.counts_by_kind),
                "labels": [label.to_json() for label in labels]}

    @app.delete("/feedback/{label_id}", status_code=204, summary="Delete a label", responses=schemas.errors(401, 404, 422))
    async def delete_label(label_id: str, request: Request) -> Response:
        store = labelling(request)
        if not label_id.isdigit():
            raise RequestError(422, f"A label id is a positive integer, got {label_id!r}.")
        if not await run_in_threadpool(store.store.delete, int(label_id)):
            raise RequestError(404, f"No label with id {label_id}.")
        return Response(status_code=204)

    @app.get("/feedback/export", summary="The labels as a SQuAD v2 file (?negative_passages=)",
             responses={200: {"description": "Nested SQuAD v2 JSON with an slmqa_export report"}, **schemas.errors(401, 404, 422)})
    async def export_labels(request: Request) -> Response:
        store = labelling(request)
        negatives = query_int(request, "negative_passages", DEFAULT_NEGATIVE_PASSAGES, 0, 50)
        squad, report = await run_in_threadpool(store.export, negatives)
        squad["slmqa_export"] = report.to_json()
        return Response(json.dumps(squad, ensure_ascii=False, indent=1), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="labels-squad-v2.json"'})

    @app.post("/answer", summary="Answer a question from the documents", openapi_extra=schemas.body(schemas.AskRequest),
              responses={200: {"model": schemas.AnswerReply}, **schemas.errors(400, 413, 415, 422, 503)})
    async def answer(request: Request) -> JSONResponse:
        check_content_type(request)
        asked = parse_request(await read_body(request, limits.max_body_bytes), limits)
        if not qa.fits(asked.text):
            raise RequestError(422, '"question" has too many tokens to leave room for any document text.')
        try:
            reading = await asyncio.wait_for(asyncio.wrap_future(batcher.submit(asked.text, asked.top_k)), REQUEST_TIMEOUT_S)
        except Busy as err:
            return JSONResponse({"error": f"Server busy: {err}. Retry shortly."}, status_code=503, headers={"Retry-After": "1"})
        except TimeoutError:
            return error(503, f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded.")
        return JSONResponse(reading.to_json(with_passages=asked.with_passages))

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
