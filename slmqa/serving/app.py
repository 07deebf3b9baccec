"""The web app: a page to ask from, POST /answer, GET /health, around one loaded DocumentQA.

Requests are checked before they reach the model (request_checks.py: a bad one gets a 4xx
with a message, never a 500) and are answered by one worker thread in small batches
(batching.py). serve.py is the command that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmqa.serving.batching import Batcher, Busy
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
        except TimeoutError:
            return error(503, f"No answer within {REQUEST_TIMEOUT_S:.0f} s; the server is overloaded.")
        return JSONResponse(reading.to_json())

    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
