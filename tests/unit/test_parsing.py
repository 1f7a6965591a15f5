"""Pure parsing and formatting, without a NAS."""

from datetime import datetime, timezone

from loopctl import audit, bundle, facts, runlog, settings as settings_module, stack, sync
from loopctl.runner import Output


def status_output(*lines: str) -> Output:
    return Output("\n".join(lines) + "\n", "", 0)


def test_the_status_fact_reads_every_line_facts_sh_prints(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    state = facts.parse_status(status_output(
        "live\tgreen", "upstream\tok", "lock\theld\tdeploy by Ann since 2026-11-25T10:00:00Z (commit abc, pid 7)",
        "journal\top=deploy\tstep=health\t", "home\t/volume1 is writable by group or others (mode 775)",
        "tool\tflock is missing",
        "container\t/loop-api-blue\texited\tunhealthy\tloop-api:abc123def456\t2026-11-24T10:00:00Z\tloop-api-blue",
        "container\t/loop-proxy\trunning\t\tnginx:1.27-alpine\t2026-11-25T10:00:00.123456789Z\tproxy",
        "container\t/loop-auth\trunning\thealthy\tloop-loop-auth\t2026-11-25T10:00:00Z\tloop-auth",
        "Error: No such object: x"), settings)
    assert state.live == "green" and state.upstream == "ok"
    assert state.lock == "deploy by Ann since 2026-11-25T10:00:00Z (commit abc, pid 7)"
    assert state.journal == {"op": "deploy", "step": "health"}
    assert state.home_problems == ["/volume1 is writable by group or others (mode 775)"]
    assert state.tool_problems == ["flock is missing"]
    proxy, blue, auth = state.containers  # the proxy and the colors first, then the app's others
    assert proxy == facts.Container("loop-proxy", "running", "-", "nginx:1.27-alpine",
                                    "2026-11-25T10:00:00.123456789Z", "proxy")
    assert blue.commit == "abc123def456" and proxy.commit == "" and auth.commit == ""
    assert blue.health == "-"  # the last status of a stopped container is stale
    assert facts.parse_status(status_output("live\t", "upstream\tmissing", "lock\tfree"), settings).live is None


def test_the_lock_fact_and_the_checkout_config_allow_list(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    assert facts.parse_lock(Output("", "", 0), settings) is None
    assert facts.parse_lock(Output("rollback by Bo\n", "", 75), settings) == "rollback by Bo"
    config = "\n".join(["core.bare", "remote.origin.url", "branch.main.merge", "core.fsmonitor", "filter.x.smudge",
                        "include.path"]) + "\n"
    assert facts.parse_git_config(Output(config, "", 0), settings) == [
        "core.fsmonitor", "filter.x.smudge", "include.path"]



def test_a_checkout_read_that_ran_out_of_time_is_unreadable_not_empty(tmp_path):
    import pytest

    from loopctl.errors import CheckoutUnreadable, Refused

    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "NAS_APP_DIR": "/volume1/app"})
    assert facts.CHECKOUT_COMMIT.parse(Output("ab" * 20 + "\n", "", 0), settings) == "ab" * 20
    assert facts.CHECKOUT_COMMIT.parse(Output("", "fatal: not a git repository", 128), settings) == ""
    for fact in (facts.CHECKOUT_COMMIT, facts.CHECKOUT_BRANCH, facts.CHECKOUT_CONFIG):
        for status in (124, 137):  # GNU timeout's: the bound ran out (137: killed after --kill-after)
            assert status in fact.ok
            with pytest.raises(CheckoutUnreadable) as raised:
                fact.parse(Output("", "", status), settings)
            assert isinstance(raised.value, Refused)
            assert "in the NAS checkout /volume1/app took longer than 10s" in str(raised.value)
            assert "blocks reads" in str(raised.value)


def test_uptime():
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
    assert stack.uptime("2026-11-25T11:55:50.5Z", now) == "4m 9s"
    assert stack.uptime("2026-11-25T06:30:00Z", now) == "5h 30m"
    assert stack.uptime("2026-11-22T11:00:00Z", now) == "3d 1h"
    assert stack.uptime("0001-01-01T00:00:00Z", now) == "-"


def test_table_aligns_columns():
    assert stack.table([("A", "BB"), ("ccc", "d")]) == "A    BB\nccc  d"


def test_summary_and_releases_parsing():
    out = "==> x\nsummary: old=none new=abc color=blue build=4.0s healthy=2.1s switch=0.2s verify=5.0s\n"
    assert runlog.parse_summary(out) == {"old": "none", "new": "abc", "color": "blue", "build": "4.0s",
                                         "healthy": "2.1s", "switch": "0.2s", "verify": "5.0s"}
    rows = facts.parse_releases("2026-11-25T10:00:00Z\tdeploy\tabc\tloop-api:abc\tblue\tAnn <a@x>\nbroken\n")
    assert rows == [{"time": "2026-11-25T10:00:00Z", "kind": "deploy", "commit": "abc", "image": "loop-api:abc",
                     "color": "blue", "performer": "Ann <a@x>"}]


def test_git_overwrite_message_lists_files():
    message = ("error: Your local changes to the following files would be overwritten by merge:\n"
               "\tapp/main.py\n\tnotes.md\nPlease commit your changes or stash them before you merge.\nAborting\n")
    assert sync.listed_files(message) == ["app/main.py", "notes.md"]


def test_manifest_is_sha256sum_format_and_drift_is_described():
    files = {"scripts/a.sh": b"echo a\n"}
    # The digest of "echo a\n", as `printf 'echo a\n' | sha256sum` prints it.
    assert bundle.manifest(files) == "914cefaded94d45f313fa21b0af05991c33df3566f4ca6814c3652f4b92b7c8c  scripts/a.sh\n"
    found = facts.parse_sha256sum("abc  /app/.loopctl/scripts/a.sh\n", "/app/.loopctl/")
    assert found == {"scripts/a.sh": "abc"}
    assert facts.describe_drift({"files": 2, "missing": [], "changed": []}) == "in sync (2 files)"
    assert facts.describe_drift({"files": 2, "missing": ["a", "b"], "changed": []}) == "not installed: run `inv setup`"
    assert facts.describe_drift({"files": 2, "missing": ["b"], "changed": ["a"]}) == \
        "DRIFT: a differs, b missing (run `inv setup`)"


def test_audit_record_format():
    record = audit.make_record("rollback", {"to": "abc1"}, "ops@nas:22", 0, 2.345, who="Ann <a@x>")
    assert set(record) == {"time", "performer", "verb", "args", "host", "status", "seconds"}
    line = audit.format_record(record)
    assert "rollback" in line and "ok" in line and "--to=abc1" in line and "Ann <a@x>" in line
    assert audit.parse('{"verb": "stop"}\nnot json\n') == [{"verb": "stop"}]


def test_status_names_every_problem(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    session = type("S", (), {"settings": settings})()
    state = facts.NasState("green", "garbled", None, {"op": "deploy", "step": "switch"},
                           ["/volume1 is writable by group or others (mode 775)"], ["flock is missing"],
                           [facts.Container("loop-proxy", "exited", "-", "nginx", "", "proxy")])
    assert stack.problems(state, session) == [
        "the loopctl home is not safe: /volume1 is writable by group or others (mode 775)",
        "the NAS lacks: flock is missing",
        "the upstream file state/nginx/upstream.conf is garbled: nginx keeps the last one it loaded; the next "
        "`inv rebuild` or `inv rollback` writes it again",
        "the proxy loop-proxy is exited: nothing serves port traffic; `inv rebuild` or `inv rollback` brings it back",
        "the live color's container is missing: `inv rollback` or `inv rebuild` puts a release back",
        "a deploy was cut short at step switch and could not finish or undo itself: the next `inv rebuild` or "
        "`inv rollback` repairs it first",
    ]
    healthy = facts.NasState("blue", "ok", None, {}, [], [], [
        facts.Container("loop-proxy", "running", "-", "nginx", "", "proxy"),
        facts.Container("loop-api-blue", "running", "healthy", "loop-api:0123456789ab", "", "loop-api-blue")])
    assert stack.problems(healthy, session) == []
