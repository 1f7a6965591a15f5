"""The app's /health and the auth service's JWKS, with behaviour a test can change between runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .broken import LOGIN_PAGE, NGINX_502

JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": "sXch", "e": "AQAB"}]}


@dataclass
class Behaviour:
    mode: str = "ok"  # ok, degraded, login, down
    delay: float = 0.0
    failures_left: int = 0  # answer 503 this many times first
    requests: int = 0
    headers: dict = field(default_factory=dict)  # sent with the JSON answer (loopctl's proxy adds some)
    extra: dict = field(default_factory=dict)  # more fields in it


def health_app(behaviour: Behaviour):
    async def health(request: Request) -> Response:
        behaviour.requests += 1
        await asyncio.sleep(behaviour.delay)
        if behaviour.failures_left > 0:
            behaviour.failures_left -= 1
            return JSONResponse({"status": "starting"}, status_code=503)
        if behaviour.mode == "login":
            return HTMLResponse(LOGIN_PAGE)
        if behaviour.mode == "down":
            return HTMLResponse(NGINX_502, status_code=502)
        return JSONResponse({"status": "degraded" if behaviour.mode == "degraded" else "ok", "version": "4.1",
                             **behaviour.extra}, headers=behaviour.headers)

    async def jwks(request: Request) -> Response:
        return JSONResponse(JWKS)

    async def empty_jwks(request: Request) -> Response:
        return JSONResponse({"keys": []})

    def build(base: str) -> Starlette:
        return Starlette(routes=[
            Route("/health", health), Route("/jwks", jwks), Route("/empty-jwks", empty_jwks)])

    return build
