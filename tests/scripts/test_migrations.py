"""One-time migrations carry the release after which they go: code that repairs what an older
loopctl left (an old home in the checkout, an upstream file without a standby, releases that
mounted the OAuth folder) is marked `# migration, removed after loopctl X.Y: ...`, and this
test fails once contract.env's LOOPCTL_VERSION is past X.Y, so none outlives it unnoticed."""

from __future__ import annotations

import re
from pathlib import Path

from loopctl import contract

REPO = Path(__file__).resolve().parents[2]
MARK = re.compile(r"#\s*migration, removed after loopctl (\S+?):")


def version(text: str) -> tuple[int, ...]:
    assert re.fullmatch(r"\d+(\.\d+)*", text), f"not a release number: {text!r}"
    return tuple(int(part) for part in text.split("."))


def marks() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted([*(REPO / "scripts").glob("*.sh"), *(REPO / "loopctl").glob("*.py"), REPO / "tasks.py"]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found += [(f"{path.name}:{number}", number, match.group(1)) for match in MARK.finditer(line)]
    return found


def test_the_release_is_a_plain_number():
    version(contract.LOOPCTL_VERSION)


def test_every_migration_goes_after_the_release_it_names():
    assert marks(), "no migration is marked: the check below would pass without looking"
    current = version(contract.LOOPCTL_VERSION)
    overdue = [f"{where} (after {until})" for where, _, until in marks() if current > version(until)]
    assert overdue == [], f"loopctl {contract.LOOPCTL_VERSION} still carries migrations it should have dropped: {overdue}"


def test_a_mark_is_read_as_it_is_written():
    assert MARK.search("  # migration, removed after loopctl 1.0: the old home").group(1) == "1.0"
    assert not MARK.search("# a migration of the data")
