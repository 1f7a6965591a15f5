"""The NAS scripts read top-down: each script sources lib.sh first, by literal name, and the
change scripts lib-change.sh after it, which brings the four libraries a change calls into;
no other library sources another (lib.sh its contract.env only), so no file is more than two
sources away from the script that runs, and following a verb to what it runs is the script and
the files it names. Every function a script (or a library it sources) calls is defined in one of
the files it reaches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO / "scripts"
SCRIPTS = sorted(SCRIPTS_DIR.glob("*.sh"))
RUN = [p for p in SCRIPTS if not p.name.startswith("lib")]
LIBRARIES = [p for p in SCRIPTS if p.name.startswith("lib")]
SOURCE = re.compile(r'(?m)^\s*(?:\.|source)\s+(\S+)')
LITERAL = re.compile(r'^"\$\{BASH_SOURCE(?:\[0\])?%/\*\}/([a-z-]+\.(?:sh|env))"$')
DEFINED = re.compile(r"(?m)^([a-z_][a-z0-9_]*)\(\)\s*\{")
# A word in command position: at a line's start, after a pipe, a list operator, `$(` or a keyword.
CALLED = re.compile(r"(?m)(?:^|[|;&(!{]|\$\(|\bthen|\bdo|\belse|\bif|\bwhile|\buntil)\s*([a-z_][a-z0-9_]*)(?=\s|$|;|\))")


def sourced(path: Path) -> list[str]:
    """The files `path` sources, by name; a source line that is not a literal name fails."""
    names = []
    for target in SOURCE.findall(path.read_text()):
        match = LITERAL.match(target)
        assert match, f"{path.name} sources {target}: not a literal name beside it"
        names.append(match.group(1))
    return names


def code(text: str) -> str:
    return "\n".join(line.split(" # ", 1)[0] for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_the_checks_find_what_they_look_for(tmp_path):
    script = tmp_path / "x.sh"
    script.write_text('. "${BASH_SOURCE%/*}/lib.sh"\n# shellcheck source=lib-a.sh\n. "$(dirname "$0")/lib-a.sh"\n')
    with pytest.raises(AssertionError, match="not a literal name"):
        sourced(script)
    script.write_text('. "${BASH_SOURCE%/*}/lib.sh"\n  source "${BASH_SOURCE[0]%/*}/lib-a.sh"\n')
    assert sourced(script) == ["lib.sh", "lib-a.sh"]
    assert set(CALLED.findall(code('x=$(live_color) && switch_to blue\n  if ! is_running "$(container blue)"; then :; fi\n'
                                   'echo "the container runs" # a comment names wait_healthy\n'))) >= \
        {"live_color", "switch_to", "is_running", "container"}
    assert "wait_healthy" not in CALLED.findall(code("echo x # a comment names wait_healthy\n"))


# What each library sources; any other sources nothing.
LIBRARY_SOURCES = {
    "lib.sh": ["contract.env"],
    "lib-change.sh": ["lib-deploy.sh", "lib-proxy.sh", "lib-mcp.sh", "lib-oauth.sh"],
}


def reached(script: Path) -> list[Path]:
    """The script and every file it sources, and those sources' sources, in order."""
    files, queue = [], [script]
    while queue:
        path = queue.pop(0)
        if path not in files:
            files.append(path)
            queue += [SCRIPTS_DIR / name for name in sourced(path)]
    return files


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_a_library_sources_only_what_it_is_named_to(library):
    assert sourced(library) == LIBRARY_SOURCES.get(library.name, [])
    for name in LIBRARY_SOURCES.get(library.name, []):
        assert sourced(SCRIPTS_DIR / name) == [], f"{name} is two sources deep: it may source nothing"


@pytest.mark.parametrize("script", RUN, ids=lambda p: p.name)
def test_each_script_sources_lib_sh_first_and_the_functions_it_calls(script):
    names = sourced(script)
    assert names and names[0] == "lib.sh", f"{script.name} sources {names}"
    assert all((SCRIPTS_DIR / name).is_file() for name in names)
    files = reached(script)
    everywhere = {name for path in LIBRARIES for name in DEFINED.findall(path.read_text())}
    here = {name for path in files for name in DEFINED.findall(path.read_text())}
    called = {word for path in files for word in CALLED.findall(code(path.read_text()))}
    missing = sorted((called & everywhere) - here)
    assert missing == [], f"{script.name} calls {missing}, defined in a library it does not source"


def defines(path: Path, function: str) -> bool:
    return function in DEFINED.findall(path.read_text())


def test_a_rollback_reads_in_four_bash_files_to_the_reload():
    """detach.sh runs rollback.sh (named in its list of scripts), whose main ends in
    switch_and_verify (lib-change.sh), which calls switch_to, which runs nginx -t and the reload
    (lib-proxy.sh): four files, each named literally by the one before."""
    detach, rollback, change, proxy = (SCRIPTS_DIR / name for name in
                                       ("detach.sh", "rollback.sh", "lib-change.sh", "lib-proxy.sh"))
    assert re.search(r"(?m)^\s*deploy-blue-green \| rollback \|", detach.read_text())
    assert sourced(rollback) == ["lib.sh", "lib-change.sh"] and proxy.name in sourced(change)
    assert "switch_and_verify" in CALLED.findall(code(rollback.read_text())) and defines(change, "switch_and_verify")
    assert "switch_to" in CALLED.findall(code(change.read_text())) and defines(proxy, "switch_to")
    assert defines(proxy, "test_and_reload_proxy") and "nginx -s reload" in proxy.read_text()
