"""The pure pieces of the checks: SSE parsing, plugin formatting, protocol and OAuth rules, health expectations."""

from __future__ import annotations

import pytest
import requests

from loopctl.checks import alerts, http, mcp_protocol as proto, oauth
from loopctl.checks.health import Expectation, body_problem
from loopctl.checks.plugin import Perf, Report, Status, finding_text, scrub
from loopctl.checks.sse import Event, EventParser
from loopctl.errors import ConfigError


def test_sse_parser_handles_split_crlf_comments_and_multiline_data():
    parser = EventParser()
    assert parser.feed(b": ping\r\n\r\nevent: endpoint\r") == []
    assert parser.feed(b"\ndata: /mcp/messages/?session_id=1\r\n\r\ndata: a\ndata:b\n") == [
        Event("endpoint", "/mcp/messages/?session_id=1")]
    assert parser.feed(b"\n") == [Event("message", "a\nb")]


def test_sse_parser_keeps_utf8_split_across_chunks():
    parser = EventParser()
    raw = "data: grüß\n\n".encode()
    assert parser.feed(raw[:8]) == []
    assert parser.feed(raw[8:]) == [Event("message", "grüß")]


def test_perfdata_drops_trailing_empty_fields():
    assert str(Perf("time", 0.084, "s", "1", "3")) == "time=0.084s;1;3;0"
    assert str(Perf("tools", 2)) == "tools=2;;;0"
    assert str(Perf("cert_days", 10, "", "14:", "3:")) == "cert_days=10;14:;3:;0"


def test_summary_lists_troubles_worst_first_and_everything_when_ok():
    report = Report("LOOP")
    report.add(Status.OK, "/health 200 in 5 ms")
    assert report.line() == "LOOP OK - /health 200 in 5 ms"
    report.add(Status.WARNING, "certificate expires in 9 days")
    report.add(Status.CRITICAL, "JWKS: the key set is empty")
    assert report.status == Status.CRITICAL
    assert report.summary() == "JWKS: the key set is empty; certificate expires in 9 days"


def test_an_empty_report_is_unknown():
    assert Report("LOOP").status == Status.UNKNOWN


def test_server_text_cannot_break_the_status_line():
    assert finding_text("a\nb | c\t d") == "a b / c d"
    assert finding_text("x" * 500).endswith("…") and len(finding_text("x" * 500)) == 160


def test_scrub_replaces_longest_secrets_first():
    assert scrub("url https://h/hook/abc token abc", ["abc", "https://h/hook/abc"]) == (
        "url <redacted> token <redacted>")


def test_hint_names_html_pages_and_quotes_other_bodies():
    def reply(body: str, content_type: str) -> http.Reply:
        return http.Reply(200, requests.structures.CaseInsensitiveDict({"content-type": content_type}),
                          body.encode(), 0.1)

    assert http.hint(reply("<html><title> Sign in </title></html>", "text/html")) == "HTML page 'Sign in'"
    assert http.hint(reply("<html><title>502</title><hr>nginx</html>", "text/html")) == "nginx error page '502'"
    assert http.hint(reply('{"detail":"x"}', "application/json")) == "application/json '{\"detail\":\"x\"}'"
    assert http.hint(reply("", "text/plain")) == "empty body"


def test_result_of_names_what_is_wrong():
    assert proto.result_of({"jsonrpc": "2.0", "id": 3, "result": {"tools": []}}, "tools/list", 3) == {"tools": []}
    with pytest.raises(proto.RpcError, match="tools/list failed: JSON-RPC error -32601: Method not found"):
        proto.result_of({"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "Method not found"}},
                        "tools/list", 3)
    with pytest.raises(http.CheckFailed, match="not JSON-RPC"):
        proto.result_of({"tools": []}, "tools/list", 3)
    with pytest.raises(http.CheckFailed, match="not a JSON-RPC result for request 3"):
        proto.result_of({"jsonrpc": "2.0", "id": 4, "result": {}}, "tools/list", 3)


def test_only_2026_error_codes_prove_a_modern_server():
    unsupported = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32022, "message": "Unsupported protocol version"}}
    missing_session = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Missing session ID"}}
    assert proto.modern_error(unsupported)["code"] == -32022
    assert proto.modern_error(missing_session) is None
    assert proto.modern_error(None) is None


def test_initialize_result_must_name_a_known_version_and_the_server():
    good = {"protocolVersion": "2024-11-05", "serverInfo": {"name": "loop", "version": "2"}, "capabilities": {}}
    assert proto.handshake_from_initialize(good, "legacy HTTP+SSE").server == '"loop" 2'
    with pytest.raises(http.CheckFailed, match="protocol version '2099-01-01'"):
        proto.handshake_from_initialize({**good, "protocolVersion": "2099-01-01"}, "x")
    with pytest.raises(http.CheckFailed, match="no serverInfo name"):
        proto.handshake_from_initialize({**good, "serverInfo": {}}, "x")
    with pytest.raises(http.CheckFailed, match="no capabilities object"):
        proto.handshake_from_initialize({**good, "capabilities": None}, "x")


def test_modern_envelope_carries_version_client_and_capabilities():
    params = proto.modern_params({"cursor": "c"})
    assert params["cursor"] == "c"
    assert params["_meta"][proto.VERSION_KEY] == "2026-07-28"
    assert set(params["_meta"]) == {proto.VERSION_KEY, proto.CLIENT_INFO_KEY, proto.CLIENT_CAPABILITIES_KEY}


def test_www_authenticate_parameters():
    header = 'Bearer error="invalid_token", error_description="Say \\"hi\\"", resource_metadata=https://a/b'
    assert oauth.parse_challenge(header) == {
        "error": "invalid_token", "error_description": 'Say "hi"', "resource_metadata": "https://a/b"}


def test_metadata_urls_follow_rfc_9728_and_8414():
    assert oauth.resource_metadata_urls("https://m.example/mcp", {}) == [
        "https://m.example/.well-known/oauth-protected-resource/mcp",
        "https://m.example/.well-known/oauth-protected-resource"]
    assert oauth.authorization_metadata_urls("https://auth.example") == [
        "https://auth.example/.well-known/oauth-authorization-server",
        "https://auth.example/.well-known/openid-configuration"]
    assert oauth.authorization_metadata_urls("https://auth.example/tenant1") == [
        "https://auth.example/.well-known/oauth-authorization-server/tenant1",
        "https://auth.example/.well-known/openid-configuration/tenant1",
        "https://auth.example/tenant1/.well-known/openid-configuration"]


def test_what_chatgpt_needs_from_the_authorization_server():
    issuer = "https://auth.example"
    ready = {"issuer": issuer, "authorization_endpoint": "a", "token_endpoint": "t",
             "registration_endpoint": "r", "code_challenge_methods_supported": ["S256"]}
    assert oauth.metadata_problems(ready, issuer) == []
    assert oauth.metadata_problems({**ready, "code_challenge_methods_supported": ["plain"]}, issuer) == [
        "PKCE S256 not in code_challenge_methods_supported"]
    no_registration = {k: v for k, v in ready.items() if k != "registration_endpoint"}
    assert oauth.metadata_problems({**no_registration, "client_id_metadata_document_supported": True}, issuer) == []
    assert oauth.metadata_problems({"issuer": "https://other"}, issuer) == [
        "no authorization_endpoint", "no token_endpoint", "no registration_endpoint (dynamic client registration)",
        "PKCE S256 not in code_challenge_methods_supported", "issuer 'https://other' is not 'https://auth.example'"]


def test_health_expectation():
    expect = Expectation.parse("status = ok")
    assert body_problem({"status": "ok"}, expect) is None
    assert body_problem({"status": "down"}, expect) == "status is 'down', expected 'ok'"
    assert body_problem({}, expect) == "the body has no 'status'"
    assert body_problem(["ok"], expect) == "the body is not a JSON object"
    assert body_problem({"ok": True}, Expectation.parse("ok=true")) is None
    assert Expectation.parse("") is None
    with pytest.raises(ConfigError):
        Expectation.parse("ok")


def test_ping_url_appends_fail_only_for_critical():
    assert alerts.ping_url("https://hc-ping.com/uuid", Status.WARNING) == "https://hc-ping.com/uuid"
    assert alerts.ping_url("https://hc-ping.com/uuid?rid=1", Status.CRITICAL) == "https://hc-ping.com/uuid/fail?rid=1"
