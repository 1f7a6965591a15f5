"""Pure parsing and formatting, without a NAS."""

from datetime import datetime, timezone
import io

from loopctl import audit, deploy, install, stack, sync
from loopctl.runner import Scrubbed, SUDO_PROMPT


def test_parse_inspect_and_container_commit():
    text = ("/loop-proxy\trunning\t\tnginx:1.27-alpine\t2026-11-25T10:00:00.123456789Z\n"
            "/loop-api-blue\texited\tunhealthy\tloop-api:abc123def456\t2026-11-24T10:00:00Z\n"
            "Error: No such object: loop-api-green\n")
    proxy, blue = stack.parse_inspect(text)
    assert proxy == stack.Container("loop-proxy", "running", "-", "nginx:1.27-alpine", "2026-11-25T10:00:00.123456789Z")
    assert blue.commit == "abc123def456" and proxy.commit == ""
    assert blue.health == "-"  # the last status of a stopped container is stale


def test_live_color_from_the_upstream_file():
    assert stack.parse_live_color("# live\nmap $host $loop_upstream {\n    default loop-api-green:8081;\n}\n") == "green"
    assert stack.parse_live_color("") is None


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
    assert deploy.parse_summary(out) == {"old": "none", "new": "abc", "color": "blue", "build": "4.0s",
                                         "healthy": "2.1s", "switch": "0.2s", "verify": "5.0s"}
    rows = deploy.parse_releases("2026-11-25T10:00:00Z\tdeploy\tabc\tloop-api:abc\tblue\tAnn <a@x>\nbroken\n")
    assert rows == [{"time": "2026-11-25T10:00:00Z", "kind": "deploy", "commit": "abc", "image": "loop-api:abc",
                     "color": "blue", "performer": "Ann <a@x>"}]


def test_git_overwrite_message_lists_files():
    message = ("error: Your local changes to the following files would be overwritten by merge:\n"
               "\tapp/main.py\n\tnotes.md\nPlease commit your changes or stash them before you merge.\nAborting\n")
    assert sync.listed_files(message) == ["app/main.py", "notes.md"]


def test_manifest_is_sha256sum_format_and_drift_is_described():
    files = {"scripts/a.sh": b"echo a\n"}
    assert install.manifest(files) == (
        "c0aa47e87b5e8a6f2e3e9a1d3c3e3ea4e7fbd7a4b3ff5e5cf0fa8c8e6ec2c3ee  scripts/a.sh\n".replace(
            "c0aa47e87b5e8a6f2e3e9a1d3c3e3ea4e7fbd7a4b3ff5e5cf0fa8c8e6ec2c3ee",
            install.checksums(files)["scripts/a.sh"]))
    found = install.parse_sha256sum("abc  /app/.loopctl/scripts/a.sh\n", "/app/.loopctl/")
    assert found == {"scripts/a.sh": "abc"}
    assert install.describe_drift({"files": 2, "missing": [], "changed": []}) == "in sync (2 files)"
    assert install.describe_drift({"files": 2, "missing": ["a", "b"], "changed": []}) == "not installed: run `inv setup`"
    assert install.describe_drift({"files": 2, "missing": ["b"], "changed": ["a"]}) == \
        "DRIFT: a differs, b missing (run `inv setup`)"


def test_audit_record_format():
    record = audit.make_record("rollback", {"to": "abc1"}, "ops@nas:22", 0, 2.345, who="Ann <a@x>")
    assert set(record) == {"time", "performer", "verb", "args", "host", "status", "seconds"}
    line = audit.format_record(record)
    assert "rollback" in line and "ok" in line and "--to=abc1" in line and "Ann <a@x>" in line
    assert audit.parse('{"verb": "stop"}\nnot json\n') == [{"verb": "stop"}]


def test_scrubbed_stream_hides_secrets_and_the_sudo_prompt_even_across_writes():
    sink = io.StringIO()
    out = Scrubbed(sink, ["s3cret"])
    out.write(SUDO_PROMPT + "line one s3")
    out.write("cret\nlast")
    out.flush()
    assert sink.getvalue() == "line one ****\nlast"
