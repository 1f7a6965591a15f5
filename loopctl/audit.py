"""The audit trail: one JSON line per run of a verb that changes the NAS.

Written twice: on the NAS (`.loopctl/state/audit.jsonl`, shared by everyone who operates
it) and locally (`AUDIT_LOG`), so a record survives either side being unreachable.
Records hold verb arguments, never settings, so no secret can end up in one.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import commands, contract
from .ssh import Nas
from .text import one_line

if TYPE_CHECKING:
    from .session import Session


def performer() -> str:
    """`Name <email>` from git config, else user@host: who ran the verb. Anyone can write
    anything into git config, and this goes into records, NAS scripts' arguments and
    terminals, so it is one printable line of at most 200 characters."""
    def git_config(key: str) -> str:
        try:
            return subprocess.run(["git", "config", "--get", key], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    name, email = one_line(git_config("user.name")), one_line(git_config("user.email"))
    if name:
        return one_line(f"{name} <{email}>" if email else name)
    return one_line(f"{getpass.getuser()}@{socket.gethostname()}")


def make_record(verb: str, args: dict[str, Any], host: str, status: int, seconds: float,
                who: str | None = None) -> dict[str, Any]:
    return {
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "performer": who if who is not None else performer(),
        "verb": verb,
        "args": args,
        "host": host,
        "status": status,
        "seconds": round(seconds, 2),
    }


def append_local(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(record, sort_keys=True) + "\n")


def append_remote(nas: Nas, record: dict[str, Any]) -> None:
    nas.change(commands.audit_append(nas.settings, json.dumps(record, sort_keys=True)))


def parse(lines: str) -> list[dict[str, Any]]:
    records = []
    for line in lines.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def format_record(r: dict[str, Any]) -> str:
    args = " ".join(f"--{k.replace('_', '-')}={v}" if v is not True else f"--{k.replace('_', '-')}"
                    for k, v in r.get("args", {}).items() if v not in (None, False, ""))
    outcome = "ok" if r.get("status") == 0 else f"exit {r.get('status')}"
    return (f"{r.get('time', '?')}  {r.get('verb', '?'):<12} {outcome:<7} {r.get('seconds', 0):>7.1f}s  "
            f"{r.get('performer', '?')}  {r.get('host', '?')}  {args}").rstrip()


def show(session: Session, lines: int, local: bool) -> None:
    if local:
        path = session.settings.audit_log
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        where = str(path)
    else:
        path = commands.in_home(session.settings, contract.AUDIT_FILE)
        text = session.nas.probe(commands.tail_file(path, lines), ok=(0, 1)).stdout
        where = f"{session.nas.where}:{path}"
    records = parse(text)[-lines:]
    if not records:
        session.say(f"no audit records yet in {where}")
    for record in records:
        session.say(format_record(record))
