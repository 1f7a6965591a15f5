"""The everyday verbs end to end over SSH with sudo-by-password: status, logs, restart, stop,
config, audit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

from .conftest import running
from rig.sandbox import LOCKFILE, LOOPCTL_HOME, RIG_STATE, inv, inv_process, serving, sh, sudo_password
from .support import lock_is_free, read_until


def test_status_table_and_json(deployed):
    color, commit = serving()
    result = inv("status")
    assert result.returncode == 0, result.stderr
    assert f"live       {color}  commit {commit}" in result.stdout
    assert "scripts    in sync" in result.stdout
    assert "deploy     idle" in result.stdout
    assert re.search(rf"^loop-api-{color} \* +running +healthy +loop-api:{commit} +\d+m \d+s +\d+$", result.stdout,
                     re.MULTILINE), result.stdout

    report = json.loads(inv("status", "--json").stdout)
    assert report["live_color"] == color and report["deployed_commit"] == commit
    assert report["scripts"] == {"files": report["scripts"]["files"], "missing": [], "changed": []}
    by_name = {c["name"]: c for c in report["containers"]}
    assert by_name[f"loop-api-{color}"]["health"] == "healthy"
    assert by_name["loop-proxy"]["state"] == "running" and by_name["loop-proxy"]["uptime"]
    assert len(report["checkout_commit"]) == 40


def test_logs_default_tail_since_service_and_color(deployed):
    color, _ = serving()
    sh(f"docker exec loop-api-{color} true")
    for _ in range(3):
        serving()
    default = inv("logs")
    assert default.returncode == 0, default.stderr
    assert "GET /health" in default.stdout
    assert len(default.stdout.splitlines()) <= 50

    assert len(inv("logs", "--tail", "2").stdout.splitlines()) == 2
    assert inv("logs", "--since", "1s", "--tail", "1000").returncode == 0
    proxy = inv("logs", "--service", "proxy", "--tail", "5")
    assert proxy.returncode == 0 and '"GET /health HTTP/1.1" 200' in proxy.stdout
    other = "green" if color == "blue" else "blue"
    assert inv("logs", "--color", color, "--tail", "1").returncode == 0
    assert inv("logs", "--service", "auth", "--tail", "1").returncode == 0

    bad = inv("logs", "--tail", "many")
    assert bad.returncode == 2 and bad.stderr == "inv logs: error: --tail takes a whole number (0 or more), not 'many'\n"
    bad = inv("restart", "--timeout", "soon")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    bad = inv("logs", "--service", "db")
    assert bad.returncode == 2 and "--service must be one of api, auth, proxy" in bad.stderr
    bad = inv("logs", "--since", "yesterday")
    assert bad.returncode == 2 and "--since takes a duration" in bad.stderr
    bad = inv("logs", "--service", "proxy", "--color", other)
    assert bad.returncode == 2


def test_logs_follow_streams_and_ctrl_c_ends_it_cleanly_on_both_sides(deployed):
    process = inv_process("logs", "--follow", "--tail", "1")
    # The api logs every request (Docker's health check asks each second): the first such line
    # says the remote `docker logs` runs; one more after a request through the proxy, that it streams.
    seen = read_until(process, "GET /health", timeout=30)
    serving()
    seen += read_until(process, "GET /health", timeout=30)
    assert sh("pgrep -f 'docker logs --tail 1 --follow'", check=False).returncode == 0
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    output = "\n".join(seen) + "\n" + rest
    assert process.returncode == 0, output
    assert "stopped following" in output and "Traceback" not in output
    deadline = time.time() + 10
    while sh("pgrep -f 'docker logs --tail 1 --follow'", check=False).returncode == 0:
        assert time.time() < deadline, "the remote docker logs kept running"
        time.sleep(0.2)


def started_at(name: str) -> str:
    return sh(f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}").stdout


def test_restart_waits_for_healthy_and_leaves_an_audit_record(deployed):
    color, commit = serving()
    before = started_at(f"loop-api-{color}")
    result = inv("restart")
    assert result.returncode == 0, result.stderr
    # Through the NAS script, detached as every change, with its run log.
    assert re.search(r"restart runs on the NAS as \S+-restart-\d+ ", result.stdout), result.stdout
    assert f"restarting loop-api-{color}" in result.stdout
    assert f"loop-api-{color}: healthy" in result.stdout
    assert started_at(f"loop-api-{color}") != before
    assert sh(f"docker inspect -f '{{{{.State.Health.Status}}}}' loop-api-{color}").stdout.strip() == "healthy"
    assert serving() == (color, commit)

    nas_record = json.loads(sh(f"tail -n 1 {LOOPCTL_HOME}/state/audit.jsonl").stdout)
    local_record = json.loads((RIG_STATE / "audit.jsonl").read_text().splitlines()[-1])
    assert nas_record == local_record
    assert nas_record["verb"] == "restart" and nas_record["status"] == 0
    assert nas_record["host"] == "nas@127.0.0.1:2222" and nas_record["seconds"] > 0
    assert nas_record["performer"]

    shown = inv("audit", "--lines", "1")
    assert "restart" in shown.stdout and "ok" in shown.stdout


def test_restart_is_refused_while_a_change_holds_the_lock(deployed):
    color, _ = serving()
    before = started_at(f"loop-api-{color}")
    # Its own session, so killing it ends the sleep that inherits the lock too.
    holder = subprocess.Popen(["flock", LOCKFILE, "sleep", "120"], start_new_session=True)
    try:
        deadline = time.time() + 10
        while lock_is_free():
            assert time.time() < deadline, "the test could not take the lock"
            time.sleep(0.1)
        result = inv("restart")
        assert result.returncode == 7, result.stdout + result.stderr
        assert "a deploy is already running" in result.stderr and result.stderr.count("\n") == 1
        # The script's own lock, for a restart that slipped past the preflight check.
        direct = sh(f"{LOOPCTL_HOME}/scripts/detach.sh restart --health-timeout 30", check=False)
        assert direct.returncode == 75, direct.stdout + direct.stderr
        assert "ERROR: refused: " in direct.stdout
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    assert started_at(f"loop-api-{color}") == before


def test_restart_repairs_a_change_cut_short_first(deployed):
    """The journal a killed change left (here a rebuild-all killed before its backup, which had
    changed nothing) is dealt with before the restart, as a deploy would."""
    sh(f"printf 'op=rebuild-all\\nstep=backup\\n' > {LOOPCTL_HOME}/state/journal")
    try:
        result = inv("restart")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "the last rebuild-all was cut short at step 'backup'" in result.stderr + result.stdout
        assert sh(f"test -e {LOOPCTL_HOME}/state/journal", check=False).returncode != 0
    finally:
        sh(f"rm -f {LOOPCTL_HOME}/state/journal")


def test_stop_says_how_to_come_back_and_restart_brings_it_back(deployed):
    color, _ = serving()
    result = inv("stop")
    assert result.returncode == 0, result.stderr
    assert "inv restart" in result.stdout
    assert not running(f"loop-api-{color}")
    assert json.loads(sh(f"tail -n 1 {LOOPCTL_HOME}/state/audit.jsonl").stdout)["verb"] == "stop"
    back = inv("restart")
    assert back.returncode == 0, back.stderr
    assert serving()[0] == color


def test_failed_verb_is_recorded_with_its_exit_status(deployed):
    result = inv("restart", env={"NAS_SUDO_PASSWORD": "wrong"})
    assert result.returncode == 4
    local_record = json.loads((RIG_STATE / "audit.jsonl").read_text().splitlines()[-1])
    assert local_record["verb"] == "restart" and local_record["status"] == 4


def test_config_shows_sources_and_never_the_password(rig):
    result = inv("config")
    assert result.returncode == 0
    assert re.search(r"^NAS_SUDO_PASSWORD +\(set, redacted\)  \[.*nas.env\]$", result.stdout, re.MULTILINE)
    assert sudo_password() not in result.stdout
    assert re.search(r"^NAS_CONNECT_TIMEOUT +10.0  \[default\]$", result.stdout, re.MULTILINE)


def test_help_explains_every_flag(rig):
    for verb, flags in {"logs": ["--tail", "--follow", "--since", "--service", "--color"],
                        "rebuild": ["--no-sync", "--allow-drift"], "rollback": ["--to"],
                        "rebuild-all": ["--yes"], "status": ["--json"]}.items():
        text = inv("--help", verb).stdout
        for flag in flags:
            line = next(line for line in text.splitlines() if flag in line)
            assert len(line.split(flag, 1)[1].strip()) > 10, f"{verb} {flag} has no help"


def test_health_and_mcp_check_through_the_sandbox_proxy(deployed):
    """The production shape: nginx in front, legacy HTTP+SSE at /mcp, auth's JWKS."""
    health = inv("health", "--no-alert")
    assert health.returncode == 0, health.stdout
    assert re.fullmatch(r"LOOP OK - /health 200 in \d+ ms; JWKS 1 key \| time=\S+ jwks_keys=1;;;0\n", health.stdout)
    check = inv("mcp-check")
    assert check.returncode == 0, check.stdout
    assert check.stdout.startswith('LOOP MCP OK - legacy HTTP+SSE (deprecated since 2025-03-26), protocol 2025-11-25, server "loop", 2 tools;')
