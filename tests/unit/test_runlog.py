"""What a change verb shows of its NAS run (runlog.View) and the JSON it reports, fed the
lines the scripts print, without a NAS."""

import io
import json

import pytest
from invoke.exceptions import Exit

from loopctl import contract, runlog
from loopctl.errors import Locked, RemoteFailed
from loopctl.runner import Output, Scrubbed

RUN = "20261202T041351Z-deploy-blue-green-29812"
# A rebuild's log as the sandbox wrote it (BuildKit's and Compose's lines cut down).
REBUILD = f"""\
==> deploy-blue-green runs on the NAS as {RUN} (log: /volume1/@loopctl/state/runs/{RUN}.log)
summary: run={RUN} log=/volume1/@loopctl/state/runs/{RUN}.log
==> deploy eb87d4eb8136: live is green (946f16d4f3db), building blue
#1 [loop-auth internal] load build definition from Dockerfile
#1 transferring dockerfile: 902B done
#1 DONE 0.0s

#14 naming to docker.io/library/loop-api:eb87d4eb8136 done
==> built loop-api:eb87d4eb8136 in 0.4s
 Container loop-api-blue  Recreate
 Container loop-api-blue  Started
==> waiting for loop-api-blue to be healthy (up to 120s)
    loop-api-blue: starting
    loop-api-blue: healthy
WARNING: pruning old releases failed
==> deployed eb87d4eb8136 on blue
summary: old=946f16d4f3db new=eb87d4eb8136 color=blue build=0.4s healthy=2.2s gate=0.4s aux=1.6s switch=0.1s verify=3.2s tools=2->2
"""


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def feed(view, text, clock=None, step_seconds=1.0):
    """Line by line, each step line `step_seconds` after the one before."""
    for line in text.splitlines(keepends=True):
        if clock and line.startswith(contract.STEP_PREFIX):
            clock.now += step_seconds
        view.write(line)


def test_the_marks_are_the_contracts_and_every_summary_line_counts():
    assert runlog.classify("==> built it") == ("step", "built it")
    assert runlog.classify("WARNING: w") == ("warning", "w")
    assert runlog.classify("ERROR: e") == ("error", "e")
    assert runlog.classify("#1 DONE 0.0s") == ("detail", "#1 DONE 0.0s")
    assert runlog.parse_summary(REBUILD) == {
        "run": RUN, "log": f"/volume1/@loopctl/state/runs/{RUN}.log", "old": "946f16d4f3db", "new": "eb87d4eb8136",
        "color": "blue", "build": "0.4s", "healthy": "2.2s", "gate": "0.4s", "aux": "1.6s", "switch": "0.1s",
        "verify": "3.2s", "tools": "2->2"}


def test_by_default_only_steps_and_warnings_are_shown_and_the_summary_is_read():
    out, clock = io.StringIO(), Clock()
    view = runlog.View(out, clock=clock)
    feed(view, REBUILD, clock)
    view.ended(0)
    shown = out.getvalue().splitlines()
    assert shown == [line for line in REBUILD.splitlines() if line.startswith(("==> ", "WARNING: "))]
    assert not any(line.startswith(("#", " Container", "summary:")) for line in shown)
    assert view.summary["color"] == "blue" and view.warnings == ["pruning old releases failed"]
    assert [step.seconds for step in view.steps] == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert view.failed_step is None and view.last_lines == []


def test_a_failed_step_shows_its_last_lines_once_then_what_undoes_it():
    out = io.StringIO()
    view = runlog.View(out)
    build = "".join(f"#{n} step {n}\n" for n in range(40))
    feed(view, REBUILD.split("==> built")[0] + build + "ERROR: the build failed (exit 1)\n"
         "==> undone: blue removed\n")
    view.ended(1)
    shown = out.getvalue().splitlines()
    tail = [f"    | #{n} step {n}" for n in range(40 - runlog.TAIL_LINES, 40)]
    at = shown.index(tail[0])
    assert shown[at:at + runlog.TAIL_LINES] == tail
    assert shown[at + runlog.TAIL_LINES:] == [f"    the whole log: inv run-log --id {RUN}", "==> undone: blue removed"]
    assert "#19 step 19" not in out.getvalue() and "ERROR" not in out.getvalue()
    assert view.failed_step == "deploy eb87d4eb8136: live is green (946f16d4f3db), building blue"
    assert view.last_lines == [line.removeprefix("    | ") for line in tail]
    assert view.error == "the build failed (exit 1)"


def test_a_last_line_without_its_newline_still_counts():
    out = io.StringIO()
    view = runlog.View(out)
    view.write("==> switching nginx to blue\nERROR: nginx did not reload")
    assert view.error == ""
    view.ended(1)
    assert view.error == "nginx did not reload"


def test_a_run_that_fails_without_an_error_line_shows_its_last_step_at_the_end():
    out = io.StringIO()
    view = runlog.View(out)
    feed(view, "==> switching nginx to blue\nnginx: [emerg] unknown directive\n")
    assert "emerg" not in out.getvalue()
    view.ended(1)
    assert out.getvalue().splitlines()[-1] == "    | nginx: [emerg] unknown directive"
    assert view.failed_step == "switching nginx to blue"


def test_the_failed_steps_lines_arrive_without_control_bytes_or_secrets():
    out = io.StringIO()
    view = runlog.View(out)
    stream = Scrubbed(view, ["hunter2"])
    stream.write("==> building\n\x1b]0;owned\x07#3 RUN echo \x1b[31mhunter2\x1b[0m\x07\nERROR: the build failed\n")
    view.ended(1)
    assert "    | #3 RUN echo <redacted>\n" in out.getvalue()
    assert not any(ch in out.getvalue() for ch in "\x1b\x07") and "owned" not in out.getvalue()


def test_verbose_shows_every_line_as_it_came_and_json_none():
    out = io.StringIO()
    view = runlog.View(out, verbose=True)
    feed(view, REBUILD + "ERROR: late\n")
    view.ended(1)
    assert out.getvalue() == REBUILD + "ERROR: late\n"  # the failed step's lines were shown already
    quiet = io.StringIO()
    view = runlog.View(quiet, quiet=True, progress=True)
    feed(view, REBUILD)
    view.ended(0)
    assert quiet.getvalue() == "" and view.ticker is None


def test_on_a_terminal_one_progress_line_is_rewritten_in_place(monkeypatch):
    monkeypatch.setattr(runlog, "TICK", 3600)  # ticks by hand below
    out, clock = io.StringIO(), Clock()
    view = runlog.View(out, progress=True, clock=clock, width=40)
    view.write("==> building loop-api:eb87d4eb8136 for the blue color\n#1 load\n")
    clock.now += 1
    view.tick()
    assert "\r" not in out.getvalue()  # not before PROGRESS_AFTER
    clock.now += 2
    view.tick()
    clock.now += 1
    view.tick()
    blank = "\r" + " " * 39 + "\r"
    line = "    [{}s] building loop-api:eb87d4eb8136"  # cut to the terminal's width less one
    assert len(line.format(4)) == 39
    assert out.getvalue().endswith(f"\n{line.format(3)}{blank}{line.format(4)}")
    view.write("==> built\n")
    assert out.getvalue().endswith(f"{line.format(4)}{blank}==> built\n")
    view.ended(0)
    assert view.stopped.is_set() and out.getvalue().endswith("==> built\n")


def test_the_one_summary_line():
    summary = runlog.parse_summary(REBUILD)
    assert runlog.summary_line("rebuild", summary, 14.23, 0.94) == (
        "==> 946f16d4f3db -> eb87d4eb8136 on blue in 14.2s: sync 0.9s  build 0.4s  healthy 2.2s  gate 0.4s  "
        "aux 1.6s  switch 0.1s  verify 3.2s  tools 2->2")
    assert runlog.summary_line("rollback", {"old": "a", "new": "b", "color": "green", "switch": "0.2s"}, 1.5) == \
        "==> a -> b on green in 1.5s: switch 0.2s"
    assert runlog.summary_line("rebuild-all", {"new": "b", "color": "blue", "backup": "/x/oauth-1"}, 40) == (
        "==> rebuilt everything at b on blue in 40.0s; the old OAuth keys are in /x/oauth-1 (to restore them see "
        "docs/deploys.md#restoring-oauth-keys)")


def test_json_is_one_object_on_stdout_whatever_the_outcome():
    out = io.StringIO()
    with runlog.reported("rebuild", as_json=True, out=out) as report:
        report.commit = "eb87d4eb8136" + "0" * 28
        report.sync_seconds = 0.94
        view = report.view()
        feed(view, REBUILD)
        view.ended(0)
    result = json.loads(out.getvalue())
    assert out.getvalue().count("\n") == 1
    assert result["status"] == "ok" and result["exit"] == 0 and result["color"] == "blue"
    assert result["timings"] == {"sync": 0.9, "build": 0.4, "healthy": 2.2, "gate": 0.4, "aux": 1.6, "switch": 0.1,
                                 "verify": 3.2}
    assert result["steps"][1]["step"].startswith("deploy eb87d4eb8136") and result["run"] == RUN
    assert result["failed_step"] is None and result["error"] is None

    out = io.StringIO()
    with pytest.raises(Exit) as raised:
        with runlog.reported("rollback", as_json=True, out=out) as report:
            view = report.view()
            feed(view, "==> switching nginx to blue\nnginx: [emerg] bad\nERROR: nginx -t failed: no switch\n")
            view.ended(1)
            raise Exit("inv rollback: error: rollback.sh failed (exit 1): nginx -t failed: no switch", 6)
    assert raised.value.code == 6
    result = json.loads(out.getvalue())
    assert (result["status"], result["exit"]) == ("failed", 6)
    assert result["failed_step"] == "switching nginx to blue" and result["last_lines"] == ["nginx: [emerg] bad"]
    assert result["error"].endswith("nginx -t failed: no switch")

    out = io.StringIO()
    with pytest.raises(Exit):
        with runlog.reported("rebuild-all", as_json=True, out=out):
            raise Exit("inv rebuild-all: error: NAS_HOST is not set", 2)
    assert json.loads(out.getvalue())["status"] == "bad input" and json.loads(out.getvalue())["steps"] == []


@pytest.mark.parametrize("code, status", [(0, "ok"), (2, "bad input"), (3, "failed"), (6, "failed"), (7, "refused"),
                                          (8, "not finished"), (130, "interrupted")])
def test_the_json_status_says_which_kind_of_outcome_the_exit_code_is(code, status):
    assert runlog.status_of(code) == status


def test_a_failed_script_is_its_tables_error_in_its_own_words():
    locked = runlog.script_failure("rollback.sh", Output("==> x\n", "ERROR: held by ana since 10:00\n", 75))
    assert type(locked) is Locked and str(locked) == "a deploy is already running: held by ana since 10:00"
    failed = runlog.script_failure("prepare.sh", Output("", "warning\nlast words\n", 1))
    assert type(failed) is RemoteFailed and str(failed) == "prepare.sh failed (exit 1): last words"
