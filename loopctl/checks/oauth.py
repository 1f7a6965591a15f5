"""Can a ChatGPT connector sign in? The OAuth discovery an MCP client follows after a 401.

Why: a protected endpoint answers every anonymous request with 401, so the useful question
is whether the documents a client needs are in place: the protected-resource metadata
(RFC 9728, named by `resource_metadata` in `WWW-Authenticate` or at its well-known URL),
the authorization-server metadata (RFC 8414, or OpenID discovery) and in it the
authorization and token endpoints, client registration and PKCE S256.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .http import CheckFailed, Http
from .plugin import Report, Status

_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)')


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenge(header: str) -> dict[str, str]:
    """The auth-params of a `WWW-Authenticate: Bearer k="v", ...` header."""
    return {key.lower(): _unquote(value) for key, value in _PARAM.findall(header)}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def resource_metadata_urls(endpoint: str, challenge: dict[str, str]) -> list[str]:
    """RFC 9728: the URL the challenge names, else the well-known URLs with and without the path."""
    if challenge.get("resource_metadata"):
        return [challenge["resource_metadata"]]
    path = urlsplit(endpoint).path.rstrip("/")
    base = f"{_origin(endpoint)}/.well-known/oauth-protected-resource"
    return [base + path, base] if path else [base]


def authorization_metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 and OpenID discovery URLs for an issuer, in the order MCP clients try them."""
    origin, path = _origin(issuer), urlsplit(issuer).path.rstrip("/")
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


def metadata_problems(metadata: dict[str, Any], issuer: str) -> list[str]:
    """What keeps a ChatGPT connector from signing in with this authorization server."""
    problems = [f"no {name}" for name in ("authorization_endpoint", "token_endpoint") if not metadata.get(name)]
    if not metadata.get("registration_endpoint") and not metadata.get("client_id_metadata_document_supported"):
        problems.append("no registration_endpoint (dynamic client registration)")
    if "S256" not in (metadata.get("code_challenge_methods_supported") or []):
        problems.append("PKCE S256 not in code_challenge_methods_supported")
    if metadata.get("issuer") != issuer:
        problems.append(f"issuer {metadata.get('issuer')!r} is not {issuer!r}")
    return problems


def fetch_document(http: Http, urls: list[str]) -> tuple[str, dict[str, Any]] | tuple[None, list[str]]:
    """The first of `urls` that serves a JSON object, or what each one answered."""
    answers = []
    for url in urls:
        try:
            reply = http.fetch("GET", url, headers={"Accept": "application/json"})
        except CheckFailed as failure:
            answers.append(f"{urlsplit(url).path}: {failure}")
            continue
        document = reply.json()
        if reply.status == 200 and isinstance(document, dict):
            return url, document
        answers.append(f"{urlsplit(url).path}: HTTP {reply.status}")
    return None, answers


def assess(report: Report, http: Http, endpoint: str, status: int, header: str, *, token_sent: bool) -> None:
    challenge = parse_challenge(header)
    error, description = challenge.get("error", ""), challenge.get("error_description", "")
    said = " ".join(filter(None, (f"HTTP {status}", error, f"({description})" if description else "")))
    if token_sent:
        report.add(Status.CRITICAL, f"MCP_TOKEN was refused ({said})")
    elif status == 403:
        report.add(Status.CRITICAL, f"access forbidden ({said})")
    else:
        report.add(Status.OK, f"sign-in required ({said}); set MCP_TOKEN to check the MCP handshake too")
    report.details["oauth"] = oauth = {"www_authenticate": header}

    prm_url, prm = fetch_document(http, resource_metadata_urls(endpoint, challenge))
    if prm_url is None:
        report.add(Status.CRITICAL, f"no protected-resource metadata (RFC 9728): {'; '.join(prm)}")
        return
    oauth["resource_metadata"] = prm_url
    servers = prm.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        report.add(Status.CRITICAL, "the protected-resource metadata names no authorization_servers")
        return
    resource = str(prm.get("resource", ""))
    if not resource or not endpoint.startswith(resource.rstrip("/")):
        report.add(Status.WARNING, f"protected-resource metadata is for {resource!r}, not {endpoint}")

    issuer = servers[0]
    as_url, metadata = fetch_document(http, authorization_metadata_urls(issuer))
    if as_url is None:
        report.add(Status.CRITICAL, f"no authorization-server metadata for {issuer}: {'; '.join(metadata)}")
        return
    oauth.update(issuer=issuer, authorization_server_metadata=as_url, **{
        key: metadata.get(key) for key in (
            "authorization_endpoint", "token_endpoint", "registration_endpoint", "code_challenge_methods_supported")})
    problems = metadata_problems(metadata, issuer)
    if problems:
        report.add(Status.CRITICAL, f"ChatGPT cannot sign in: {', '.join(problems)}")
    else:
        report.add(Status.OK, "OAuth discovery ready for ChatGPT (authorization, token, registration, PKCE S256)")
