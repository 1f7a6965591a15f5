"""Things that answer HTTP but are no working MCP server, as a proxy shows them when the app is not right.

One app, a prefix per misbehaviour; each prefix is used as a base URL with MCP_PATH=/mcp.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

LOGIN_PAGE = "<html><head><title>Sign in</title></head><body><form>user, password</form></body></html>"
NGINX_502 = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
             "</center><hr><center>nginx/1.27.0</center></body></html>")
PING_SECONDS = 0.2


async def _pings(first: str = "") -> AsyncIterator[str]:
    if first:
        yield first
    while True:
        yield ": ping\n\n"
        await asyncio.sleep(PING_SECONDS)


async def login_page(request: Request) -> Response:
    return HTMLResponse(LOGIN_PAGE)


async def bad_gateway(request: Request) -> Response:
    return HTMLResponse(NGINX_502, status_code=502)


async def stream_without_endpoint(request: Request) -> Response:
    """An event stream that trickles keep-alive comments and never names an endpoint."""
    return StreamingResponse(_pings(), media_type="text/event-stream")


async def stream_that_never_answers(request: Request) -> Response:
    """Sends the endpoint event, accepts every POST, never replies on the stream."""
    first = "event: endpoint\ndata: /mute/mcp/messages/?session_id=0123abcd\n\n"
    return StreamingResponse(_pings(first), media_type="text/event-stream")


async def accepted(request: Request) -> Response:
    return Response("Accepted", status_code=202)


async def echo_authorization(request: Request) -> Response:
    """A careless login page that quotes the request's Authorization header back."""
    said = request.headers.get("authorization", "none")
    return HTMLResponse(f"<html><head><title>Sign in (you sent {said})</title></head></html>")


def broken_app(base: str) -> Starlette:
    return Starlette(routes=[
        Route("/login/mcp", login_page, methods=["GET", "POST"]),
        Route("/down/mcp", bad_gateway, methods=["GET", "POST"]),
        Route("/no-endpoint/mcp", stream_without_endpoint, methods=["GET"]),
        Route("/mute/mcp", stream_that_never_answers, methods=["GET"]),
        Route("/mute/mcp/messages/", accepted, methods=["POST"]),
        Route("/echo/mcp", echo_authorization, methods=["GET", "POST"]),
    ])
