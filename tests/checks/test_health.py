"""`inv health` end to end: the endpoint, the JWKS, the certificate, thresholds and exit codes."""

from __future__ import annotations

import json
import re

import pytest

NUM = r"\d+(?:\.\d+)?"
TIME = rf"time={NUM}s;1;3;0"


def test_healthy_app_is_ok_with_perfdata(inv, health_server):
    base, _ = health_server
    run = inv("health", PUBLIC_URL=base)
    assert run.code == 0, run
    assert re.fullmatch(rf"LOOP OK - /health 200 in \d+ ms \| {TIME}", run.line), run.line
    assert run.stderr == ""


# loopctl's proxy marks what the standby answered because the live color is down; only a color
# and a commit that look like one are named. headers, body fields: the warning's start.
FALLBACKS = {
    "named": ({"X-Loop-Fallback": "standby", "X-Loop-Color": "green"}, {"commit": "0123456789abcdef"},
              "LOOP WARNING - the warm standby (green, commit 0123456789ab) answers: the live release is down; "
              "`inv rollback` makes the standby live"),
    "unchecked": ({"X-Loop-Fallback": "standby", "X-Loop-Color": "purple; rm -rf"}, {"commit": "not a commit"},
                  "LOOP WARNING - the warm standby answers: the live release is down"),
}


@pytest.mark.parametrize("case", FALLBACKS)
def test_the_warm_standby_answering_for_the_live_release_is_a_warning(inv, health_server, case):
    base, behaviour = health_server
    behaviour.headers, behaviour.extra, start = FALLBACKS[case]
    run = inv("health", PUBLIC_URL=base)
    assert run.code == 1, run
    assert run.line.startswith(start), run.line
    assert re.search(TIME, run.line), run.line


def test_a_fallback_header_of_another_value_is_no_warning(inv, health_server):
    base, behaviour = health_server
    behaviour.headers = {"X-Loop-Fallback": "something else"}
    assert inv("health", PUBLIC_URL=base).code == 0


def test_quiet_prints_nothing_when_ok(inv, health_server):
    base, _ = health_server
    run = inv("health", "--quiet", PUBLIC_URL=base)
    assert (run.code, run.stdout, run.stderr) == (0, "", "")


def test_slow_answer_is_warning(inv, health_server):
    base, behaviour = health_server
    behaviour.delay = 0.3
    run = inv("health", "--quiet", PUBLIC_URL=base, HEALTH_WARN_SECONDS="0.2", HEALTH_CRIT_SECONDS="2")
    assert run.code == 1
    assert re.fullmatch(rf"LOOP WARNING - /health 200 in \d+ ms \(slower than 0.2 s\) \| time={NUM}s;0.2;2;0",
                        run.line), run.line


def test_very_slow_answer_is_critical(inv, health_server):
    base, behaviour = health_server
    behaviour.delay = 0.3
    run = inv("health", PUBLIC_URL=base, HEALTH_WARN_SECONDS="0.1", HEALTH_CRIT_SECONDS="0.2")
    assert run.code == 2
    assert re.fullmatch(rf"LOOP CRITICAL - /health 200 in \d+ ms \(slower than 0.2 s\) \| time={NUM}s;0.1;0.2;0",
                        run.line), run.line


@pytest.mark.parametrize("mode, line", [
    ("degraded", "LOOP CRITICAL - /health: HTTP 200 but status is 'degraded', expected 'ok'"),
    ("login", "LOOP CRITICAL - /health: HTTP 200 but the body is not JSON (HTML page 'Sign in')"),
    ("down", "LOOP CRITICAL - /health: HTTP 502 (nginx error page '502 Bad Gateway')"),
])
def test_wrong_answers_are_critical(inv, health_server, mode, line):
    base, behaviour = health_server
    behaviour.mode = mode
    run = inv("health", PUBLIC_URL=base)
    assert (run.code, run.line) == (2, line)


def test_expectation_is_configurable(inv, health_server):
    base, behaviour = health_server
    behaviour.mode = "degraded"
    assert inv("health", PUBLIC_URL=base, HEALTH_EXPECT="version=4.1").code == 0
    assert inv("health", PUBLIC_URL=base, HEALTH_EXPECT="").code == 0


def test_transient_failures_are_retried_with_backoff(inv, health_server):
    base, behaviour = health_server
    behaviour.failures_left = 2
    run = inv("health", "--retries", "2", PUBLIC_URL=base)
    assert run.code == 0, run
    assert re.fullmatch(rf"LOOP OK - /health 200 in \d+ ms after 2 retries \| {TIME}", run.line), run.line
    assert behaviour.requests == 3
    assert run.seconds > 1.5  # waited 0.5 s, then 1 s


def test_failure_outlasting_the_retries_is_critical(inv, health_server):
    base, behaviour = health_server
    behaviour.failures_left = 5
    run = inv("health", PUBLIC_URL=base, CHECK_RETRIES="1")
    assert run.code == 2
    assert run.line == ("LOOP CRITICAL - /health: HTTP 503 (application/json '{\"status\":\"starting\"}') "
                        "after 1 retry")
    assert behaviour.requests == 2


def test_connection_refused_is_critical(inv):
    run = inv("health", PUBLIC_URL="http://127.0.0.1:9")
    assert (run.code, run.line) == (2, "LOOP CRITICAL - /health: connection refused")


def test_hung_server_is_critical_within_the_timeout(inv, hung_server):
    run = inv("health", PUBLIC_URL=hung_server, CHECK_TIMEOUT="1")
    assert (run.code, run.line) == (2, "LOOP CRITICAL - /health: no answer within 1 s")
    assert run.seconds < 5


def test_jwks_with_keys_is_ok(inv, health_server):
    base, _ = health_server
    run = inv("health", PUBLIC_URL=base, JWKS_URL=f"{base}/jwks")
    assert run.code == 0
    assert re.fullmatch(rf"LOOP OK - /health 200 in \d+ ms; JWKS 1 key \| {TIME} jwks_keys=1;;;0", run.line), run.line


def test_empty_jwks_is_critical_even_when_the_app_is_fine(inv, health_server):
    base, _ = health_server
    run = inv("health", PUBLIC_URL=base, JWKS_URL=f"{base}/empty-jwks")
    assert run.code == 2
    assert re.fullmatch(rf"LOOP CRITICAL - JWKS: the key set is empty \| {TIME}", run.line), run.line


def test_json_output(inv, health_server):
    base, _ = health_server
    run = inv("health", "--json", "--no-alert", PUBLIC_URL=base, JWKS_URL=f"{base}/jwks")
    report = json.loads(run.stdout)
    assert run.code == report["exit_code"] == 0
    assert report["service"] == "LOOP" and report["status"] == "OK" and report["url"] == f"{base}/health"
    assert [f["status"] for f in report["findings"]] == ["OK", "OK"]
    assert report["perfdata"][1] == "jwks_keys=1;;;0"
    assert "alerting" not in report


@pytest.mark.parametrize("server, code, text, days", [
    ("tls_fresh", 0, r"LOOP OK - /health 200 in \d+ ms; certificate valid 90 days", 90),
    ("tls_expiring", 1, r"LOOP WARNING - certificate expires in 10 days \(\d{4}-\d\d-\d\d\)", 10),
    ("tls_nearly_expired", 2, r"LOOP CRITICAL - certificate expires in 1 day \(\d{4}-\d\d-\d\d\)", 1),
])
def test_certificate_days_left_against_thresholds(inv, request, server, code, text, days):
    base, ca = request.getfixturevalue(server)
    run = inv("health", PUBLIC_URL=base, CHECK_CA_BUNDLE=ca)
    assert run.code == code, run
    assert re.fullmatch(rf"{text} \| {TIME} cert_days={days};14:;3:;0", run.line), run.line


def test_untrusted_certificate_is_critical(inv, tls_self_signed):
    base, _ = tls_self_signed
    run = inv("health", PUBLIC_URL=base)
    assert (run.code, run.line) == (2, "LOOP CRITICAL - /health: TLS certificate not trusted: self-signed certificate")


def test_certificate_from_another_ca_is_critical(inv, tls_self_signed, tls_fresh):
    base, _ = tls_self_signed
    _, other_ca = tls_fresh
    run = inv("health", PUBLIC_URL=base, CHECK_CA_BUNDLE=other_ca)
    assert (run.code, run.line) == (2, "LOOP CRITICAL - /health: TLS certificate not trusted: self-signed certificate")


def test_missing_ca_bundle_is_unknown(inv, tls_fresh, tmp_path):
    base, _ = tls_fresh
    run = inv("health", PUBLIC_URL=base, CHECK_CA_BUNDLE=str(tmp_path / "nope.pem"))
    assert (run.code, run.line) == (3, f"LOOP UNKNOWN - CHECK_CA_BUNDLE='{tmp_path / 'nope.pem'}' is not a file")


def test_bad_settings_are_unknown(inv, health_server):
    base, _ = health_server
    assert inv("health").line.startswith("LOOP UNKNOWN - PUBLIC_URL is not set")
    run = inv("health", PUBLIC_URL=base, HEALTH_EXPECT="ok")
    assert (run.code, run.line) == (
        3, "LOOP UNKNOWN - HEALTH_EXPECT='ok' is invalid: expected key=value, e.g. status=ok")
    run = inv("health", "--retries", "many", PUBLIC_URL=base)
    assert (run.code, run.line) == (
        3, "LOOP UNKNOWN - CHECK_RETRIES='many' is invalid: expected a whole number (0 or more)")
    run = inv("health", PUBLIC_URL=base, HEALTH_WARN_SECONDS="5")
    assert (run.code, run.line) == (3, "LOOP UNKNOWN - HEALTH_WARN_SECONDS must not be above HEALTH_CRIT_SECONDS")
