"""MCP messages and what a valid answer looks like, with no I/O.

Why a module of its own: the three wire shapes (2026-07-28 per-request envelope, the
`initialize` handshake over Streamable HTTP, the legacy HTTP+SSE transport) share the
JSON-RPC framing and the checks on results; keeping them pure keeps them unit-testable.
Revisions and error codes follow the 2026-07-28 specification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .http import CheckFailed

MODERN_VERSION = "2026-07-28"
HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")  # newest first
CLIENT_INFO = {"name": "loopctl-mcp-check", "version": "1"}

VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
MODERN_ERRORS = {HEADER_MISMATCH, MISSING_CAPABILITY, UNSUPPORTED_VERSION}

TOOL_PAGES = 50


class RpcError(CheckFailed):
    """The server answered with a JSON-RPC error in place of a result."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"{method} failed: JSON-RPC error {self.code}: {self.message}")


@dataclass
class Handshake:
    """What the opening exchange told us about the server."""

    transport: str
    version: str
    server_name: str
    server_version: str
    capabilities: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f'"{self.server_name}" {self.server_version}'.strip()


def request(request_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method}


def modern_params(params: dict[str, Any] | None, version: str = MODERN_VERSION) -> dict[str, Any]:
    """Params carrying the 2026-07-28 per-request envelope in `_meta`."""
    meta = {VERSION_KEY: version, CLIENT_INFO_KEY: CLIENT_INFO, CLIENT_CAPABILITIES_KEY: {}}
    return {**(params or {}), "_meta": meta}


def initialize_params() -> dict[str, Any]:
    return {"protocolVersion": HANDSHAKE_VERSIONS[0], "capabilities": {}, "clientInfo": CLIENT_INFO}


def is_response(message: Any, request_id: int) -> bool:
    return isinstance(message, dict) and message.get("id") == request_id and (
        "result" in message or "error" in message
    )


def result_of(message: Any, method: str, request_id: int) -> dict[str, Any]:
    """The `result` of a JSON-RPC response, or the reason there is none."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise CheckFailed(f"{method}: the answer is not JSON-RPC")
    if isinstance(message.get("error"), dict):
        raise RpcError(method, message["error"])
    if message.get("id") != request_id or not isinstance(message.get("result"), dict):
        raise CheckFailed(f"{method}: the answer is not a JSON-RPC result for request {request_id}")
    return message["result"]


def error_of(message: Any) -> dict[str, Any] | None:
    """The JSON-RPC error object in a body, if the body is one."""
    if isinstance(message, dict) and isinstance(message.get("error"), dict):
        return message["error"]
    return None


def modern_error(message: Any) -> dict[str, Any] | None:
    """A JSON-RPC error only a 2026-07-28 server sends: proof the server speaks that revision."""
    error = error_of(message)
    return error if error is not None and error.get("code") in MODERN_ERRORS else None


def _server_info(info: Any) -> tuple[str, str]:
    """(name, version) from an Implementation object; empty strings when absent."""
    if not isinstance(info, dict):
        return "", ""
    return str(info.get("name") or ""), str(info.get("version") or "")


def _capabilities(result: dict[str, Any], method: str) -> list[str]:
    capabilities = result.get("capabilities")
    if not isinstance(capabilities, dict):
        raise CheckFailed(f"{method}: the result has no capabilities object")
    return sorted(capabilities)


def handshake_from_initialize(result: dict[str, Any], transport: str) -> Handshake:
    """Check an InitializeResult: a version we know, serverInfo and capabilities are required."""
    version = result.get("protocolVersion")
    if version not in HANDSHAKE_VERSIONS:
        raise CheckFailed(f"initialize: the server chose protocol version {version!r}, which the check does not know")
    name, server_version = _server_info(result.get("serverInfo"))
    if not name:
        raise CheckFailed("initialize: the result has no serverInfo name")
    return Handshake(transport, version, name, server_version, _capabilities(result, "initialize"))


def handshake_from_discover(result: dict[str, Any], transport: str) -> Handshake:
    """Check a DiscoverResult; the serverInfo stamp is optional (display only) at 2026-07-28."""
    name, server_version = _server_info((result.get("_meta") or {}).get(SERVER_INFO_KEY))
    return Handshake(transport, MODERN_VERSION, name or "(unnamed)", server_version,
                     _capabilities(result, "server/discover"))


def supports_modern(result: dict[str, Any]) -> bool:
    versions = result.get("supportedVersions")
    return isinstance(versions, list) and MODERN_VERSION in versions


# What the deploy's gate keeps too (scripts/lib-mcp.sh): names in the specification's characters,
# and cursors it can send back as they came.
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
CURSOR = re.compile(r"[A-Za-z0-9+/=_.:-]{1,256}")


def tools_page(result: dict[str, Any]) -> tuple[list[str], str | None]:
    """(the names of the tools on this page that are plain words, cursor of the next page or None)."""
    tools = result.get("tools")
    if not isinstance(tools, list):
        raise CheckFailed("tools/list: the result has no tools list")
    names = [tool["name"] for tool in tools
             if isinstance(tool, dict) and isinstance(tool.get("name"), str) and TOOL_NAME.fullmatch(tool["name"])]
    cursor = result.get("nextCursor")
    if not isinstance(cursor, str) or not cursor:
        return names, None
    if not CURSOR.fullmatch(cursor):
        raise CheckFailed("tools/list: a cursor that is not a plain word")
    return names, cursor
