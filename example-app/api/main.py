"""loop-api: FastAPI with /health, minimal OAuth endpoints, and the MCP server "loop" at /mcp.

MCP transport (env LOOP_MCP_TRANSPORT):
  sse (default)  legacy HTTP+SSE: GET /mcp opens the stream, messages are POSTed to /mcp/messages/
  streamable     Streamable HTTP at /mcp, stateful (Mcp-Session-Id)
  stateless      Streamable HTTP at /mcp with no sessions and JSON replies (the SDK's
                 stateless_http and json_response: what servers adopt so a deploy loses nothing)
  modern         MCP 2026-07-28 only: server/discover and self-contained requests; `initialize`
                 (every revision before it) is refused as an unknown method
MCP itself is not behind sign-in. The OAuth endpoints are a minimal authorization server
for ChatGPT-style clients: dynamic client registration stored in oauth.db, an /authorize
that approves at once (no user login: this is a stand-in) and a /token that issues RS256
JWTs signed with the key loop-auth keeps in api/oauth/keys/. Tokens are verified against
the JWKS fetched from loop-auth (LOOP_AUTH_URL), as any resource server would.

Environment: PUBLIC_URL (the issuer, default http://127.0.0.1:8082), LOOP_AUTH_URL
(default http://loop-auth:8084), LOOPCTL_COMMIT / LOOPCTL_COLOR (set by loopctl on its
blue/green copies), GIT_COMMIT (build arg), VAULT_DIR (default /vault).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
import urllib.parse
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.server.transport_security import TransportSecuritySettings

from . import signing, store


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


VAULT = Path(_env("VAULT_DIR", "/vault"))
COMMIT = _env("LOOPCTL_COMMIT") or _env("GIT_COMMIT") or "unknown"
COLOR = _env("LOOPCTL_COLOR")
PUBLIC_URL = _env("PUBLIC_URL", "http://127.0.0.1:8082").rstrip("/")
AUTH_URL = _env("LOOP_AUTH_URL", "http://loop-auth:8084").rstrip("/")
TRANSPORT = _env("LOOP_MCP_TRANSPORT", "sse").lower()
TRANSPORTS = ("sse", "streamable", "stateless", "modern")
if TRANSPORT not in TRANSPORTS:
    raise SystemExit(f"LOOP_MCP_TRANSPORT={TRANSPORT!r}: expected one of {', '.join(TRANSPORTS)} (default sse)")

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 600
SCOPES = ["mcp"]

# --- MCP ------------------------------------------------------------------------------------

async def only_2026_07_28(ctx, call_next):
    """The `modern` transport: a server that has left every revision before 2026-07-28."""
    if ctx.method == "initialize":
        raise MCPError(-32601, "Method not found: initialize (this server speaks MCP 2026-07-28 only)")
    return await call_next(ctx)


mcp = MCPServer("loop", middleware=[only_2026_07_28] if TRANSPORT == "modern" else None)


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@mcp.tool()
def vault_list() -> list[str]:
    """List the files at the top of the vault."""
    return sorted(p.name for p in VAULT.iterdir()) if VAULT.is_dir() else []


# Behind nginx the Host header is the public name, so DNS-rebinding checks stay off here.
_no_rebinding_check = TransportSecuritySettings(enable_dns_rebinding_protection=False)
if TRANSPORT == "sse":
    mcp_app = mcp.sse_app(sse_path="/mcp", message_path="/mcp/messages/", transport_security=_no_rebinding_check)
else:
    sessionless = TRANSPORT in ("stateless", "modern")
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp", transport_security=_no_rebinding_check,
                                      stateless_http=sessionless, json_response=sessionless)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # A mounted app's lifespan is not run by its parent: the Streamable HTTP session
    # manager (its task group) has to be started here.
    if TRANSPORT != "sse":
        async with mcp.session_manager.run():
            yield
    else:
        yield


app = FastAPI(title="loop", lifespan=lifespan)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok", "commit": COMMIT, "color": COLOR}


# --- OAuth: helpers ---------------------------------------------------------------------------

def oauth_error(error: str, description: str, status: int = 400, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


@contextlib.contextmanager
def database():
    db = store.connect()
    try:
        yield db
    finally:
        db.close()


async def request_body(request: Request) -> bytes:
    return await request.body()


async def form_or_json(request: Request) -> dict[str, str]:
    body = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}


class JwksCache:
    """The JWKS from loop-auth, kept for a minute and fetched again for an unknown kid."""

    def __init__(self, url: str, ttl: float = 60.0):
        self.url, self.ttl = url, ttl
        self.lock = threading.Lock()
        self.keys: dict | None = None
        self.fetched = 0.0

    def get(self, kid: str | None = None) -> dict:
        with self.lock:
            age = time.monotonic() - self.fetched
            known = self.keys is not None and (kid is None or any(k.get("kid") == kid for k in self.keys["keys"]))
            if self.keys is None or age > self.ttl or (not known and age > 2.0):
                try:
                    with urllib.request.urlopen(self.url, timeout=3) as response:
                        keys = json.loads(response.read())
                    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
                        raise ValueError(f"{self.url}: not a JWK set")
                except (OSError, ValueError):
                    if self.keys is None or not known:
                        raise
                    self.fetched = time.monotonic() - self.ttl + 5.0  # keep the last set, retry in 5 s
                else:
                    self.keys, self.fetched = keys, time.monotonic()
            return self.keys


jwks_cache = JwksCache(f"{AUTH_URL}/.well-known/jwks.json")


def issue_tokens(db, key, client_id: str, scope: str, resource: str | None) -> JSONResponse:
    now = int(time.time())
    claims = {"iss": PUBLIC_URL, "sub": client_id, "aud": resource or f"{PUBLIC_URL}/mcp", "client_id": client_id,
              "scope": scope, "iat": now, "exp": now + ACCESS_TOKEN_SECONDS, "jti": secrets.token_urlsafe(16)}
    refresh = secrets.token_urlsafe(32)
    db.execute("INSERT INTO refresh_tokens (token, client_id, scope, resource, expires) VALUES (?, ?, ?, ?, ?)",
               (refresh, client_id, scope, resource, now + REFRESH_TOKEN_SECONDS))
    return JSONResponse({"access_token": signing.sign_jwt(claims, key), "token_type": "Bearer",
                         "expires_in": ACCESS_TOKEN_SECONDS, "refresh_token": refresh, "scope": scope},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return urllib.parse.unquote(user), urllib.parse.unquote(password)
        except ValueError:
            return None, None
    return form.get("client_id"), form.get("client_secret")


# --- OAuth: endpoints -------------------------------------------------------------------------

@app.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata() -> dict:
    return {
        "issuer": PUBLIC_URL,
        "authorization_endpoint": f"{PUBLIC_URL}/authorize",
        "token_endpoint": f"{PUBLIC_URL}/token",
        "registration_endpoint": f"{PUBLIC_URL}/register",
        "jwks_uri": f"{PUBLIC_URL}/.well-known/jwks.json",
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }


@app.get("/.well-known/oauth-protected-resource")
@app.get("/.well-known/oauth-protected-resource/mcp")
async def protected_resource_metadata() -> dict:
    return {"resource": f"{PUBLIC_URL}/mcp", "authorization_servers": [PUBLIC_URL], "scopes_supported": SCOPES,
            "bearer_methods_supported": ["header"]}


@app.get("/.well-known/jwks.json")
def public_jwks():
    """The JWKS as loop-auth serves it (behind the proxy this path goes to loop-auth itself)."""
    try:
        return JSONResponse(jwks_cache.get(), headers={"Cache-Control": "public, max-age=60"})
    except (OSError, ValueError) as exc:
        return oauth_error("temporarily_unavailable", f"JWKS from loop-auth unavailable: {exc}", 503)


@app.post("/register", status_code=201)
def register(body: bytes = Depends(request_body)):
    """RFC 7591 dynamic client registration: stores the client in oauth.db."""
    try:
        meta = json.loads(body or b"{}")
    except ValueError:
        return oauth_error("invalid_client_metadata", "body is not JSON")
    if not isinstance(meta, dict):
        return oauth_error("invalid_client_metadata", "body is not a JSON object")
    redirect_uris = meta.get("redirect_uris") or []
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) and u for u in redirect_uris):
        return oauth_error("invalid_redirect_uri", "redirect_uris must be a list of URLs")
    method = meta.get("token_endpoint_auth_method") or "client_secret_post"
    if method not in ("none", "client_secret_post", "client_secret_basic"):
        return oauth_error("invalid_client_metadata", f"unsupported token_endpoint_auth_method {method!r}")
    client_id = secrets.token_urlsafe(16)
    client_secret = None if method == "none" else secrets.token_urlsafe(32)
    issued = int(time.time())
    with database() as db:
        db.execute("INSERT INTO clients (client_id, client_secret, client_name, redirect_uris,"
                   " token_endpoint_auth_method, metadata, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (client_id, client_secret, meta.get("client_name"), json.dumps(redirect_uris), method,
                    json.dumps(meta), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued))))
    reply = {**meta, "client_id": client_id, "client_id_issued_at": issued, "redirect_uris": redirect_uris,
             "token_endpoint_auth_method": method,
             "grant_types": meta.get("grant_types") or ["authorization_code", "refresh_token"],
             "response_types": meta.get("response_types") or ["code"]}
    if client_secret:
        reply.update(client_secret=client_secret, client_secret_expires_at=0)
    return JSONResponse(reply, status_code=201, headers={"Cache-Control": "no-store"})


@app.get("/authorize")
def authorize(request: Request):
    """Authorization code with PKCE S256, approved at once (a stand-in: no user login)."""
    q = request.query_params
    client_id, redirect_uri = q.get("client_id", ""), q.get("redirect_uri")
    with database() as db:
        client = db.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if client is None:
            return oauth_error("invalid_client", "unknown client_id")
        registered = json.loads(client["redirect_uris"] or "[]")
        if redirect_uri is None and len(registered) == 1:
            redirect_uri = registered[0]
        if not redirect_uri or (registered and redirect_uri not in registered):
            return oauth_error("invalid_request", "redirect_uri is missing or not registered for this client")
        if q.get("response_type") != "code":
            return oauth_error("unsupported_response_type", "only response_type=code")
        if not q.get("code_challenge") or q.get("code_challenge_method", "plain") != "S256":
            return oauth_error("invalid_request", "PKCE with code_challenge_method=S256 is required")
        code = secrets.token_urlsafe(32)
        db.execute("INSERT INTO codes (code, client_id, redirect_uri, code_challenge, scope, resource, expires)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (code, client_id, redirect_uri, q["code_challenge"], q.get("scope") or " ".join(SCOPES),
                    q.get("resource"), time.time() + CODE_SECONDS))
    params = {"code": code, "iss": PUBLIC_URL, **({"state": q["state"]} if "state" in q else {})}
    separator = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urllib.parse.urlencode(params)}", status_code=302)


@app.post("/token")
def token(request: Request, form: dict[str, str] = Depends(form_or_json)):
    client_id, client_secret = client_credentials(request, form)
    grant = form.get("grant_type")
    try:
        # Before any write lock: the key may appear a moment after a first start.
        key = signing.load_key(wait=5.0)
    except signing.KeyNotReady as exc:
        return oauth_error("temporarily_unavailable", str(exc), 503)
    with database() as db:
        client = db.execute("SELECT * FROM clients WHERE client_id = ?", (client_id or "",)).fetchone()
        if client is None or (client["client_secret"] and not secrets.compare_digest(
                client["client_secret"], client_secret or "")):
            return oauth_error("invalid_client", "unknown client or wrong secret", 401)
        db.execute("BEGIN IMMEDIATE")
        try:
            if grant == "authorization_code":
                row = db.execute("SELECT * FROM codes WHERE code = ?", (form.get("code", ""),)).fetchone()
                db.execute("DELETE FROM codes WHERE code = ? OR expires < ?", (form.get("code", ""), time.time()))
                if row is None or row["client_id"] != client_id or row["expires"] < time.time():
                    raise _Refused("invalid_grant", "unknown, used or expired code")
                if form.get("redirect_uri", row["redirect_uri"]) != row["redirect_uri"]:
                    raise _Refused("invalid_grant", "redirect_uri does not match the authorization request")
                challenge = signing.b64url(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if not secrets.compare_digest(challenge, row["code_challenge"] or ""):
                    raise _Refused("invalid_grant", "PKCE code_verifier does not match")
                reply = issue_tokens(db, key, client_id, row["scope"], form.get("resource") or row["resource"])
            elif grant == "refresh_token":
                row = db.execute("SELECT * FROM refresh_tokens WHERE token = ?",
                                 (form.get("refresh_token", ""),)).fetchone()
                db.execute("DELETE FROM refresh_tokens WHERE token = ? OR expires < ?",
                           (form.get("refresh_token", ""), time.time()))
                if row is None or row["client_id"] != client_id or row["expires"] < time.time():
                    raise _Refused("invalid_grant", "unknown or expired refresh token")
                reply = issue_tokens(db, key, client_id, row["scope"], row["resource"])
            else:
                raise _Refused("unsupported_grant_type", "authorization_code or refresh_token")
        except _Refused as refused:
            db.execute("COMMIT")  # a presented code or refresh token is spent even when refused
            return oauth_error(refused.error, refused.description)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return reply


class _Refused(Exception):
    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


@app.get("/userinfo")
def userinfo(request: Request):
    """The claims of a valid bearer token, checked against loop-auth's JWKS (a resource server's check)."""
    challenge = {"WWW-Authenticate": f'Bearer resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource"'}
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return oauth_error("invalid_token", "bearer token required", 401, challenge)
    token_text = auth[7:].strip()
    try:
        key_set = jwks_cache.get(signing.jwt_kid(token_text))
        claims = signing.verify_jwt(token_text, key_set, issuer=PUBLIC_URL)
    except signing.InvalidToken as exc:
        return oauth_error("invalid_token", str(exc), 401, challenge)
    except (OSError, ValueError) as exc:
        return oauth_error("temporarily_unavailable", f"JWKS from loop-auth unavailable: {exc}", 503)
    return {"sub": claims["sub"], "client_id": claims.get("client_id"), "scope": claims.get("scope"),
            "exp": claims["exp"]}


# MCP last: mounted at the root, it answers /mcp and /mcp/messages/ and whatever no route above took.
app.mount("/", mcp_app)
