"""Measure loopctl on the sandbox NAS, side by side with the old way, and print a table.

Run as root with the sandbox up (./sandbox.sh, or rig/up.sh after one `inv rebuild`):

    .venv/bin/python bench/bench.py [--runs 10] [--deploys 3] [--takeovers 3]

The old way is one SSH session per command with sudo in front of docker. Its baselines here
use key login and feed the sudo password through ssh's stdin, never a command line, so they measure the same work without the leak: `ssh nas sudo docker ps`
with the password, and `ssh nasbot sudo -n docker ps` for passwordless sudo. Deploys run with
the sandbox's 5 s verification window (production defaults to 30 s; the window is reported
apart from the overhead).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rig.support import (NAS_ENV, NASBOT_ENV, RIG_STATE, Load, app_compose_up, commit_change,  # noqa: E402
                               inv, reset_nas, serving, sh, sudo_password)

SYNOLOGY_DOCKER = "/var/packages/ContainerManager/target/usr/bin/docker"


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


def deploy_under_load(*verb: str) -> tuple[float, str, Load]:
    with Load(rate=60) as load:
        started = time.perf_counter()
        result = inv(*verb)
        wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"inv {' '.join(verb)} failed:\n{result.stdout}{result.stderr}")
    summary = next(line for line in result.stdout.splitlines() if line.startswith("    ") and "switch" in line)
    return wall, summary, load


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
    parser.add_argument("--takeovers", type=int, default=3, help="takeovers of a running app compose (0: skip)")
    args = parser.parse_args()
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

    rollbacks, switches, rollback_load = [], [], []
    for _ in range(args.deploys):
        wall, summary, load = deploy_under_load("rollback")
        rollbacks.append(wall)
        switches.append(seconds_in(summary, "switch"))
        rollback_load.append(load)
    rows += [
        ("`inv rollback`, previous container kept (median)", f"{median(rollbacks):.1f} s", "old script: ~30 s"),
        ("  switch inside it (median)", f"{median(switches):.1f} s", "nginx -t, rename, reload"),
    ]

    totals, parts, rebuild_load = [], {k: [] for k in ("sync", "build", "healthy", "switch", "verify")}, []
    for n in range(args.deploys):
        commit_change(f"bench-{n}-{time.time()}")
        wall, summary, load = deploy_under_load("rebuild")
        totals.append(wall)
        rebuild_load.append(load)
        for key in parts:
            parts[key].append(seconds_in(summary, key))
    total = median(totals)
    overhead = [t - b - h - v for t, b, h, v in zip(totals, parts["build"], parts["healthy"], parts["verify"])]
    rows.append(("`inv rebuild` total (median)", f"{total:.1f} s", f"{args.deploys} deploys, each a new commit"))
    rows += [(f"  {key}", f"{median(values):.1f} s", "") for key, values in parts.items()]
    rows.append(("  tool overhead: all but build, start and the verify window", f"{median(overhead):.1f} s",
                 "sync, switch, stop old, SSH, Python"))

    def failed(loads: list[Load]) -> str:
        return f"{sum(len(l.failures) for l in loads)} of {sum(l.total for l in loads)}"

    rows += [
        ("failed requests during rebuilds (60 req/s)", failed(rebuild_load), "new connection per request"),
        ("failed requests during rollbacks (60 req/s)", failed(rollback_load), ""),
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
