"""The NAS scripts run on what Synology ships: bash 4.4 (DSM 7), sudo's short PATH, and only the
tools `inv setup` checks for. Each rule is read off the scripts themselves, and each scanner is
shown to catch what it looks for, so a test here cannot pass by finding nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loopctl import contract

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))

# What bash after 4.4 added, as the scripts could write it (bash's NEWS, 5.0 to 5.3).
NEWER_THAN_4_4 = {
    "EPOCHREALTIME / EPOCHSECONDS (5.0)": r"\bEPOCH(REALTIME|SECONDS)\b",
    "SRANDOM (5.1)": r"\bSRANDOM\b",
    "BASH_ARGV0 (5.0)": r"\bBASH_ARGV0\b",
    "BASH_MONOSECONDS / GLOBSORT (5.3)": r"\b(BASH_MONOSECONDS|GLOBSORT)\b",
    "wait -p / wait -f (5.1 / 5.0)": r"\bwait\s+(-[a-z]*[pf])",
    "${var@U} and the other case and key transformations (5.1, 5.2)": r"\$\{[#!]?[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?@[ULuKk]\}",
    "${ cmd; } and ${| cmd; } (5.3)": r"\$\{[|\s]",
    "shopt options of 5.0 to 5.3": r"\bshopt\s+-[su]\s+.*\b(globskipdots|patsub_replacement|assoc_expand_once|"
                                   r"localvar_inherit|localvar_unset|noexpand_translation|varredir_close|"
                                   r"array_expand_once|bash_source_fullpath)\b",
    "local -p / test -o in [[ ]] of 5.x": r"\[\[\s+-v\s+[A-Za-z_]+\[@\]",
}

# Commands the scripts name that run inside a container, not on the NAS.
IN_CONTAINERS = {"nginx": "runs in the proxy container (nginx -t, nginx -s reload)"}
BUILTINS = set(subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True).stdout.split())
# A word in command position: at the start of a command, after a pipe, list operator, `$(`, a
# keyword, or one of the commands that run another (timeout SECONDS, xargs FLAGS, setsid, exec).
COMMAND_POSITION = re.compile(
    r"(?=(?:^|[|;&(`!]|(?<![$\w])\{|\$\(|\bthen|\bdo|\belse|\bif|\bwhile|\buntil|\bexec|\bsetsid|"
    r"\btimeout(?: -[-a-z=0-9]+)*(?: \"?\$?[A-Za-z0-9_{}]+\"?)?|\bxargs(?: -[0-9a-z]+)*)"
    r"\s*([a-z][a-z0-9_.+-]*)(?=\s|$|;|\)))")


def newer_constructs(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = "" if line.lstrip().startswith("#") else line
        found += [f"{number}: {name}" for name, pattern in NEWER_THAN_4_4.items() if re.search(pattern, code)]
    return found


def commands_named(text: str, functions: set[str]) -> dict[str, int]:
    """Executables on this machine that the text runs, with the first line naming each."""
    found: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for match in COMMAND_POSITION.finditer(line.split(" # ", 1)[0]):
            word = match.group(1)
            if word not in BUILTINS and word not in functions and shutil.which(word):
                found.setdefault(word, number)
    return found


def functions_in(texts: list[str]) -> set[str]:
    return {name for text in texts for name in re.findall(r"(?m)^\s*([a-z_][a-z0-9_]*)\(\)\s*\{", text)}


def test_the_scanners_find_what_they_look_for():
    sample = 'x=$EPOCHREALTIME\nwait -p id\necho "${name@U}"\n# SRANDOM in a comment is fine\n'
    assert [hit.split(": ")[0] for hit in newer_constructs(sample)] == ["1", "2", "3"]
    assert newer_constructs('echo "${name@Q}" "${name@A}"; mapfile -d "" x; declare -n ref=y\n') == []
    assert commands_named('run() { curl -s x | jq .; }\nout=$(timeout 5 shred -u f)\nrun\n', {"run"}).keys() \
        >= {"curl", "shred"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_bash_construct_newer_than_4_4(script):
    assert newer_constructs(script.read_text()) == [], f"{script.name} needs a bash newer than DSM 7's 4.4"


def test_every_command_the_scripts_run_is_one_setup_checks_for():
    texts = [script.read_text() for script in SCRIPTS]
    functions = functions_in(texts)
    checked = set(contract.NAS_TOOLS)
    unchecked = {}
    for script, text in zip(SCRIPTS, texts):
        for word, number in commands_named(text, functions).items():
            if word not in checked and word not in IN_CONTAINERS:
                unchecked.setdefault(word, f"{script.name}:{number}")
    assert unchecked == {}, f"add these to NAS_TOOLS in scripts/contract.env (inv setup checks them): {unchecked}"


def test_setup_checks_exactly_the_contracts_list(tmp_path):
    """facts.sh tools reads NAS_TOOLS: a tool taken off the NAS is named, one line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in contract.NAS_TOOLS:
        if tool != "flock" and shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    done = subprocess.run(["bash", "-c", f'. {REPO}/scripts/lib.sh && PATH={bin_dir} && DOCKER=/bin/true '
                                         f'COMPOSE=(/bin/true) COMPOSE_MAJOR=2 && . <(sed -n "/^tools_fact()/,/^}}/p" '
                                         f'{REPO}/scripts/facts.sh) && tools_fact'],
                          capture_output=True, text=True)
    assert done.stdout.splitlines() == ["flock is missing"], done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_sets_its_own_path(script):
    """Under sudo, PATH is `/usr/bin:/bin:/usr/sbin:/sbin` on DSM (no Container Manager folder);
    the scripts never rely on it: with no usable PATH at all, each still answers --help."""
    if script.name.startswith("lib") or script.suffix != ".sh":
        pytest.skip("sourced, never run")
    done = subprocess.run(["/bin/bash", str(script), "--help"], capture_output=True, text=True,
                          env={"PATH": "/nonexistent"})
    assert done.returncode == 0 and "usage:" in done.stdout, done.stdout + done.stderr
