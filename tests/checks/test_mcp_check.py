"""`inv mcp-check` end to end against real servers, run as cron would run it."""

from __future__ import annotations

import json
import re

from .servers.mcp_apps import TOKEN

NUM = r"\d+(?:\.\d+)?"
PERF = rf" \| time={NUM}s;;;0 handshake={NUM}s;;;0 tools=2;;;0"
SERVER = r'server "loop-test" 1\.2\.3, 2 tools'
DEPRECATED = r" \(deprecated since 2025-03-26\)"


def ok_line(transport: str, version: str) -> re.Pattern:
    note = DEPRECATED if transport.startswith("legacy") else ""
    return re.compile(rf"LOOP MCP OK - {transport}{note}, protocol {version}, {SERVER}; handshake \d+ ms, "
                      rf"tools/list \d+ ms{PERF}")


def critical(reason: str) -> re.Pattern:
    return re.compile(rf"LOOP MCP CRITICAL - {reason} \| time={NUM}s;;;0")


def test_legacy_sse_as_production_serves_it(inv, sse_server):
    run = inv("mcp-check", PUBLIC_URL=sse_server)
    assert run.code == 0, run
    assert ok_line(r"legacy HTTP\+SSE", "2025-11-25").fullmatch(run.line), run.line
    assert run.stderr == ""


def test_streamable_http_speaks_the_newest_revision_first(inv, streamable_server):
    run = inv("mcp-check", PUBLIC_URL=streamable_server)
    assert run.code == 0, run
    assert ok_line("Streamable HTTP", "2026-07-28").fullmatch(run.line), run.line


def test_pre_2026_streamable_server_gets_the_initialize_handshake(inv, handshake_server):
    run = inv("mcp-check", PUBLIC_URL=handshake_server)
    assert run.code == 0, run
    assert ok_line("Streamable HTTP", "2025-11-25").fullmatch(run.line), run.line


def test_unsupported_version_error_naming_older_versions_leads_to_initialize(inv, declines_modern_server):
    run = inv("mcp-check", PUBLIC_URL=declines_modern_server)
    assert run.code == 0, run
    assert ok_line("Streamable HTTP", "2025-11-25").fullmatch(run.line), run.line


def test_url_flag_replaces_public_url(inv, sse_server):
    run = inv("mcp-check", "--url", sse_server, PUBLIC_URL="http://127.0.0.1:9")
    assert run.code == 0, run


def test_json_output_reports_transport_version_server_tools_and_timings(inv, streamable_server):
    run = inv("mcp-check", "--json", PUBLIC_URL=streamable_server)
    report = json.loads(run.stdout)
    assert run.code == 0 and report["status"] == "OK" and report["exit_code"] == 0
    assert report["url"] == f"{streamable_server}/mcp"
    assert (report["transport"], report["protocol_version"]) == ("Streamable HTTP", "2026-07-28")
    assert (report["server_name"], report["server_version"], report["tools"]) == ("loop-test", "1.2.3", 2)
    assert "tools" in report["capabilities"]
    assert set(report["timings_ms"]) == {"handshake", "tools_list"}
    assert report["line"].startswith("LOOP MCP OK - ")


def test_quiet_prints_nothing_when_ok(inv, sse_server):
    run = inv("mcp-check", "--quiet", PUBLIC_URL=sse_server)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")


def test_oauth_without_token_checks_what_chatgpt_needs(inv, oauth_server):
    run = inv("mcp-check", "--json", PUBLIC_URL=oauth_server)
    report = json.loads(run.stdout)
    assert run.code == 0, run
    assert report["summary"] == (
        "sign-in required (HTTP 401 invalid_token (Authentication required)); set MCP_TOKEN to check the MCP "
        "handshake too; OAuth discovery ready for ChatGPT (authorization, token, registration, PKCE S256)")
    oauth = report["oauth"]
    assert oauth["resource_metadata"] == f"{oauth_server}/.well-known/oauth-protected-resource/mcp"
    assert oauth["issuer"] == oauth_server
    assert oauth["registration_endpoint"] == f"{oauth_server}/register"
    assert oauth["code_challenge_methods_supported"] == ["S256"]


def test_oauth_with_token_completes_the_handshake(inv, oauth_server):
    run = inv("mcp-check", PUBLIC_URL=oauth_server, MCP_TOKEN=TOKEN)
    assert run.code == 0, run
    assert ok_line("Streamable HTTP", "2026-07-28").fullmatch(run.line), run.line


def test_refused_token_is_critical_and_never_printed(inv, oauth_server):
    token = "wrong-" + TOKEN
    run = inv("mcp-check", PUBLIC_URL=oauth_server, MCP_TOKEN=token)
    assert run.code == 2
    assert critical(r"MCP_TOKEN was refused \(HTTP 401 invalid_token \(Authentication required\)\)").fullmatch(
        run.line), run.line
    assert token not in run.stdout + run.stderr


def test_authorization_server_without_client_registration_is_critical(inv, oauth_without_registration_server):
    run = inv("mcp-check", PUBLIC_URL=oauth_without_registration_server)
    assert run.code == 2
    assert critical(r"ChatGPT cannot sign in: no registration_endpoint \(dynamic client registration\)").fullmatch(
        run.line), run.line


def test_json_rpc_error_in_place_of_a_result_is_critical(inv, failing_tools_server):
    run = inv("mcp-check", PUBLIC_URL=failing_tools_server)
    assert run.code == 2
    assert critical("tools/list failed: JSON-RPC error -32603: tool registry unavailable").fullmatch(run.line)


def test_proxy_dropping_mcp_headers_is_named(inv, header_dropping_server):
    run = inv("mcp-check", PUBLIC_URL=header_dropping_server)
    assert run.code == 2
    assert critical(r"server/discover failed: JSON-RPC error -32020: mcp-method header does not match the request "
                    r"body's method \(is a proxy dropping MCP headers\?\)").fullmatch(run.line), run.line


def test_html_login_page_is_not_mcp(inv, broken_server):
    run = inv("mcp-check", PUBLIC_URL=f"{broken_server}/login")
    assert run.code == 2
    assert critical(r"POST /login/mcp: HTTP 200 \(HTML page 'Sign in'\), not MCP").fullmatch(run.line), run.line


def test_nginx_error_page_is_a_server_error(inv, broken_server):
    run = inv("mcp-check", PUBLIC_URL=f"{broken_server}/down")
    assert run.code == 2
    assert critical(r"POST /down/mcp: server error HTTP 502 \(nginx error page '502 Bad Gateway'\)").fullmatch(
        run.line), run.line


def test_no_mcp_at_all_lists_what_each_opening_got(inv, sse_server):
    run = inv("mcp-check", PUBLIC_URL=sse_server, MCP_PATH="/nothing")
    assert run.code == 2
    assert critical(
        r"not an MCP endpoint: server/discover HTTP 404, initialize HTTP 404, "
        r"GET HTTP 404 \(application/json '\{\"detail\":\"Not Found\"\}'\)").fullmatch(run.line), run.line


def test_stream_without_endpoint_event_fails_within_the_timeout(inv, broken_server):
    run = inv("mcp-check", PUBLIC_URL=f"{broken_server}/no-endpoint", CHECK_TIMEOUT="1")
    assert run.code == 2
    assert critical(r"GET /no-endpoint/mcp: no endpoint event on the SSE stream \(no answer within 1 s\)").fullmatch(
        run.line), run.line
    assert run.seconds < 5


def test_endpoint_event_but_no_reply_to_initialize_fails_within_the_timeout(inv, broken_server):
    run = inv("mcp-check", PUBLIC_URL=f"{broken_server}/mute", CHECK_TIMEOUT="1")
    assert run.code == 2
    assert critical(r"initialize: no reply on the SSE stream \(no answer within 1 s\)").fullmatch(run.line), run.line
    assert run.seconds < 5


def test_server_that_never_answers_fails_within_the_timeout(inv, hung_server):
    run = inv("mcp-check", PUBLIC_URL=hung_server, CHECK_TIMEOUT="1")
    assert run.code == 2
    assert critical(r"server/discover: no answer within 1 s").fullmatch(run.line), run.line
    assert run.seconds < 5


def test_the_deadline_bounds_the_whole_check(inv, hung_server):
    run = inv("mcp-check", PUBLIC_URL=hung_server, CHECK_TIMEOUT="5", CHECK_DEADLINE="1")
    assert run.code == 2
    assert critical(r"server/discover: no answer within 1 s").fullmatch(run.line), run.line
    assert run.seconds < 5


def test_connection_refused_is_critical_not_unknown(inv):
    run = inv("mcp-check", PUBLIC_URL="http://127.0.0.1:9")
    assert run.code == 2
    assert critical("server/discover: connection refused").fullmatch(run.line), run.line


def test_token_echoed_by_a_page_is_redacted(inv, broken_server):
    run = inv("mcp-check", PUBLIC_URL=f"{broken_server}/echo", MCP_TOKEN=TOKEN)
    json_run = inv("mcp-check", "--json", PUBLIC_URL=f"{broken_server}/echo", MCP_TOKEN=TOKEN)
    assert run.code == json_run.code == 2
    assert "you sent Bearer <redacted>" in run.line
    assert TOKEN not in run.stdout + run.stderr + json_run.stdout + json_run.stderr


def test_missing_public_url_is_unknown(inv):
    run = inv("mcp-check")
    assert run.code == 3
    assert run.line == "LOOP MCP UNKNOWN - PUBLIC_URL is not set (put it in .env or the environment; see .env.example)"


def test_bad_timeout_flag_is_unknown(inv, sse_server):
    run = inv("mcp-check", "--timeout", "soon", PUBLIC_URL=sse_server)
    assert run.code == 3
    assert run.line == ("LOOP MCP UNKNOWN - CHECK_TIMEOUT='soon' is invalid: "
                        "expected a number of seconds greater than 0")


def test_unknown_is_printed_even_when_quiet(inv):
    run = inv("mcp-check", "--quiet", PUBLIC_URL="ftp://example")
    assert run.code == 3
    assert run.line.startswith("LOOP MCP UNKNOWN - PUBLIC_URL='ftp://example' is invalid")
