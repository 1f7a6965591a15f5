"""A local stand-in for the alert webhook (Slack-like JSON or ntfy-like text) and the ping service."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict
    body: str


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    failing: bool = False

    def on(self, prefix: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(prefix)]


def receiver_app(receiver: Receiver):
    async def record(request: Request) -> Response:
        body = (await request.body()).decode()
        receiver.received.append(Received(request.method, request.url.path, dict(request.headers), body))
        return Response("broken", status_code=500) if receiver.failing else Response("ok")

    def build(base: str) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])

    return build
