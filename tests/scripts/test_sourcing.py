"""The NAS scripts read top-down: each script sources the libraries it needs itself, by literal
name, and no library sources another (lib.sh its contract.env only), so following a verb to what
it runs is the script and the files it names. Every function a script (or a library it sources)
calls is defined in the script or one of those files."""

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


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_no_library_sources_another(library):
    assert sourced(library) == (["contract.env"] if library.name == "lib.sh" else [])


@pytest.mark.parametrize("script", RUN, ids=lambda p: p.name)
def test_each_script_sources_lib_sh_first_and_the_functions_it_calls(script):
    names = sourced(script)
    assert names and names[0] == "lib.sh", f"{script.name} sources {names}"
    assert all((SCRIPTS_DIR / name).is_file() for name in names)
    files = [script, SCRIPTS_DIR / "lib.sh", *(SCRIPTS_DIR / name for name in names)]
    everywhere = {name for path in LIBRARIES for name in DEFINED.findall(path.read_text())}
    here = {name for path in files for name in DEFINED.findall(path.read_text())}
    called = {word for path in files for word in CALLED.findall(code(path.read_text()))}
    missing = sorted((called & everywhere) - here)
    assert missing == [], f"{script.name} calls {missing}, defined in a library it does not source"
