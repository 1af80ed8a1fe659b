"""The station page's web side: Starlette routes and one server-sent event stream per open page.

``GET /`` and ``/static/*`` serve the page from the package (no CDN);
``GET /api/stream`` pushes ``state`` (station, locks, run, units, yield),
``session`` (the station's newest session: start over) and ``events`` (a batch
of that session's events, replayed then live); ``POST /api/start``, ``/api/stop``
and ``/api/answer`` take small JSON bodies from the page's own origin only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pytest_litmus.errors import RunInProgress, SerialRefused
from pytest_litmus.follow import Follower
from pytest_litmus.page.hub import SHOWN, PageHub

__all__ = ["MAX_BODY", "create_app"]

#: The largest request body taken (bytes).
MAX_BODY = 4096
#: Events per ``events`` message (a long replay goes in several).
BATCH = 2000
#: How often an open page's stream looks for new events: fast after one came, at most this slow.
POLL_FIRST, POLL_CAP = 0.01, 0.05
#: How often the shared state (sessions, locks, run) is re-read.
REFRESH = 0.25
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _sse(kind: str, data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {kind}\ndata: {text}\n\n".encode()


class _BodyTooLarge(Exception):
    pass


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read up to :data:`MAX_BODY` bytes (ValueError: not one; _BodyTooLarge)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise _BodyTooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _BodyTooLarge
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _refused(request: Request) -> Response | None:
    """Why a POST is refused before reading it: from another origin, or not JSON (a form from another site)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin.split("://", 1)[-1] != host:
        return JSONResponse({"error": "requests from another origin are refused"}, status_code=403, headers=HEADERS)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "expected application/json"}, status_code=415, headers=HEADERS)
    return None


def create_app(hub: PageHub) -> Starlette:
    """The page's ASGI application over ``hub``."""
    pages = {path: (resources.files(__package__).joinpath("static", name).read_bytes(), kind)
             for path, (name, kind) in STATIC.items()}  # fmt: skip

    async def static(request: Request) -> Response:
        body, kind = pages[request.url.path]
        return Response(body, media_type=kind, headers=HEADERS)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _events(hub), media_type="text/event-stream", headers={**HEADERS, "X-Accel-Buffering": "no"}
        )

    async def action(request: Request) -> Response:
        refused = _refused(request)
        if refused is not None:
            return refused
        try:
            body = await _json_body(request)
        except _BodyTooLarge:
            return JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, status_code=413, headers=HEADERS)
        except ValueError:
            return JSONResponse({"error": "expected a JSON object"}, status_code=400, headers=HEADERS)
        name = request.path_params["name"]
        try:
            if name == "start":
                result: Any = await asyncio.to_thread(hub.start, body.get("serial"))
            elif name == "stop":
                result = hub.stop()
                if result is None:
                    return JSONResponse({"error": "nothing is running"}, status_code=409, headers=HEADERS)
            elif name == "answer":
                await asyncio.to_thread(hub.answer, body.get("prompt"), body.get("answer"))
                result = None
            else:
                return JSONResponse({"error": f"no action {name!r}"}, status_code=404, headers=HEADERS)
        except SerialRefused as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=HEADERS)
        except RunInProgress as exc:
            return JSONResponse({"error": str(exc)}, status_code=409, headers=HEADERS)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=HEADERS)
        except OSError as exc:  # the command cannot be run, the data dir refuses the answer
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500, headers=HEADERS)
        await asyncio.to_thread(hub.refresh)
        return JSONResponse({"ok": True, "result": result}, headers=HEADERS)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(hub.refresh)
        task = asyncio.create_task(_refresh_loop(hub))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(hub.close)

    routes = [Route(path, static) for path in STATIC]
    routes += [Route("/api/stream", stream), Route("/api/{name}", action, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


async def _refresh_loop(hub: PageHub) -> None:
    while True:
        try:
            await asyncio.wait_for(asyncio.to_thread(hub.runs.changed.wait, REFRESH), REFRESH * 2)
        except TimeoutError:
            pass
        await asyncio.to_thread(hub.refresh)


async def _events(hub: PageHub) -> AsyncIterator[bytes]:
    """One page's stream: the state when it changes, the station's newest session replayed then live."""
    hub.attach()
    follower: Follower | None = None
    try:
        yield b"retry: 1000\n\n"
        version = -1
        current: str | None = None
        pause = POLL_FIRST
        while True:
            if hub.version != version:
                version = hub.version
                yield _sse("state", hub.state_json)
            newest = hub.current
            if newest is not None and newest.id != current:
                current = newest.id
                if follower is not None:
                    follower.close()
                follower = Follower(newest.path, event_type=SHOWN, stop_at_end=False)
                yield _sse("session", {"id": current})
            batch = follower.drain() if follower is not None else []
            for start in range(0, len(batch), BATCH):
                yield _sse("events", batch[start : start + BATCH])
            pause = POLL_FIRST if batch else min(pause * 2, POLL_CAP)
            await asyncio.sleep(pause)
    finally:
        if follower is not None:
            follower.close()
        hub.detach()
