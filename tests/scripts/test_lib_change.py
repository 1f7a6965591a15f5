"""The decisions of a change's repair and undo (scripts/lib-change.sh), as table cases run with
bash and no Docker: repair_plan reads a journal a killed change left and says what its repair
is; undo_plan says which steps undo a change from how far it got. Each row is what the code
decides, for every step a deploy, a rollback and a rebuild-all write to the journal. Then
undo_change and recover_change are run against stand-ins for Docker and nginx, to show they do
what the plans say, in that order, with the change's failure accounting."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An installed layout of the NAS scripts: what they write (the journal, the app-live file)
    lands in it, never in the checkout."""
    home = tmp_path_factory.mktemp("nas") / "loopctl"
    (home / "scripts").mkdir(parents=True)
    for path in [*(REPO / "scripts").glob("lib*.sh"), REPO / "scripts" / "contract.env"]:
        shutil.copy(path, home / "scripts")
    (home / "state").mkdir()
    return home


def bash(home: Path, script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`script` run after lib.sh and lib-change.sh, with a change script's shell options; `args`
    are its "$@"."""
    libraries = f'. "{home}/scripts/lib.sh" && . "{home}/scripts/lib-change.sh"'
    return subprocess.run(["bash", "-c", f"set -Eeuo pipefail; {libraries}; {script}", "test", *args], input=stdin,
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


# --- repair_plan: the journal of a killed change, and its repair ------------------------------

def repair_plan(home: Path, journal: str) -> dict[str, str]:
    done = bash(home, "repair_plan", stdin=journal)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


# The journals as the scripts write them (`journal` then `journal_set`: a set field moves last).
DEPLOY = "op=deploy\ncommit=0123456789ab\nlive=blue\ntarget=green\n"
TAKEOVER = "op=deploy\ncommit=0123456789ab\nlive=app\ntarget=blue\n"
ROLLBACK = "op=rollback\ncommit=ba9876543210\nlive=green\ntarget=blue\n"
ROLLBACK_TO_APP = "op=rollback\nlive=blue\ntarget=app\n"
REBUILD_ALL = "op=rebuild-all\ncommit=0123456789ab\ntarget=blue\n"

# (journal, (repair, switched, aux_changed)). Steps: deploy-blue-green.sh and lib-change.sh write
# build start health gate aux switch verify committed; rollback.sh start health (or oauth, back to
# the app's own container) switch, then verify committed; rebuild-all.sh build replace.
REPAIRS = {
    "deploy killed in its build: undone": (DEPLOY + "step=build\n", ("undo", "0", "0")),
    "deploy killed creating its color: undone": (DEPLOY + "brought=created\nstep=start\n", ("undo", "0", "0")),
    "deploy killed waiting for health: undone": (DEPLOY + "brought=created\nstep=health\n", ("undo", "0", "0")),
    "deploy killed in the MCP gate: undone": (DEPLOY + "brought=created\nstep=gate\n", ("undo", "0", "0")),
    "deploy killed updating the other services: undone, them too": (DEPLOY + "step=aux\n", ("undo", "0", "1")),
    "deploy killed at the switch: undone, traffic and other services back": (DEPLOY + "step=switch\n", ("undo", "1", "1")),
    "deploy killed verifying: undone, traffic and other services back": (DEPLOY + "step=verify\n", ("undo", "1", "1")),
    "deploy killed after its commit: only the bookkeeping": (DEPLOY + "step=committed\n", ("bookkeeping", "0", "0")),
    "takeover killed at the switch: undone, the port back": (TAKEOVER + "step=switch\n", ("undo", "1", "1")),
    "deploy with no step yet: undone": (DEPLOY, ("undo", "0", "0")),
    "rollback killed starting its color: undone": (ROLLBACK + "brought=started\nstep=start\n", ("undo", "0", "0")),
    "rollback killed waiting for health: undone": (ROLLBACK + "step=health\n", ("undo", "0", "0")),
    "rollback killed at the switch: undone, no other services to put back": (ROLLBACK + "step=switch\n", ("undo", "1", "0")),
    "rollback killed verifying: undone, no other services to put back": (ROLLBACK + "step=verify\n", ("undo", "1", "0")),
    "rollback killed after its commit: only the bookkeeping": (ROLLBACK + "step=committed\n", ("bookkeeping", "0", "0")),
    "rollback to the app killed moving the OAuth state: undone": (ROLLBACK_TO_APP + "step=oauth\n", ("undo", "0", "0")),
    "rollback to the app killed at the switch: undone, the port back": (ROLLBACK_TO_APP + "step=switch\n", ("undo", "1", "0")),
    "rebuild-all killed in its build: nothing had changed": (REBUILD_ALL + "step=build\n", ("unchanged", "0", "0")),
    "rebuild-all killed replacing the stack: recreated": (REBUILD_ALL + "backup=/b/1\nstep=replace\n", ("recreate", "0", "0")),
    "rebuild-all at a deploy's step: nothing had changed": (REBUILD_ALL + "step=switch\n", ("unchanged", "0", "0")),
    "a journal without an op: nothing to repair": ("live=blue\ntarget=green\nstep=switch\n", ("none", "0", "0")),
    "an op no change writes: nothing to repair": ("op=restart\nstep=switch\n", ("none", "0", "0")),
    # What a garbled or half-written journal is read as.
    "a garbled step is ignored, the one before counts": (DEPLOY + "step=switch\nstep=comm itted\n", ("undo", "1", "1")),
    "a step with a carriage return is ignored": (DEPLOY + "step=verify\nstep=committed\r\n", ("undo", "1", "1")),
    "an unknown or capitalised field is ignored": (DEPLOY + "step=gate\nSTEP=verify\nphase=verify\n", ("undo", "0", "0")),
    "an indented field is ignored": (DEPLOY + "step=gate\n step=committed\n", ("undo", "0", "0")),
    "a last line cut before its newline is not read": (DEPLOY + "step=health\nstep=verify", ("undo", "0", "0")),
    "the last of a repeated step counts": (DEPLOY + "step=verify\nstep=health\n", ("undo", "0", "0")),
    "an emptied step counts as none": (DEPLOY + "step=verify\nstep=\n", ("undo", "0", "0")),
    "a garbled op is ignored": ("op=deploy\nop=roll back\nstep=aux\n", ("undo", "0", "1")),
    "an empty journal: nothing to repair": ("", ("none", "0", "0")),
}


@pytest.mark.parametrize("journal, expected", REPAIRS.values(), ids=REPAIRS.keys())
def test_repair_plan(home, journal, expected):
    plan = repair_plan(home, journal)
    assert (plan["repair"], plan["switched"], plan["aux_changed"]) == expected


def test_repair_plan_gives_every_field_and_drops_garbled_values(home):
    """recover_change reads every field from the plan: each is there, "" where the journal has
    none; a value with characters no field has is dropped."""
    journal = (DEPLOY + "images=loop-api:0123456789ab@none,loop-worker@sha256:" + "a" * 64 + "\n"
               "standby=fedcba987654\nbrought=created\npaused=loop-api-blue,loop-worker-1\n"
               "live=blue;rm -rf /\nbackup=$(reboot)\nstep=health\n")
    assert repair_plan(home, journal) == {
        "op": "deploy", "commit": "0123456789ab", "live": "blue", "target": "green", "step": "health",
        "brought": "created", "backup": "", "paused": "loop-api-blue,loop-worker-1",
        "images": "loop-api:0123456789ab@none,loop-worker@sha256:" + "a" * 64, "standby": "fedcba987654",
        "repair": "undo", "switched": "0", "aux_changed": "0"}


# --- undo_plan: the steps that undo a change -------------------------------------------------

# (live, target, switched, brought_up, retired) -> the steps, in order.
UNDOS = {
    "deploy before it created its color: only the other services": (("blue", "green", "0", "", ""), ["restore-aux"]),
    "deploy with its color created: removed": (
        ("blue", "green", "0", "created", ""), ["remove green", "restore-aux", "undone blue"]),
    "deploy that replaced the standby: removed, the standby back": (
        ("blue", "green", "0", "created", "fedcba987654"),
        ["remove green", "restore-aux", "restore-standby", "undone blue"]),
    "deploy switched: nginx back, its color removed": (
        ("blue", "green", "1", "created", ""), ["switch-back blue", "remove green", "restore-aux", "undone blue"]),
    "deploy switched that replaced the standby: the standby back last": (
        ("green", "blue", "1", "created", "fedcba987654"),
        ["switch-back green", "remove blue", "restore-aux", "restore-standby", "undone green"]),
    "first deploy switched: no color to switch back to, nothing said": (
        ("", "blue", "1", "created", ""), ["remove blue", "restore-aux"]),
    "first deploy with a standby noted: no standby back without a live color": (
        ("", "blue", "0", "created", "fedcba987654"), ["remove blue", "restore-aux"]),
    "takeover switched: the port back to the app's own container": (
        ("app", "blue", "1", "created", ""), ["port-to-app", "remove blue", "restore-aux", "undone app"]),
    "takeover before the switch: its color removed, the port untouched": (
        ("app", "blue", "0", "created", "fedcba987654"), ["remove blue", "restore-aux", "undone app"]),
    "rollback to the app switched: the port back to the proxy": (
        ("blue", "app", "1", "", ""), ["port-to-proxy", "restore-aux", "undone blue"]),
    "rollback to the app before the switch: only the other services": (("blue", "app", "0", "", ""), ["restore-aux"]),
    "the app's own container is never removed": (
        ("blue", "app", "1", "created", "fedcba987654"), ["port-to-proxy", "restore-aux", "undone blue"]),
    "rollback that started a kept color: stopped again": (
        ("green", "blue", "0", "started", ""), ["stop blue", "restore-aux", "undone green"]),
    "rollback that started a kept color: the standby is not brought back": (
        ("green", "blue", "0", "started", "fedcba987654"), ["stop blue", "restore-aux", "undone green"]),
    "rollback switched to a kept color: nginx back, stopped again": (
        ("green", "blue", "1", "started", ""), ["switch-back green", "stop blue", "restore-aux", "undone green"]),
    "rollback switched to the running standby: nginx back only": (
        ("green", "blue", "1", "", ""), ["switch-back green", "restore-aux", "undone green"]),
    "rollback that recreated a release: removed, the standby back": (
        ("green", "blue", "0", "created", "fedcba987654"),
        ["remove blue", "restore-aux", "restore-standby", "undone green"]),
    "an unknown brought value stops the container": (
        ("blue", "green", "0", "kept", ""), ["stop green", "restore-aux", "undone blue"]),
    "a change that had done nothing (a failed restart)": (("", "", "0", "", ""), ["restore-aux"]),
}


@pytest.mark.parametrize("state, expected", UNDOS.values(), ids=UNDOS.keys())
def test_undo_plan(home, state, expected):
    done = bash(home, 'undo_plan "$@"', *state)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == expected


# --- the functions that act run what the plans say -------------------------------------------

# Docker, nginx and the parts of the undo that act, as functions that log their call (and
# fail where FAIL names them); `docker inspect` finds every container but the ones GONE names.
# The log is fd 3, the script's output, which the scripts' own redirections leave alone.
STAND_INS = r"""
exec 3>&1
log() { printf '%s\n' "$*" >&3; }
fails() { [[ " ${FAIL:-} " == *" $1 "* ]]; }
docker() { log "docker $*"; if [[ $1 == inspect ]]; then [[ " ${GONE:-} " != *" ${*: -1} "* ]]; else ! fails docker; fi; }
give_port_to_proxy() { log give_port_to_proxy; ! fails give_port_to_proxy; }
give_port_to_app() { log give_port_to_app; ! fails give_port_to_app; }
switch_to() { log "switch_to $*"; ! fails switch_to; }
color_port() { echo 8001; }
show_failure() { log "show_failure $1"; }
restore_aux() { log "restore_aux aux_changed=$aux_changed IMAGES=$IMAGES"; ! fails restore_aux; }
restore_standby() { log "restore_standby $RETIRED"; }
API_SERVICE=loop-api PROXY_PORT=8080 PROXY_CONTAINER=loop-proxy LEGACY_CONTAINER=loop-app-api
"""


def undo(home: Path, state: dict[str, str], fail: str = "", gone: str = "") -> tuple[int, list[str]]:
    """undo_change for the change's state: its exit status and its calls and warnings, in order."""
    assignments = " ".join(f"{name}='{value}'" for name, value in state.items())
    done = bash(home, f"{STAND_INS}\nFAIL='{fail}' GONE='{gone}' {assignments}\n"
                      "rc=0; undo_change 2>&1 || rc=$?; exit $rc")
    return done.returncode, done.stdout.splitlines()


SWITCHED_DEPLOY = {"live": "blue", "target": "green", "switched": "1", "brought_up": "created", "RETIRED": "fedcba987654"}


def test_undo_change_runs_the_plan_in_order(home):
    assert undo(home, SWITCHED_DEPLOY) == (0, [
        "WARNING: switching back to blue", 'switch_to blue  8001',
        "docker inspect -f {{.Id}} loop-api-green", "show_failure loop-api-green",
        "WARNING: removing loop-api-green", "docker rm -f loop-api-green",
        "restore_aux aux_changed=0 IMAGES=", "restore_standby fedcba987654",
        "WARNING: undone: blue is still serving"])


def test_a_failed_step_is_counted_and_the_rest_still_runs_but_the_standby_does_not_come_back(home):
    status, lines = undo(home, SWITCHED_DEPLOY, fail="switch_to")
    assert status == 1
    assert "WARNING: could not switch back to blue: check 'inv status'" in lines
    assert "docker rm -f loop-api-green" in lines and lines[-1].startswith("restore_aux")


def test_a_failed_removal_fails_the_undo(home):
    status, lines = undo(home, SWITCHED_DEPLOY, fail="docker")
    assert status == 1 and lines[-1].startswith("restore_aux")


def test_a_target_container_that_is_gone_is_not_removed(home):
    state = {**SWITCHED_DEPLOY, "switched": "0", "brought_up": "started"}
    assert undo(home, state, gone="loop-api-green") == (0, [
        "docker inspect -f {{.Id}} loop-api-green", "restore_aux aux_changed=0 IMAGES=",
        "WARNING: undone: blue is still serving"])


def test_a_kept_color_started_is_stopped_again(home):
    state = {"live": "green", "target": "blue", "switched": "0", "brought_up": "started", "RETIRED": ""}
    _, lines = undo(home, state)
    assert lines[2:4] == ["WARNING: stopping loop-api-blue again", "docker stop -t 10 loop-api-blue"]


def test_a_takeover_undone_says_the_app_s_container_is_live_again(home):
    state = {"live": "app", "target": "blue", "switched": "1", "brought_up": "", "RETIRED": ""}
    app_live = home / "state" / "app-live"
    app_live.unlink(missing_ok=True)
    assert undo(home, state)[1][:2] == ["WARNING: giving port 8080 back to loop-app-api", "give_port_to_app"]
    assert app_live.read_text() == "loop-app-api\n"
    app_live.unlink()
    status, lines = undo(home, state, fail="give_port_to_app")
    assert status == 1 and "WARNING: could not start loop-app-api again: check 'inv status'" in lines


def test_a_rollback_to_the_app_undone_gives_the_proxy_the_port(home):
    state = {"live": "blue", "target": "app", "switched": "1", "brought_up": "", "RETIRED": ""}
    status, lines = undo(home, state, fail="give_port_to_proxy")
    assert status == 1
    assert lines[:3] == ["WARNING: giving port 8080 back to loop-proxy", "give_port_to_proxy",
                         "WARNING: could not start loop-proxy again: check 'inv status'"]


# recover_change's own calls into the stack, release and proxy, as stand-ins.
RECOVER_STAND_INS = STAND_INS + r"""
load_release() { log "load_release $1"; }
proxy_host() { :; }
color_commit() { echo fedcba987654; }
app_container() { echo loop-app-api; }
look_at_containers() { log look_at_containers; }
resume_writers() { log "resume_writers ${PAUSED[*]}"; PAUSED=(); }
recover_bookkeeping() { log "recover_bookkeeping $* target=$target"; }
recover_rebuild_all() { log "recover_rebuild_all $*"; }
"""


def recover(home: Path, journal: str) -> tuple[int, list[str]]:
    """recover_change with `journal` on disk: its exit status, its calls and warnings, then what
    it leaves (RECOVERED, RECOVERING, whether the journal is still there)."""
    (home / "state" / "journal").write_text(journal)
    done = bash(home, f"{RECOVER_STAND_INS}\nrc=0; recover_change 2>&1 || rc=$?\n"
                      'echo "RECOVERED=$RECOVERED RECOVERING=$RECOVERING live=$live"; [[ -e $JOURNAL ]] && echo journal kept\n'
                      "exit $rc")
    return done.returncode, done.stdout.splitlines()


def test_recover_change_undoes_a_deploy_killed_while_verifying(home):
    journal = (DEPLOY + "images=loop-api:0123456789ab@none\nstandby=fedcba987654\nbrought=created\n"
               "paused=loop-api-blue\nstep=verify\n")
    assert recover(home, journal) == (0, [
        "WARNING: the last deploy of 0123456789ab was cut short at step 'verify' and could not finish or undo "
        "itself: repairing that first",
        "resume_writers loop-api-blue", "load_release 0123456789ab", "load_release 0123456789ab",
        "WARNING: switching back to blue", "switch_to blue  8001",
        "docker inspect -f {{.Id}} loop-api-green", "show_failure loop-api-green",
        "WARNING: removing loop-api-green", "docker rm -f loop-api-green",
        "restore_aux aux_changed=1 IMAGES=loop-api:0123456789ab@none", "restore_standby fedcba987654",
        "WARNING: undone: blue is still serving", "look_at_containers",
        "RECOVERED=deploy of 0123456789ab undone; blue serves RECOVERING=0 live="])


def test_recover_change_keeps_the_journal_when_the_undo_fails(home):
    (home / "state" / "journal").write_text(DEPLOY + "step=switch\n")
    done = bash(home, f"{RECOVER_STAND_INS}\nFAIL=switch_to; recover_change")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == ("ERROR: the repair of the last deploy is not complete (is Docker running?): "
                                            "nothing else was changed")
    assert (home / "state" / "journal").exists()


@pytest.mark.parametrize("journal, expected", [
    pytest.param(DEPLOY + "step=committed\n", "recover_bookkeeping deploy 0123456789ab target=green", id="deploy committed"),
    pytest.param(ROLLBACK_TO_APP + "step=oauth\n", "RECOVERED=rollback of fedcba987654 undone; blue serves RECOVERING=0 live=",
                 id="rollback to the app: the live color's commit named"),
    pytest.param(REBUILD_ALL + "step=build\n", "==> the last rebuild-all had changed nothing yet",
                 id="rebuild-all before its backup"),
    pytest.param(REBUILD_ALL + "backup=/b/1\nstep=replace\n", "recover_rebuild_all 0123456789ab blue /b/1",
                 id="rebuild-all after its backup"),
    pytest.param("op=restart\n", "WARNING: the last restart was cut short at step '' and could not finish or undo itself: "
                                 "repairing that first", id="unknown op: only said"),
])
def test_recover_change_runs_the_repair_the_plan_names(home, journal, expected):
    status, lines = recover(home, journal)
    assert status == 0 and expected in lines, lines
    assert "journal kept" not in lines and lines[-1].endswith("RECOVERING=0 live=")


def test_recover_change_without_a_journal_does_nothing(home):
    (home / "state" / "journal").unlink(missing_ok=True)
    done = bash(home, f"{RECOVER_STAND_INS}\nrecover_change; echo RECOVERING=$RECOVERING")
    assert (done.returncode, done.stdout, done.stderr) == (0, "RECOVERING=0\n", "")
