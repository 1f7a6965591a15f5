"""MCP servers built with the official SDK (`mcp` 2.x, where FastMCP is called `MCPServer`).

- `production_sse_app`: the shape production runs today, a FastAPI app with /health and
  the legacy HTTP+SSE transport at GET /mcp, messages POSTed to /mcp/messages/.
- `streamable_app`: the SDK's Streamable HTTP app, which serves 2026-07-28 and the
  `initialize` handshake on the same endpoint.
- `stateless_app`: the same with no sessions and JSON replies (`stateless_http`,
  `json_response`), as servers that must survive deploys run.
- `modern_only_app`: stateless, and `initialize` refused as an unknown method: a server that
  has left every revision before 2026-07-28.
- `handshake_only_app`: the same app as a pre-2026 server sees the world. The 2.x SDK routes
  by the MCP-Protocol-Version header and has no switch to turn 2026-07-28 off, so a thin
  ASGI shim drops a header naming a version the old SDKs did not know; the SDK then
  answers exactly as 1.x did (400, JSON-RPC -32600 "Missing session ID").
- `declines_modern_app`: answers 2026-07-28 with -32022 listing only handshake versions.
- `method_header_dropping_proxy_app`: the same behind a proxy that loses `Mcp-Method`.
- `oauth_app`: Streamable HTTP behind bearer auth, with the SDK's RFC 9728 and RFC 8414
  documents and a token store holding one static token.
- `failing_tools_app`: answers the handshake but `tools/list` with a JSON-RPC error.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

SERVER_NAME = "loop-test"
SERVER_VERSION = "1.2.3"
TOKEN = "tok-7Hq2-not-for-output"


def make_server(**kwargs: Any) -> MCPServer:
    server = MCPServer(SERVER_NAME, version=SERVER_VERSION, **kwargs)

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Say it back."""
        return text

    return server


def production_sse_app(base: str) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    app.router.routes.extend(make_server().sse_app(sse_path="/mcp", message_path="/mcp/messages/").routes)
    return app


def streamable_app(base: str) -> Any:
    return make_server().streamable_http_app()


def stateless_app(base: str) -> Any:
    return make_server().streamable_http_app(stateless_http=True, json_response=True)


async def refuse_initialize(ctx: Any, call_next: Any) -> Any:
    if ctx.method == "initialize":
        raise MCPError(-32601, "Method not found: initialize")
    return await call_next(ctx)


def modern_only_app(base: str) -> Any:
    return make_server(middleware=[refuse_initialize]).streamable_http_app(stateless_http=True, json_response=True)


class DropHeaders:
    """ASGI shim in front of an app that removes the request headers `drop(name, value)` picks."""

    def __init__(self, app: Any, drop: Callable[[bytes, bytes], bool]):
        self.app, self.drop = app, drop

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if not self.drop(k, v)])
        await self.app(scope, receive, send)


def _names_a_modern_version(name: bytes, value: bytes) -> bool:
    return name == b"mcp-protocol-version" and value.decode() not in HANDSHAKE_PROTOCOL_VERSIONS


def handshake_only_app(base: str) -> Any:
    return DropHeaders(make_server().streamable_http_app(), _names_a_modern_version)


class DeclineModern:
    """ASGI shim: answers a 2026-07-28 request with UnsupportedProtocolVersionError naming older versions.

    The spec's way for a server to say "not that revision, but these"; the check must then
    fall back to `initialize` instead of giving up.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and any(_names_a_modern_version(k, v) for k, v in scope["headers"]):
            error = {"code": -32022, "message": "Unsupported protocol version",
                     "data": {"supported": ["2025-11-25", "2025-06-18"], "requested": "2026-07-28"}}
            await JSONResponse({"jsonrpc": "2.0", "id": 1, "error": error}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def declines_modern_app(base: str) -> Any:
    return DeclineModern(make_server().streamable_http_app())


def method_header_dropping_proxy_app(base: str) -> Any:
    """A reverse proxy configured to pass only the headers it knows: Mcp-Method is lost."""
    return DropHeaders(make_server().streamable_http_app(), lambda name, value: name == b"mcp-method")


class StaticTokens:
    """The one provider method bearer auth calls; the OAuth flows themselves are not exercised."""

    async def load_access_token(self, token: str) -> AccessToken | None:
        return AccessToken(token=token, client_id="chatgpt", scopes=[]) if token == TOKEN else None


def oauth_app(base: str, *, registration: bool = True) -> Any:
    auth = AuthSettings(
        issuer_url=base, resource_server_url=f"{base}/mcp", validate_token_resource=False,
        client_registration_options=ClientRegistrationOptions(enabled=registration),
    )
    return make_server(auth_server_provider=StaticTokens(), auth=auth).streamable_http_app()


def oauth_without_registration_app(base: str) -> Any:
    return oauth_app(base, registration=False)


async def refuse_tools_list(ctx: Any, call_next: Any) -> Any:
    if ctx.method == "tools/list":
        raise MCPError(-32603, "tool registry unavailable")
    return await call_next(ctx)


def failing_tools_app(base: str) -> Any:
    return make_server(middleware=[refuse_tools_list]).streamable_http_app()
