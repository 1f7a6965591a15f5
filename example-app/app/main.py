"""Example LOOP api: FastAPI with a health endpoint and an MCP server on legacy HTTP+SSE at /mcp.

It mirrors the production app's shape (routes, transport, vault volume) so the sandbox
exercises the same paths a real deploy does.
"""

import os
from pathlib import Path

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

VAULT = Path(os.environ.get("VAULT_DIR", "/vault"))
COMMIT = os.environ.get("GIT_COMMIT", "unknown")
COLOR = os.environ.get("LOOP_COLOR", "")

mcp = MCPServer("loop")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
def vault_list() -> list[str]:
    """List the files at the top of the vault."""
    return sorted(p.name for p in VAULT.iterdir()) if VAULT.is_dir() else []


app = FastAPI(title="loop")


@app.get("/health")
def health() -> dict:
    return {"status": "ok", "commit": COMMIT, "color": COLOR}


# Behind nginx the Host header is the public name, so DNS-rebinding checks stay off here.
app.mount("/", mcp.sse_app(sse_path="/mcp", message_path="/mcp/messages/",
                           transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)))
