"""The README's verb table and the documentation's links agree with what is there.

The verb table is what a newcomer reads instead of `inv --help`: it must list exactly the verbs
tasks.py defines and, for each, every flag it takes (read from Invoke's own view of the tasks).
Every relative link in README.md and docs/*.md must reach a file, and a `#anchor` a heading in
it, so moving a section between pages cannot leave a dead link behind.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from invoke import Collection

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted([README, *(REPO / "docs").glob("*.md")])

LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FLAG = re.compile(r"--[a-z][a-z-]*")


def task_flags() -> dict[str, set[str]]:
    """Each verb of tasks.py and its long flags, as `inv --help VERB` shows them."""
    spec = importlib.util.spec_from_file_location("tasks", REPO / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    collection = Collection.from_module(tasks)
    return {name: {"--" + max(argument.names, key=len) for argument in collection[name].get_arguments()}
            for name in collection.task_names}


def table_flags(readme: str) -> dict[str, set[str]]:
    """The README's verb table: each row's verb and the flags its first cell names."""
    rows: dict[str, set[str]] = {}
    for line in readme.splitlines():
        match = re.match(r"\|\s*`inv ([a-z][a-z-]*)([^`]*)`\s*\|", line)
        if match:
            verb, rest = match.groups()
            assert verb not in rows, f"the verb table lists {verb} twice"
            rows[verb] = set(FLAG.findall(rest))
    return rows


def table_mismatches(readme: str) -> list[str]:
    expected, listed = task_flags(), table_flags(readme)
    problems = [f"inv {verb} is missing from the README's verb table" for verb in sorted(expected.keys() - listed.keys())]
    problems += [f"the README's verb table lists inv {verb}, which tasks.py does not define"
                 for verb in sorted(listed.keys() - expected.keys())]
    for verb in sorted(expected.keys() & listed.keys()):
        problems += [f"inv {verb}: {flag} is missing from the README's verb table"
                     for flag in sorted(expected[verb] - listed[verb])]
        problems += [f"inv {verb}: the README's verb table names {flag}, which the verb does not take"
                     for flag in sorted(listed[verb] - expected[verb])]
    return problems


def prose(text: str) -> str:
    """The text outside fenced code blocks (links and headings there are not links or headings)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in prose(page.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            found.add(slug)
    return found


def dead_links(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO)}: {target}"
        if not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: no heading #{anchor} in {linked.relative_to(REPO)}")
    return problems


def test_verb_table_lists_every_verb_and_flag():
    assert table_mismatches(README.read_text()) == []


def test_a_missing_flag_or_verb_is_found():
    readme = README.read_text()
    without_flag = readme.replace(" [--allow-tool-removal]", "", 1)
    assert "inv rebuild: --allow-tool-removal is missing from the README's verb table" in table_mismatches(without_flag)
    without_verb = "\n".join(line for line in readme.splitlines() if not line.startswith("| `inv stop"))
    assert "inv stop is missing from the README's verb table" in table_mismatches(without_verb)


def test_the_table_reads_what_invoke_sees():
    flags = task_flags()
    assert flags["rebuild"] == {"--no-sync", "--allow-drift", "--allow-tool-removal", "--verbose", "--json"}
    assert flags["run-log"] == {"--id", "--tail"}
    assert flags["audit"] == {"--lines", "--local"}
    assert "mcp-check" in flags and "local-sync" in flags


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_a_file_and_heading(page):
    assert dead_links(page) == []


def test_a_dead_link_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n\n## Some `code` here\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#some-code-here) [gone](c.md) [bad](a.md#nowhere) [web](https://x.example/)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert dead_links(page) == ["b.md: c.md: no such file", "b.md: a.md#nowhere: no heading #nowhere in a.md"]


# --- numbers and lists the pages state, held to the code they come from ---

MAXIMUM = re.compile(r"((?:`[A-Z][A-Z0-9_]+`(?:,?\s+and\s+|,\s+))*`[A-Z][A-Z0-9_]+`)\s+\(at\s+most\s+([0-9]+)"
                     r"(?:\s+each)?\)")


def stated_maximums(text: str) -> list[tuple[str, int]]:
    """Every `SETTING` (at most N) (or `A` and `B` (at most N each)) a page states."""
    return [(name, int(number)) for names, number in MAXIMUM.findall(text)
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", names)]


def wrong_maximums(text: str) -> list[str]:
    from loopctl.settings import BY_NAME

    return [f"{name} (at most {number}): the settings table says "
            f"{BY_NAME[name].maximum if name in BY_NAME else 'no such setting'}"
            for name, number in stated_maximums(text) if name not in BY_NAME or BY_NAME[name].maximum != number]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_maximum_a_page_states_is_the_settings_tables(page):
    assert wrong_maximums(page.read_text()) == []


def test_the_maximums_are_found_and_a_wrong_one_is_named():
    install = (REPO / "docs" / "install.md").read_text()
    assert ("NAS_CONNECT_TIMEOUT", 300) in stated_maximums(install)
    assert {("CERT_WARN_DAYS", 3650), ("CERT_CRIT_DAYS", 3650)} <= set(
        stated_maximums((REPO / "docs" / "checks.md").read_text()))
    assert wrong_maximums("`KEEP_RELEASES` and `NAS_PROT` (at most 100 each)") == [
        "NAS_PROT (at most 100): the settings table says no such setting"]
    assert wrong_maximums("`CHECK_RETRIES`\n(at most 11)") == ["CHECK_RETRIES (at most 11): the settings table says 10"]


def listed_settings(page: str, lead: str) -> set[str]:
    """The settings named in the bullet of `page` that starts with `lead`."""
    text = (REPO / "docs" / page).read_text()
    bullet = re.search(rf"^- {re.escape(lead)}(.*?)(?=^\S|^- |\Z)", text, re.MULTILINE | re.DOTALL)
    assert bullet, f"docs/{page} has no bullet starting {lead!r}"
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", bullet.group(1)))


def test_the_settings_each_check_reads_are_the_ones_it_loads():
    from loopctl.checks import cli

    assert listed_settings("checks.md", "`inv health` reads") == set(cli.HEALTH_SETTINGS)
    assert listed_settings("checks.md", "`inv mcp-check` reads") == set(cli.MCP_SETTINGS)
