"""The three ways MCP travels over HTTP, behind one small interface (`call`, `notify`, `close`).

Why: the check opens with whichever wire the server speaks, then lists tools and closes
the same way on all three:
- `ModernWire`: 2026-07-28, one self-contained POST per request, envelope in `_meta`,
  `MCP-Protocol-Version` and `Mcp-Method` headers on every POST, no session;
- `HandshakeWire`: Streamable HTTP after `initialize`, `Mcp-Session-Id` and the negotiated
  `MCP-Protocol-Version` on every later POST, DELETE to end the session;
- `SseWire`: the legacy HTTP+SSE transport, POSTs to the `endpoint` event's URL and the
  replies on the long-lived GET stream, which closing ends the session.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from requests.structures import CaseInsensitiveDict

from . import mcp_protocol as proto
from .http import CheckFailed, Http, Reply, decode_json, hint
from .sse import EventStream

ACCEPT_BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Posted:
    """An answer to one POSTed message: its HTTP status and the JSON-RPC message, if any."""

    status: int
    headers: CaseInsensitiveDict
    message: Any
    reply: Reply | None  # the plain body, kept to describe a non-MCP answer

    def describe(self) -> str:
        return f"HTTP {self.status} ({hint(self.reply)})" if self.reply else f"HTTP {self.status}"


def post_message(http: Http, url: str, message: dict[str, Any], headers: dict[str, str]) -> Posted:
    """POST one message to a Streamable HTTP endpoint; read its reply whether JSON or SSE."""
    until = http.until()
    exchange = http.start("POST", url, json=message, headers={**ACCEPT_BOTH, **headers})
    try:
        response = exchange.response(until)
        is_stream = response.headers.get("content-type", "").startswith("text/event-stream")
        if response.status_code == 200 and is_stream and "id" in message:
            stream = EventStream(exchange)
            while True:
                reply = _json(stream.next(until).data)
                if proto.is_response(reply, message["id"]):
                    return Posted(200, response.headers, reply, None)
        reply = exchange.reply(until)
        return Posted(reply.status, reply.headers, reply.json(), reply)
    except CheckFailed as failure:
        raise CheckFailed(f"{message['method']}: {failure}") from None
    finally:
        exchange.close()


def _json(data: str) -> Any:
    return decode_json(data)


def answer(posted: Posted, method: str, request_id: int) -> dict[str, Any]:
    """The result of a request, or why there is none."""
    if proto.error_of(posted.message) is not None or (posted.status == 200 and posted.message is not None):
        return proto.result_of(posted.message, method, request_id)
    raise CheckFailed(f"{method}: {posted.describe()}")


class _RequestIds:
    """JSON-RPC ids within one session; the opening request had id 1."""

    def __init__(self) -> None:
        self._ids = itertools.count(2)

    def next_id(self) -> int:
        return next(self._ids)


class ModernWire(_RequestIds):
    transport = "Streamable HTTP"

    def __init__(self, http: Http, url: str, auth: dict[str, str]):
        super().__init__()
        self.http, self.url, self.auth = http, url, auth

    @staticmethod
    def routing_headers(method: str) -> dict[str, str]:
        return {"MCP-Protocol-Version": proto.MODERN_VERSION, "Mcp-Method": method}

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.next_id()
        message = proto.request(request_id, method, proto.modern_params(params))
        posted = post_message(self.http, self.url, message, {**self.auth, **self.routing_headers(method)})
        return answer(posted, method, request_id)

    def close(self) -> None:
        """Nothing to end: 2026-07-28 has no sessions."""


class HandshakeWire(_RequestIds):
    transport = "Streamable HTTP"

    def __init__(self, http: Http, url: str, auth: dict[str, str], session_id: str | None, version: str):
        super().__init__()
        self.http, self.url = http, url
        self.headers = {**auth, "MCP-Protocol-Version": version}
        if session_id:
            self.headers["Mcp-Session-Id"] = session_id

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.next_id()
        posted = post_message(self.http, self.url, proto.request(request_id, method, params), self.headers)
        return answer(posted, method, request_id)

    def notify(self, method: str) -> None:
        posted = post_message(self.http, self.url, proto.notification(method), self.headers)
        if posted.status not in (200, 202):
            raise CheckFailed(f"{method}: {posted.describe()}")

    def close(self) -> None:
        if "Mcp-Session-Id" in self.headers:
            try:
                self.http.fetch("DELETE", self.url, headers=self.headers)
            except CheckFailed:
                pass  # the verdict is in; a server that cannot end a session will expire it


class SseWire(_RequestIds):
    transport = "legacy HTTP+SSE"

    def __init__(self, http: Http, stream: EventStream, endpoint: str, auth: dict[str, str]):
        super().__init__()
        self.http, self.stream, self.endpoint, self.auth = http, stream, endpoint, auth

    def _post(self, message: dict[str, Any]) -> None:
        reply = self.http.fetch("POST", self.endpoint, json=message, headers={**self.auth, **ACCEPT_BOTH})
        if reply.status not in (200, 202):
            raise CheckFailed(f"{message['method']}: the message endpoint answered HTTP {reply.status} ({hint(reply)})")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = self.next_id()
        until = self.http.until()
        self._post(proto.request(request_id, method, params))
        while True:
            try:
                event = self.stream.next(until)
            except CheckFailed as failure:
                raise CheckFailed(f"{method}: no reply on the SSE stream ({failure})") from None
            message = _json(event.data) if event.name == "message" else None
            if proto.is_response(message, request_id):
                return proto.result_of(message, method, request_id)

    def notify(self, method: str) -> None:
        self._post(proto.notification(method))

    def close(self) -> None:
        self.stream.close()
