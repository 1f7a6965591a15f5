"""Measure loopctl on the sandbox NAS, side by side with the old way, and print a table.

Run as root with the sandbox up (./sandbox.sh, or rig/up.sh after one `inv rebuild`):

    .venv/bin/python bench/bench.py [--runs 10] [--deploys 3] [--takeovers 3]

During every rebuild and rollback: 50 requests a second through the proxy (each on a new
connection), one MCP session held open making a tool call every 250 ms, and fresh MCP
sessions one after another (official SDK clients, legacy HTTP+SSE as production).

The old way is one SSH session per command with sudo in front of docker. Its baselines here
use key login and feed the sudo password through ssh's stdin, never a command line, so they measure the same work without the leak: `ssh nas sudo docker ps`
with the password, and `ssh nasbot sudo -n docker ps` for passwordless sudo. Deploys run with
the sandbox's 5 s verification window (production defaults to 30 s; the window is reported
apart from the overhead).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.clients import FreshSessions, HeldSession  # noqa: E402
from rig.load import Load  # noqa: E402
from rig.sandbox import (NAS_ENV, NASBOT_ENV, REPO, RIG_STATE, app_compose_up, commit_change, get, inv,  # noqa: E402
                         reset_nas, serving, sh, sudo_password)

SYNOLOGY_DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"
# The deploys' verification window here (the sandbox's settings say 2 s, for the tests' sake).
VERIFY_SECONDS = 5


def timed(command: list[str] | None = None, *, verb: tuple[str, ...] = (), env_file: Path = NAS_ENV,
          stdin: str | None = None) -> float:
    started = time.perf_counter()
    if verb:
        result = inv(*verb, env_file=env_file)
    else:
        result = subprocess.run(command, capture_output=True, text=True, input=stdin)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark step failed: {verb or command}\n{result.stdout}{result.stderr}")
    return elapsed


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def seconds_in(summary: str, key: str) -> float:
    match = re.search(rf"{key} ([\d.]+)s", summary)
    return float(match.group(1)) if match else 0.0


@dataclass
class Change:
    wall: float
    summary: str
    load: Load
    held: HeldSession
    fresh: FreshSessions
    serves_after: float | None = None  # seconds from the verb's start until the expected commit answered


def watch_for(commit: str, started: float, found: list[float], stop: threading.Event) -> None:
    """Poll /health every 20 ms until `commit` answers through the proxy."""
    while not stop.is_set():
        try:
            status, _, body = get("/health", timeout=1)
            if status == 200 and json.loads(body).get("commit") == commit:
                found.append(time.perf_counter() - started)
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)


def change_under_load(*verb: str, expect: str | None = None) -> Change:
    """`inv VERB` with the load, a held MCP session and fresh ones; with `expect`, also when that
    commit first answered through the proxy."""
    found: list[float] = []
    stop = threading.Event()
    with HeldSession("sse") as held, FreshSessions("sse") as fresh, Load(rate=50) as load:
        started = time.perf_counter()
        watcher = threading.Thread(target=watch_for, args=(expect, started, found, stop), daemon=True)
        if expect:
            watcher.start()
        result = inv(*verb, env={"DEPLOY_VERIFY_SECONDS": str(VERIFY_SECONDS)})
        wall = time.perf_counter() - started
        stop.set()
        time.sleep(0.5)  # a tool call or two after the change, through what it left
    if result.returncode != 0:
        raise SystemExit(f"inv {' '.join(verb)} failed:\n{result.stdout}{result.stderr}")
    summary = next(line for line in result.stdout.splitlines() if re.search(r"\bswitch [\d.]+s", line))
    return Change(wall, summary, load, held, fresh, found[0] if found else None)


def image_commit(color: str) -> str:
    return sh(f"docker inspect -f '{{{{.Config.Image}}}}' loop-api-{color}").stdout.strip().rsplit(":", 1)[-1]


def standby_memory() -> str:
    """What the warm standby costs: its container's memory now (idle, after a deploy)."""
    color, _ = serving()
    other = "green" if color == "blue" else "blue"
    return sh(f"docker stats --no-stream --format '{{{{.MemUsage}}}}' loop-api-{other}").stdout.split("/")[0].strip()


def rollback_parts(runs: int) -> list[tuple[str, str, str]]:
    """Where a rollback's time goes, apart from the script's own phases (its summary): the
    Python start-up with the modules a verb imports, the SSH connection and login, and one
    command through sudo on that connection against the same without sudo."""
    python = [timed([sys.executable, "-c", "import tasks, fabric, paramiko"]) for _ in range(runs)]
    os.environ["LOOP_ENV_FILE"] = str(NAS_ENV)
    from loopctl import settings as settings_module
    from loopctl.ssh import Nas
    settings = settings_module.load()
    connect, plain, sudo = [], [], []
    for _ in range(runs):
        nas = Nas(settings)
        started = time.perf_counter()
        nas.connection  # noqa: B018 (opens it)
        connect.append(time.perf_counter() - started)
        started = time.perf_counter()
        nas.probe(["true"], sudo=False)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        nas.probe(["true"], sudo=True)
        sudo.append(time.perf_counter() - started)
        nas.close()
    return [
        ("  Python start-up (interpreter, Invoke, Fabric, paramiko)", f"{median(python):.2f} s", ""),
        ("  SSH connection and login", f"{median(connect):.2f} s", "key login, pinned host key"),
        ("  a command on it, without sudo / through sudo", f"{median(plain):.2f} s / {median(sudo):.2f} s",
         "sudo with its password, answered on stdin"),
    ]


def takeover() -> tuple[float, float, int, int]:
    """From an empty NAS running the app's own `compose up`: the first `inv rebuild` under load.
    Returns (seconds the port took to move, seconds requests failed, failed, total)."""
    reset_nas()
    for verb in ("setup", "local-sync"):
        if inv(verb).returncode != 0:
            raise SystemExit(f"inv {verb} failed before the takeover")
    app_compose_up()
    deadline = time.time() + 60
    while sh("docker inspect -f '{{.State.Health.Status}}' loop-api", check=False).stdout.strip() != "healthy":
        if time.time() > deadline:
            raise SystemExit("the app's own compose did not come up")
        time.sleep(0.2)
    with Load(rate=60) as load:
        result = inv("rebuild", "--no-sync")
    moved = re.search(r"port \d+ moved from \S+ to \S+ in ([\d.]+)s", result.stdout)
    if result.returncode != 0 or not moved:
        raise SystemExit(f"the takeover failed:\n{result.stdout}{result.stderr}")
    failed = [stamp for stamp, _ in load.failures]
    return float(moved.group(1)), (max(failed) - min(failed) if failed else 0.0), len(failed), load.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--deploys", type=int, default=3)
    parser.add_argument("--rollbacks", type=int, default=5, help="rollbacks with the load, and as many without")
    parser.add_argument("--takeovers", type=int, default=3, help="takeovers of a running app compose (0: skip)")
    args = parser.parse_args()
    # Bytecode as a user's second run has it: this machine sets PYTHONDONTWRITEBYTECODE, and
    # every run would otherwise compile loopctl again (about 25 ms of each `inv`).
    compileall.compile_dir(REPO / "loopctl", quiet=1)
    compileall.compile_file(REPO / "tasks.py", quiet=1)
    rows: list[tuple[str, str, str]] = []
    if args.takeovers:
        runs = [takeover() for _ in range(args.takeovers)]
        rows += [
            ("takeover: port moved from the app's container to the proxy (median)",
             f"{median([r[0] for r in runs]):.1f} s", "stop the app's api, start the proxy; goal under 2 s"),
            ("  requests refused meanwhile, first to last (median)", f"{median([r[1] for r in runs]):.2f} s",
             f"{sum(r[2] for r in runs)} of {sum(r[3] for r in runs)} failed at 60 req/s"),
        ]
        # A release of loopctl's own before it, so the rollbacks below switch between colors.
        commit_change(f"bench-base-{time.time()}")
        if inv("rebuild").returncode != 0:
            raise SystemExit("the rebuild after the takeovers failed")
    serving()  # the sandbox must be up and deployed

    def ssh(user: str, *remote: str) -> list[str]:
        return ["ssh", "-i", str(RIG_STATE / "id_ed25519"), "-o", f"UserKnownHostsFile={RIG_STATE / 'known_hosts'}",
                "-p", "2222", f"{user}@127.0.0.1", *remote]

    old_password = ssh("nas", "sudo", "--stdin", "--prompt=", SYNOLOGY_DOCKER, "ps")
    old_nopass = ssh("nasbot", "sudo", "--non-interactive", SYNOLOGY_DOCKER, "ps")
    password = sudo_password() + "\n"
    for label, env_file, old in (("sudo by password", NAS_ENV, lambda: timed(old_password, stdin=password)),
                                 ("passwordless sudo", NASBOT_ENV, lambda: timed(old_nopass))):
        ours = median([timed(verb=("status",), env_file=env_file) for _ in range(args.runs)])
        theirs = median([old() for _ in range(args.runs)])
        rows += [(f"`inv status`, {label} (median)", f"{ours:.2f} s", f"{ours / theirs:.1f}x the old way"),
                 (f"  old way: `ssh nas sudo docker ps`, {label}", f"{theirs:.2f} s", "")]

    quiet = []
    for _ in range(args.rollbacks):
        started = time.perf_counter()
        if inv("rollback").returncode != 0:
            raise SystemExit("a rollback without load failed")
        quiet.append(time.perf_counter() - started)
    rollbacks: list[Change] = []
    for _ in range(args.rollbacks):
        color, _ = serving()
        previous = image_commit("green" if color == "blue" else "blue")
        rollbacks.append(change_under_load("rollback", expect=previous))
    serves = [c.serves_after for c in rollbacks if c.serves_after is not None]
    rows += [
        ("`inv rollback` to the warm standby (median)", f"{median([c.wall for c in rollbacks]):.2f} s",
         "goal under 2 s, verification included"),
        ("  previous release serving, from the command's start (median)",
         f"{median(serves):.2f} s" if serves else "never", "goal under 1 s"),
        ("  the same without the load (median)", f"{median(quiet):.2f} s",
         "no requests, sessions or load generator beside it"),
        *rollback_parts(args.runs),
        ("  on the NAS: up to the switch (median)",
         f"{median([seconds_in(c.summary, 'healthy') for c in rollbacks]):.1f} s",
         "lock, home check, one look at the containers"),
        ("  on the NAS: the switch (median)", f"{median([seconds_in(c.summary, 'switch') for c in rollbacks]):.1f} s",
         "new upstream file, nginx -t and reload in one exec"),
        ("  on the NAS: verification (median)", f"{median([seconds_in(c.summary, 'verify') for c in rollbacks]):.1f} s",
         "the release answering through the proxy, then an MCP session through it"),
    ]

    rebuilds: list[Change] = []
    parts: dict[str, list[float]] = {k: [] for k in ("sync", "build", "healthy", "gate", "aux", "switch", "verify")}
    for n in range(args.deploys):
        commit_change(f"bench-{n}-{time.time()}")
        rebuilds.append(change_under_load("rebuild"))
        for key in parts:
            parts[key].append(seconds_in(rebuilds[-1].summary, key))
    totals = [c.wall for c in rebuilds]
    total = median(totals)
    overhead = [t - b - h - g - a - v for t, b, h, g, a, v in
                zip(totals, parts["build"], parts["healthy"], parts["gate"], parts["aux"], parts["verify"])]
    rows.append(("`inv rebuild` total (median)", f"{total:.1f} s", f"{args.deploys} deploys, each a new commit"))
    notes = {"aux": "loop-auth replaced (its image changes with every commit here) and healthy"}
    rows += [(f"  {key}", f"{median(values):.1f} s", notes.get(key, "")) for key, values in parts.items()]
    rows.append(("  tool overhead: all but build, start, gate, aux and the verify window", f"{median(overhead):.1f} s",
                 "sync, prepare, switch, SSH, Python"))

    def failed(changes: list[Change], part: str) -> str:
        clients = [getattr(c, part) for c in changes]
        if part == "load":
            return f"{sum(len(l.failures) for l in clients)} of {sum(l.total for l in clients)}"
        return f"{sum(len(x.failures) for x in clients)} of {sum(x.calls for x in clients)}"

    rows += [
        ("failed requests during rebuilds (50 req/s)", failed(rebuilds, "load"), "new connection per request"),
        ("failed requests during rollbacks (50 req/s)", failed(rollbacks, "load"), ""),
        ("tool calls failed, session held through rebuilds", failed(rebuilds, "held"), "a call every 250 ms; goal 0"),
        ("tool calls failed, session held through rollbacks", failed(rollbacks, "held"), "goal 0"),
        ("fresh sessions failed during rebuilds and rollbacks", failed(rebuilds + rollbacks, "fresh"),
         "one after another; goal 0"),
        ("memory of the warm standby (idle, KEEP_WARM=1)", standby_memory(), "docker stats, after the rebuilds"),
        ("`inv --list` start-up (median)", f"{median([timed(verb=('--list',)) for _ in range(args.runs)]):.2f} s", ""),
        ("`inv health` (median)", f"{median([timed(verb=('health', '--no-alert')) for _ in range(args.runs)]):.2f} s",
         "HTTP only, no SSH"),
    ]

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"{date.today()}, {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"sandbox NAS on loopback\n")
    print("| measure | result | note |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
