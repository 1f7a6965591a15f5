"""Blue-green rebuild, rollback and rebuild-all end to end on the sandbox NAS, under load.

Each test leaves one healthy live color and a free lock behind (the `deployed` fixture
checks), so they can run in any order; the first one starts from an empty NAS on purpose.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import time

import pytest

from rig.load import Load
from rig.sandbox import (PROXY, APP_DIR, LOOPCTL_HOME, WORKSTATION, commit_all, commit_change, get, inv, inv_process,
                         reset_nas, serving, sh)
from .support import (SseClient, file_digests, first_time, lock_is_free, oauth_digests, read_until, running_api_colors,
                      stream_lines)

FAST = {"DEPLOY_VERIFY_SECONDS": "3"}


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def ensure_previous_release() -> None:
    """Make sure the idle color holds a kept, different release (so rollback has a target)."""
    color, commit = serving()
    idle = sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{other(color)}", check=False).stdout.strip()
    if not idle or idle.endswith(commit):
        commit_change(f"previous-{time.time()}")
        result = inv("rebuild", env=FAST)
        assert result.returncode == 0, result.stdout + result.stderr


def test_first_deploy_on_an_empty_nas_then_no_previous_release_to_roll_back_to(rig):
    reset_nas()
    not_installed = inv("rebuild")
    assert not_installed.returncode == 7 and "not installed: run `inv setup`" in not_installed.stderr
    assert inv("setup").returncode == 0
    first = inv("rebuild", env=FAST)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "live is nothing (none), building blue" in first.stdout
    color, commit = serving()
    assert color == "blue"

    started = sh("docker inspect -f '{{.State.StartedAt}}' loop-api-blue").stdout
    result = inv("rollback")
    assert result.returncode == 7
    assert result.stderr.strip() == "inv rollback: error: no previous release to roll back to"
    assert serving() == (color, commit)
    assert sh("docker inspect -f '{{.State.StartedAt}}' loop-api-blue").stdout == started
    assert lock_is_free()


def test_rebuild_under_load_has_zero_failed_requests_and_keeps_the_sse_stream(deployed):
    old_color, old_commit = serving()
    new_commit = commit_change(f"load-{time.time()}")
    stream = SseClient()
    stream.start()
    assert stream.connected.wait(10), "no SSE endpoint event"
    with Load(rate=65) as load:
        # A verification window of 5 s: long enough to tell the stream outlived it.
        lines = stream_lines(inv_process("rebuild", env={"DEPLOY_VERIFY_SECONDS": "5"}))
    output = "\n".join(line for _, line in lines)
    # Quiet by default: the steps and one summary line; Compose's and BuildKit's output stays in
    # the run log, and so do the summary's fields.
    assert len(lines) <= 20 and not re.search(r"^(#\d+ | Container |summary: )", output, re.M), output

    assert load.per_second >= 50, load.per_second
    assert load.failures == [], load.failures[:5]
    assert load.colors == {"blue", "green"}
    assert serving() == (other(old_color), new_commit)
    # The old color runs on as the warm standby, and the stream opened on it before the switch
    # outlived the reload and the verification window.
    assert running_api_colors() == ["blue", "green"]
    assert sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{old_color}").stdout.strip() == f"loop-api:{old_commit}"
    switched, kept = first_time(lines, "==> switching nginx"), first_time(lines, "stays up as the warm standby")
    assert kept - switched >= 4.5
    assert stream.ended_at is None, "the stream opened before the switch ended"

    assert re.search(rf"==> {old_commit} -> {new_commit} on {other(old_color)} in [\d.]+s", output)
    timings = (r"sync [\d.]+s  build [\d.]+s  healthy [\d.]+s  gate [\d.]+s  aux [\d.]+s  switch [\d.]+s  verify [\d.]+s  "
               r"tools 2->2")
    assert re.search(timings, output)


def test_rollback_under_load_takes_seconds_and_has_zero_failed_requests(deployed):
    ensure_previous_release()
    color, commit = serving()
    previous = sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{other(color)}").stdout.strip().split(":")[1]
    with Load(rate=65) as load:
        started = time.monotonic()
        result = inv("rollback", "--json")
        took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)  # the whole of stdout: one object
    assert (report["verb"], report["status"], report["exit"]) == ("rollback", "ok", 0), report
    assert report["color"] == other(color) and report["new"] == previous and report["timings"]["switch"] >= 0
    assert any(step["step"].startswith("switching nginx") for step in report["steps"]), report
    assert load.per_second >= 50 and load.failures == [], load.failures[:5]
    assert serving() == (other(color), previous)
    # Its gate found legacy HTTP+SSE; the verification after the switch opened that way first.
    assert sh(f"cat {LOOPCTL_HOME}/releases/{previous}/mcp-opening").stdout == "sse\n"
    assert running_api_colors() == ["blue", "green"]  # the release rolled back from is the standby now
    assert took < 15, took  # a switch to the warm standby: about 3 s here; the old script took ~30 s
    history = inv("releases").stdout
    assert re.search(rf"rollback\s+{previous}\s+{other(color)}", history)


def test_a_client_that_keeps_its_connection_alive_loses_no_request_to_a_reload(deployed):
    """Every switch reloads nginx, and a reload closes the connections kept alive between
    requests: a POST a client sends on one as it closes is lost (clients do not send a POST
    again). The proxy keeps none: its answers say `Connection: close`, so each request of a
    client (an MCP session's POSTs, DSM's proxy in front) opens a connection to a current worker."""
    reload = "docker exec loop-proxy nginx -q -c /etc/loop-nginx/nginx.conf -s reload"
    sh(reload)  # the configuration `inv setup` installed (the next switch would load it)
    time.sleep(0.3)
    connection = http.client.HTTPConnection(*PROXY, timeout=5)
    failures, answered = [], 0
    for _ in range(15):
        for _ in range(3):
            try:
                connection.request("POST", "/mcp/messages/?session_id=0", body=b"{}",
                                   headers={"Content-Type": "application/json"})
                connection.getresponse().read()
                answered += 1
            except (http.client.HTTPException, OSError) as error:
                failures.append(repr(error))
                connection.close()
        sh(reload)
        time.sleep(0.3)  # the old workers close what they kept alive
    assert failures == [] and answered == 45, failures[:3]


def test_rollback_to_an_older_kept_release_and_bad_targets(deployed):
    ensure_previous_release()
    oldest = sh(f"cut -f3 {LOOPCTL_HOME}/state/releases.tsv | head -n 1").stdout.strip()
    for _ in range(2):
        commit_change(f"more-{time.time()}")
        assert inv("rebuild", env=FAST).returncode == 0
    assert serving()[1] != oldest
    result = inv("rollback", "--to", oldest[:8])
    assert result.returncode == 0, result.stdout + result.stderr
    assert serving()[1] == oldest

    assert inv("rollback", "--to", "not-hex").returncode == 2
    unknown = inv("rollback", "--to", "0000dead")
    assert unknown.returncode == 7 and "no kept release matches '0000dead'" in unknown.stderr
    assert serving()[1] == oldest


def test_a_release_that_never_gets_healthy_leaves_the_old_one_serving(deployed):
    color, commit = serving()
    standby = sh(f"docker ps -a --filter name=^loop-api-{other(color)}$ --format '{{{{.Image}}}}'").stdout
    commit_change(f"broken-{time.time()}", health_status=500)
    with Load(rate=65) as load:
        result = inv("rebuild", env={"DEPLOY_HEALTH_TIMEOUT": "8"})
    commit_change(f"fixed-{time.time()}")
    assert result.returncode == 6, result.stdout
    assert f"loop-api-{other(color)} did not become healthy" in result.stderr
    output = result.stdout + result.stderr
    assert f"health checks of loop-api-{other(color)}:" in output and "last log lines" in output
    # The failed step's last lines, and where the rest is.
    assert re.search(r"^    \| ", result.stdout, re.M) and "the whole log: inv run-log --id " in result.stdout
    assert load.failures == [] and load.per_second >= 50
    assert serving() == (color, commit)
    # The other color is as it was: the warm standby (started again from its release), or nothing.
    assert sh(f"docker ps -a --filter name=^loop-api-{other(color)}$ --format '{{{{.Image}}}}'").stdout == standby
    assert lock_is_free()


def test_a_failing_build_shows_its_last_lines_and_json_says_which_step(deployed):
    color, commit = serving()
    dockerfile = WORKSTATION / "Dockerfile"
    before = dockerfile.read_text()
    dockerfile.write_text(before.replace("COPY api ./api", "RUN echo build-broken-here && exit 3\nCOPY api ./api"))
    try:
        commit_all("test: a build that fails")
        failed = inv("rebuild", "--json", env=FAST)
        shown = inv("rebuild", "--no-sync", env=FAST)
    finally:
        dockerfile.write_text(before)
        commit_all("test: the build fixed")
        inv("local-sync")  # the NAS checkout has the fix: a later --no-sync deploy can build it
    assert failed.returncode == 6 and shown.returncode == 6, failed.stdout + failed.stderr
    report = json.loads(failed.stdout)
    assert (report["status"], report["exit"]) == ("failed", 6), report
    assert report["failed_step"].startswith("deploy ") and "building" in report["failed_step"], report
    assert any("build-broken-here" in line for line in report["last_lines"]), report
    assert "the build failed" in report["error"] and report["run"], report
    # Without --json: the steps, then the build's last lines (so its own error), nothing else of it.
    tail = [line for line in shown.stdout.splitlines() if line.startswith("    | ")]
    assert 0 < len(tail) <= 20 and any("build-broken-here" in line for line in tail), shown.stdout
    assert len(shown.stdout.splitlines()) <= 30 and "the build failed" in shown.stderr, shown.stdout
    assert serving() == (color, commit) and lock_is_free()
    # The whole run log stays on the NAS, one verb away.
    run = re.search(r"inv run-log --id (\S+)", shown.stdout).group(1)
    log = inv("run-log", "--id", run)
    assert log.returncode == 0 and "build-broken-here" in log.stdout and len(log.stdout.splitlines()) > len(tail)
    assert inv("run-log", "--id", "../../etc/passwd").returncode == 2


def test_a_broken_nginx_config_means_no_switch(deployed):
    color, commit = serving()
    standby = sh(f"docker ps -a --filter name=^loop-api-{other(color)}$ --format '{{{{.Image}}}}'").stdout
    commit_change(f"nginx-{time.time()}")
    sh(f"echo 'this is not nginx;' >> {LOOPCTL_HOME}/deploy/nginx/nginx.conf")
    try:
        drifted = inv("rebuild", env=FAST)
        assert drifted.returncode == 7
        assert "deploy/nginx/nginx.conf differs" in drifted.stderr and "--allow-drift" in drifted.stderr
        with Load(rate=65) as load:
            result = inv("rebuild", "--allow-drift", env=FAST)
        assert result.returncode == 6, result.stdout
        assert "nginx -t failed: no switch" in result.stdout + result.stderr
        assert load.failures == []
        assert serving() == (color, commit)
        # The other color is as it was: the warm standby, or nothing (the new one was removed).
        assert sh(f"docker ps -a --filter name=^loop-api-{other(color)}$ --format '{{{{.Image}}}}'").stdout == standby
    finally:
        restored = inv("setup")  # checked below, so a failure above stays the one reported
    assert restored.returncode == 0, restored.stdout + restored.stderr


def test_a_second_rebuild_is_refused_at_once_with_the_holders_details(deployed):
    commit = commit_change(f"concurrent-{time.time()}")
    first = inv_process("rebuild", env=FAST)
    deadline = time.time() + 60
    # Until the deploy script holds the lock (prepare.sh holds it a moment before); read from its
    # note, since taking the lock to look could make the deploy's own preflight see it held.
    while not sh(f"cat {LOOPCTL_HOME}/state/deploy.lock.info", check=False).stdout.startswith("deploy by"):
        assert first.poll() is None, first.communicate()[0]
        assert time.time() < deadline
        time.sleep(0.1)
    started = time.monotonic()
    second = inv("rebuild", "--no-sync")
    assert time.monotonic() - started < 10
    assert second.returncode == 7
    assert re.search(rf"a deploy is already running: deploy by .+ since \S+Z \(commit {commit}, pid \d+\)",
                     second.stderr), second.stderr
    restart = inv("restart")
    assert restart.returncode == 7 and "a deploy is already running" in restart.stderr
    # The script's own lock, for a second deploy that slipped past the preflight check.
    direct = sh(f"{LOOPCTL_HOME}/scripts/deploy-blue-green.sh --commit {'0' * 40} --release /tmp", check=False)
    assert direct.returncode == 75 and "refused: deploy by" in direct.stderr
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert serving()[1] == commit


def rebuild_until_health_wait(label: str) -> tuple[subprocess.Popen, str, str]:
    """Start `inv rebuild` of a new commit and return once the NAS waits for the new color;
    fails if it never gets there (sync, build and start are well within 300 s on the sandbox)."""
    old_color, _ = serving()
    commit = commit_change(f"{label}-{time.time()}")
    process = inv_process("rebuild", env=FAST)
    read_until(process, "waiting for loop-api-", timeout=300)
    return process, old_color, commit


def wait_until_lock_is_free() -> None:
    deadline = time.time() + 90
    while not lock_is_free():
        assert time.time() < deadline, "the deploy never finished: the lock is still held"
        time.sleep(0.5)


def test_killing_the_ssh_client_mid_deploy_still_ends_in_one_serving_color(deployed):
    process, old_color, commit = rebuild_until_health_wait("killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until_lock_is_free()
    assert serving() == (other(old_color), commit)
    assert running_api_colors() == ["blue", "green"]  # the old one as the warm standby
    status, _, body = get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_rebuild_all_is_refused_without_yes_and_backs_up_the_keys_before_replacing_them(deployed):
    keys_before = oauth_digests()
    assert "keys/signing.pem" in keys_before and "oauth.db" in keys_before
    jwks_before = get_jwks()

    refused = inv("rebuild-all", "--no-sync")
    assert refused.returncode == 7 and "pass --yes" in refused.stderr
    assert oauth_digests() == keys_before

    result = inv("rebuild-all", "--yes", "--no-sync", env=FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    backup = re.search(r"the old OAuth keys are in (\S+) \(", result.stdout).group(1)
    assert backup.startswith(f"{LOOPCTL_HOME}/state/backups/oauth-")
    assert all(line in file_digests(backup) for line in keys_before.splitlines())
    assert sh(f"stat -c %a {backup}").stdout.strip() == "700"
    assert get_jwks() != jwks_before
    assert oauth_digests() != keys_before
    assert serving()
    assert re.search(r"rebuild-all\s+\w+", inv("releases").stdout)


def get_jwks() -> bytes:
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:8084/.well-known/jwks.json", timeout=5) as response:
        return response.read()


def test_old_release_images_are_pruned_but_live_and_previous_are_kept(deployed):
    keep_two = {"KEEP_RELEASES": "2", **FAST}
    assert inv("setup", env=keep_two).returncode == 0
    try:
        for _ in range(3):
            commit_change(f"prune-{time.time()}")
            assert inv("rebuild", env=keep_two).returncode == 0
        tags = {t for t in sh("docker image ls loop-api --format '{{.Tag}}'").stdout.split() if len(t) == 12}
        live = serving()[1]
        previous = sh("docker inspect -f '{{.Config.Image}}' loop-api-blue loop-api-green").stdout.split()
        assert {live} | {image.split(":")[1] for image in previous} <= tags
        assert len(tags) <= 3, tags
    finally:
        restored = inv("setup")  # checked below, so a failure above stays the one reported
    assert restored.returncode == 0, restored.stdout + restored.stderr


@pytest.mark.parametrize("verb", ["rebuild", "rollback", "rebuild-all"])
def test_dry_run_shows_the_script_it_would_run_and_changes_nothing(deployed, verb):
    before = sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout, serving()
    result = inv("--dry", verb, "--no-sync" if verb != "rollback" else "--to=abcd")
    assert result.returncode == 0, result.stderr
    script = "deploy-blue-green" if verb == "rebuild" else verb
    assert f"{LOOPCTL_HOME}/scripts/detach.sh {script} --performer" in result.stdout
    assert (sh(f"cat {LOOPCTL_HOME}/state/releases.tsv").stdout, serving()) == before


def test_local_sync_of_rebuild_is_shown_by_dry_run(deployed):
    result = inv("--dry", "rebuild")
    assert "[local] git -C" in result.stdout and " push --porcelain origin" in result.stdout
    assert f"-C {APP_DIR} merge --ff-only origin/main" in result.stdout
    assert "-c core.hooksPath=/dev/null" in result.stdout


def test_ctrl_c_during_rebuild_returns_at_once_and_the_deploy_finishes_on_the_nas(deployed):
    process, old_color, commit = rebuild_until_health_wait("ctrl-c")
    interrupted_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert time.monotonic() - interrupted_at < 3
    assert process.returncode == 130
    assert "goes on on the NAS without this terminal" in rest and "Traceback" not in rest
    record = json.loads(sh(f"tail -n 1 {LOOPCTL_HOME}/state/audit.jsonl").stdout)
    assert record["verb"] == "rebuild" and record["status"] == 130
    wait_until_lock_is_free()
    assert serving() == (other(old_color), commit)
