"""Alerts from `inv health`: one per change of state, to a real local webhook and ping receiver."""

from __future__ import annotations

import json

SECRET = "tok-K9xq2-do-not-print"


def _hook(base: str) -> str:
    return f"{base}/hook/{SECRET}"


def _no_secret(tmp_path, *runs) -> None:
    state = (tmp_path / "state.json").read_text()
    for text in [state, *(r.stdout + r.stderr for r in runs)]:
        assert SECRET not in text


def test_exactly_one_alert_per_transition(inv, health_server, receiver, tmp_path):
    base, behaviour = health_server
    hook_base, got = receiver
    settings = {"PUBLIC_URL": base, "ALERT_WEBHOOK_URL": _hook(hook_base)}
    runs = [inv("health", "--quiet", **settings), inv("health", "--quiet", **settings)]
    assert [r.code for r in runs] == [0, 0] and got.received == []

    behaviour.mode = "down"
    runs += [inv("health", "--quiet", **settings), inv("health", "--quiet", **settings)]
    assert [r.code for r in runs[2:]] == [2, 2]
    assert len(got.received) == 1

    behaviour.mode = "ok"
    runs += [inv("health", "--quiet", **settings), inv("health", "--quiet", **settings)]
    assert [r.code for r in runs[4:]] == [0, 0]

    alerts = [json.loads(r.body) for r in got.received]
    assert [(a["status"], a["previous"]) for a in alerts] == [("CRITICAL", "OK"), ("OK", "CRITICAL")]
    assert alerts[0]["summary"] == "/health: HTTP 502 (nginx error page '502 Bad Gateway')"
    assert alerts[0]["line"] == "LOOP CRITICAL - /health: HTTP 502 (nginx error page '502 Bad Gateway')"
    assert alerts[0]["url"] == base and alerts[0]["service"] == "LOOP"
    assert {r.path for r in got.received} == {f"/hook/{SECRET}"}
    assert all(r.headers["content-type"] == "application/json" for r in got.received)
    assert [r.stdout for r in runs] == ["", "", runs[2].stdout, runs[3].stdout, "", ""]
    _no_secret(tmp_path, *runs)


def test_state_file_remembers_status_and_since(inv, health_server, tmp_path):
    base, behaviour = health_server
    behaviour.mode = "degraded"
    inv("health", PUBLIC_URL=base)
    first = json.loads((tmp_path / "state.json").read_text())
    inv("health", PUBLIC_URL=base)
    second = json.loads((tmp_path / "state.json").read_text())
    assert first["status"] == second["status"] == "CRITICAL"
    assert second["since"] == first["since"]
    assert second["summary"] == "/health: HTTP 200 but status is 'degraded', expected 'ok'"
    assert second["alerted"] == "CRITICAL"  # no webhook configured: nothing left to deliver


def test_first_run_in_trouble_alerts(inv, health_server, receiver):
    base, behaviour = health_server
    hook_base, got = receiver
    behaviour.delay = 0.3
    run = inv("health", PUBLIC_URL=base, ALERT_WEBHOOK_URL=_hook(hook_base), HEALTH_WARN_SECONDS="0.2")
    assert run.code == 1
    assert [(json.loads(r.body)["status"], json.loads(r.body)["previous"]) for r in got.received] == [
        ("WARNING", "OK")]


def test_failed_delivery_goes_to_stderr_and_is_retried_next_run(inv, health_server, receiver, tmp_path):
    base, behaviour = health_server
    hook_base, got = receiver
    settings = {"PUBLIC_URL": base, "ALERT_WEBHOOK_URL": _hook(hook_base)}
    behaviour.mode = "down"
    got.failing = True
    failed = inv("health", "--quiet", **settings)
    assert failed.code == 2
    assert failed.line == "LOOP CRITICAL - /health: HTTP 502 (nginx error page '502 Bad Gateway')"
    assert failed.stderr == "loopctl: alert webhook failed (HTTP 500); it is retried on the next run\n"

    got.failing = False
    retried = inv("health", "--quiet", **settings)
    settled = inv("health", "--quiet", **settings)
    assert (retried.code, retried.stderr, settled.stderr) == (2, "", "")
    assert [json.loads(r.body)["status"] for r in got.received] == ["CRITICAL", "CRITICAL"]
    _no_secret(tmp_path, failed, retried, settled)


def test_unreachable_webhook_never_changes_the_verdict(inv, health_server, tmp_path):
    base, _ = health_server
    run = inv("health", "--quiet", PUBLIC_URL=base, HEALTH_EXPECT="status=down",
              ALERT_WEBHOOK_URL=f"http://127.0.0.1:9/hook/{SECRET}")
    assert run.code == 2
    assert run.line == "LOOP CRITICAL - /health: HTTP 200 but status is 'ok', expected 'down'"
    assert run.stderr == "loopctl: alert webhook failed (connection refused); it is retried on the next run\n"
    _no_secret(tmp_path, run)


def test_text_alerts_for_ntfy_style_services(inv, health_server, receiver):
    base, behaviour = health_server
    hook_base, got = receiver
    behaviour.mode = "login"
    inv("health", PUBLIC_URL=base, ALERT_WEBHOOK_URL=_hook(hook_base), ALERT_WEBHOOK_FORMAT="text")
    [alert] = got.received
    assert alert.body == "LOOP CRITICAL - /health: HTTP 200 but the body is not JSON (HTML page 'Sign in')"
    assert alert.headers["content-type"] == "text/plain; charset=utf-8"
    assert (alert.headers["title"], alert.headers["priority"], alert.headers["tags"]) == (
        "LOOP CRITICAL (was OK)", "urgent", "rotating_light")


def test_ping_url_gets_success_and_fail_on_every_run(inv, health_server, receiver):
    base, behaviour = health_server
    hook_base, got = receiver
    ping = f"{hook_base}/ping/{SECRET}"
    runs = [inv("health", PUBLIC_URL=base, HEALTHCHECK_PING_URL=ping)]
    behaviour.mode = "down"
    runs += [inv("health", PUBLIC_URL=base, HEALTHCHECK_PING_URL=ping) for _ in range(2)]
    assert [r.path for r in got.received] == [f"/ping/{SECRET}", f"/ping/{SECRET}/fail", f"/ping/{SECRET}/fail"]
    assert got.received[1].body == runs[1].line
    assert all(SECRET not in r.stdout + r.stderr for r in runs)


def test_no_alert_leaves_state_and_sends_nothing(inv, health_server, receiver, tmp_path):
    base, behaviour = health_server
    hook_base, got = receiver
    behaviour.mode = "down"
    run = inv("health", "--no-alert", PUBLIC_URL=base, ALERT_WEBHOOK_URL=_hook(hook_base),
              HEALTHCHECK_PING_URL=f"{hook_base}/ping/x")
    assert run.code == 2
    assert got.received == [] and not (tmp_path / "state.json").exists()


def test_json_output_tells_what_alerting_did(inv, health_server, receiver):
    base, behaviour = health_server
    hook_base, _ = receiver
    behaviour.mode = "down"
    report = json.loads(inv("health", "--json", PUBLIC_URL=base, ALERT_WEBHOOK_URL=_hook(hook_base)).stdout)
    assert report["alerting"] == {"previous": None, "alert": "sent"}
