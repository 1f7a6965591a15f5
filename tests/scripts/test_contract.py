"""One contract across the SSH boundary: scripts/contract.env is read by bash and Python, and
neither side writes the numbers and names it holds by hand."""

import re
import subprocess
from pathlib import Path

import pytest

from loopctl import bundle, contract, facts, settings as settings_module, stackdef

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))
HELPFUL = [p for p in SCRIPTS if not p.name.startswith("lib")]


def test_bash_reads_the_same_values_python_does():
    names = " ".join(contract.VALUES)
    done = subprocess.run(["bash", "-c", f'. {REPO}/scripts/contract.env; for n in {names}; do echo "$n=${{!n}}"; done'],
                          capture_output=True, text=True, check=True)
    assert dict(line.split("=", 1) for line in done.stdout.splitlines()) == contract.VALUES


def test_settings_default_to_the_scripts_defaults():
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    assert settings.deploy_health_timeout == contract.HEALTH_TIMEOUT
    assert settings.deploy_verify_seconds == contract.DEPLOY_VERIFY_SECONDS
    assert settings.rollback_verify_seconds == contract.ROLLBACK_VERIFY_SECONDS
    assert settings.deploy_build_timeout == contract.BUILD_TIMEOUT
    assert settings.keep_releases == contract.KEEP_RELEASES
    assert settings.keep_warm == (contract.KEEP_WARM == 1)
    assert settings.drain_seconds == contract.DRAIN_SECONDS


@pytest.mark.parametrize("script", SCRIPTS + [REPO / "loopctl" / "commands.py", REPO / "loopctl" / "deploy.py"],
                         ids=lambda p: p.name)
def test_no_side_writes_the_contracts_exit_codes_or_state_names_by_hand(script):
    text = script.read_text()
    for literal in ("75", "69", "77", "74", "releases.tsv", "audit.jsonl", "deploy.lock", "upstream.conf"):
        code_lines = [l for l in text.splitlines() if not l.lstrip().startswith("#") and re.search(
            rf"(?<![\w.-]){re.escape(literal)}(?![\w.-])", l)]
        assert code_lines == [], f"{script.name} writes {literal!r} instead of reading contract.env: {code_lines}"


def test_the_proxy_listens_where_the_contract_says():
    assert f"listen {contract.PROXY_LISTEN_PORT};" in (REPO / "deploy" / "nginx" / "nginx.conf").read_text()


@pytest.mark.parametrize("script", HELPFUL, ids=lambda p: p.name)
def test_every_script_answers_help_with_its_usage_and_exit_0(script):
    done = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and done.stderr == ""


@pytest.mark.parametrize("script", [p for p in HELPFUL if p.name != "install.sh"], ids=lambda p: p.name)
def test_bad_usage_exits_64_with_the_usage_on_stderr(script):
    done = subprocess.run(["bash", str(script), "--no-such-flag", "x"], capture_output=True, text=True, timeout=10)
    assert done.returncode == contract.EXIT_USAGE
    assert "usage: " in done.stderr


# --- the formats that cross SSH: written on one side, read on the other ----------------------

DATA = REPO / "tests" / "unit" / "data"
# Fields of release.env the scripts still read from releases an older loopctl defined, which
# loopctl no longer writes (lib-deploy.sh's RELEASE_FIELDS).
READ_FROM_OLDER_RELEASES = {"OAUTH_DIR"}


def installed(tmp_path: Path) -> Path:
    """A loopctl home with the scripts installed as `inv setup` lays them out."""
    home = tmp_path / "home"
    (home / "scripts").mkdir(parents=True)
    (home / "state").mkdir()
    for path in [*SCRIPTS, contract.CONTRACT_FILE]:
        (home / "scripts" / path.name).write_text(path.read_text())
    return home


def bash_in(home: Path, script: str) -> str:
    """`script` run with every library sourced as a change script sources them (lib.sh, then
    lib-change.sh, which brings the others)."""
    done = subprocess.run(["bash", "-c", "\n".join([f". {home}/scripts/lib.sh", f". {home}/scripts/lib-change.sh", script])],
                          capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=20)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def loaded(home: Path, fields_array: str) -> dict[str, str]:
    """NAME=value of every field the scripts list in `fields_array`, as they read them."""
    out = bash_in(home, f'for n in "${{{fields_array}[@]}}"; do printf "%s=%s\\n" "$n" "${{!n-<unset>}}"; done')
    return dict(line.split("=", 1) for line in out.splitlines())


def test_stack_env_as_setup_writes_it_is_what_the_scripts_read(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    home = installed(tmp_path)
    (home / contract.STACK_ENV_FILE).write_text(bundle.stack_env(settings))
    written = dict(line.split("=", 1) for line in bundle.stack_env(settings).splitlines() if not line.startswith("#"))
    read = bash_in(home, f'read_env_file "$LOOPCTL_HOME/$STACK_ENV_FILE" "${{STACK_FIELDS[@]}}" && '
                         f'for n in "${{STACK_FIELDS[@]}}"; do printf "%s=%s\\n" "$n" "${{!n}}"; done')
    assert dict(line.split("=", 1) for line in read.splitlines()) == written


def test_release_env_as_loopctl_writes_it_is_what_the_scripts_read(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null"})
    prepared = stackdef.Prepared(2, (DATA / "example-raw.yml").read_text(), (DATA / "example-v2.yml").read_text(),
                                 (DATA / "example-v2-literal.yml").read_text())
    release = stackdef.build_release(prepared, settings, "0123456789abcdef0123456789abcdef01234567")
    home = installed(tmp_path)
    folder = home / contract.RELEASES_DIR / release.short
    folder.mkdir(parents=True)
    (folder / contract.RELEASE_ENV_FILE).write_text(release.release_env())
    (folder / contract.RELEASE_STACK_FILE).write_text(release.stack_json())
    listed = loaded(home, "RELEASE_FIELDS")
    assert set(listed) == set(release.fields) | READ_FROM_OLDER_RELEASES
    read = dict(line.split("=", 1) for line in bash_in(home, f'load_release {release.short}\n'
                'for n in "${RELEASE_FIELDS[@]}"; do printf "%s=%s\\n" "$n" "${!n}"; done').splitlines())
    assert read == {**release.fields, **{name: "" for name in READ_FROM_OLDER_RELEASES}}


def test_a_release_the_scripts_record_is_read_by_its_column_names(tmp_path):
    home = installed(tmp_path)
    bash_in(home, "PERFORMER=ana; record_release deploy 0123456789ab loop-api:0123456789ab blue")
    [row] = facts.parse_releases((home / contract.RELEASES_FILE).read_text())
    assert {k: v for k, v in row.items() if k != "time"} == {
        "kind": "deploy", "commit": "0123456789ab", "image": "loop-api:0123456789ab", "color": "blue",
        "performer": "ana"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["time"])


def test_both_sides_name_a_colors_container_alike(tmp_path):
    home = installed(tmp_path)
    for color in contract.COLORS:
        assert bash_in(home, f"API_SERVICE=my-api; container {color}") == contract.api_container("my-api", color)


# What the scripts read of releases.tsv by position (cut -fN, awk's $N): a commit, found by its
# color where `$N == color`. Each must be the position contract.env's RELEASES_COLUMNS gives it.
COLUMN = {name: number for number, name in enumerate(contract.RELEASES_COLUMNS, 1)}


def misread_columns(line: str) -> list[str]:
    """The field numbers in a line that reads releases.tsv that are not the column it means."""
    wrong = []
    for number in re.findall(r"\$(\d+) == color", line):
        if int(number) != COLUMN["color"]:
            wrong.append(f"${number} as the color")
    others = re.sub(r"\$\d+ == color", "", line)
    for number in re.findall(r"cut -f(\d+)|\$(\d+)", others):
        number = int(next(n for n in number if n))
        if number != COLUMN["commit"]:
            wrong.append(f"field {number} as the commit")
    return wrong


def test_the_scripts_read_releases_tsv_by_the_contracts_positions():
    readers = [(path.name, line) for path in SCRIPTS for line in path.read_text().splitlines()
               if re.search(r'\$RELEASES\b(?!_)', line) and re.search(r"\bcut -f|\bawk\b", line)]
    assert len(readers) >= 4, readers
    assert [(name, line, misread_columns(line)) for name, line in readers if misread_columns(line)] == []


def test_a_misread_column_is_caught():
    assert misread_columns("""tac "$RELEASES" | cut -f4""") == ["field 4 as the commit"]
    assert misread_columns("""awk -F'\\t' -v color="$live" '$3 == color { c = $3 }' "$RELEASES\"""") == ["$3 as the color"]
