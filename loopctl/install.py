"""`inv setup`: put the NAS-side scripts and stack files on the NAS, and detect drift.

The bundle is the repository's `scripts/*.sh`, the `deploy/` files the NAS runs, and a
`stack.env` rendered from the settings. It is uploaded as the SSH user to a temporary
folder and installed by `scripts/install.sh` as root, one atomic rename per file.
Drift compares the checksums of the NAS copies with the local bundle, so a hand edit on
the NAS shows up as much as a newer local script.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile

from . import commands, contract
from .errors import AuthFailed, ConfigError, Refused, RemoteFailed
from .facts import STATUS, Fact, read
from .runner import Output
from .session import Session
from .runlog import script_failure
from .settings import PROJECT_DIR, Settings

NGINX_CONF = f"{contract.NGINX_CONF_DIR}/nginx.conf"


def stack_env(settings: Settings) -> str:
    """What the NAS scripts read (lib.sh STACK_FIELDS, exactly); every value passed the settings' checks."""
    values = {
        "DOCKER": settings.nas_docker,
        "COMPOSE_VERSION": settings.stack_compose,
        "APP_DIR": settings.nas_app_dir,
        "APP_COMPOSE_FILE": settings.app_compose_file,
        "API_SERVICE": settings.api_service,
        "KEEP_RELEASES": settings.keep_releases,
        "KEEP_WARM": int(settings.keep_warm),
    }
    lines = ["# Written by `inv setup` from the workstation's settings: change them there, run it again."]
    return "\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n"


def nginx_conf(settings: Settings) -> str:
    """deploy/nginx/nginx.conf with DRAIN_SECONDS as how long old workers keep their streams."""
    text = (PROJECT_DIR / NGINX_CONF).read_text()
    drained, found = re.subn(r"(?m)^worker_shutdown_timeout \d+s;$",
                             f"worker_shutdown_timeout {settings.drain_seconds}s;", text)
    if found != 1:
        raise ConfigError(f"{NGINX_CONF} has no single `worker_shutdown_timeout Ns;` line")
    return drained


def bundle(settings: Settings) -> dict[str, bytes]:
    """Path inside the loopctl home -> content."""
    scripts = [*sorted(contract.CONTRACT_FILE.parent.glob("*.sh")), contract.CONTRACT_FILE]
    files = {f"{contract.SCRIPTS_DIR}/{p.name}": p.read_bytes() for p in scripts}
    files[NGINX_CONF] = nginx_conf(settings).encode()
    files[contract.STACK_ENV_FILE] = stack_env(settings).encode()
    return files


def checksums(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}


def manifest(files: dict[str, bytes]) -> str:
    """In `sha256sum` format, so `sha256sum -c MANIFEST` works on the NAS."""
    return "".join(f"{digest}  {path}\n" for path, digest in checksums(files).items())


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in {**files, contract.MANIFEST_FILE: manifest(files).encode()}.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o755 if path.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def parse_sha256sum(text: str, prefix: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        digest, _, path = line.partition("  ")
        if path.startswith(prefix):
            found[path[len(prefix):]] = digest
    return found


def parse_drift(out: Output, settings: Settings) -> dict:
    """{'files': n, 'changed': [...], 'missing': [...]} of the NAS copies against the local bundle."""
    wanted = checksums(bundle(settings))
    found = parse_sha256sum(out.stdout, commands.home(settings) + "/")
    return {
        "files": len(wanted),
        "missing": [p for p in wanted if p not in found],
        "changed": [p for p in wanted if p in found and found[p] != wanted[p]],
    }


DRIFT = Fact("drift",
             lambda settings: commands.checksums([commands.in_home(settings, p) for p in checksums(bundle(settings))]),
             parse_drift, ok=(0, 1))


def describe_drift(d: dict) -> str:
    if len(d["missing"]) == d["files"]:
        return "not installed: run `inv setup`"
    if is_in_sync(d):
        return f"in sync ({d['files']} files)"
    parts = [f"{p} differs" for p in d["changed"]] + [f"{p} missing" for p in d["missing"]]
    return "DRIFT: " + ", ".join(parts) + " (run `inv setup`)"


def is_in_sync(d: dict) -> bool:
    return not d["missing"] and not d["changed"]


def setup(session: Session) -> None:
    nas, files = session.nas, bundle(session.settings)
    if not session.dry:
        nas.connection  # noqa: B018 (connected first: "installing" is said only once it can be done)
    session.say(f"==> installing {len(files)} files into {commands.home(session.settings)} on {nas.where}")
    made = nas.change(commands.make_upload_dir("setup"), sudo=False)
    upload_dir = made.stdout.strip() if made else "/tmp/loopctl-setup.XXXXXX"
    try:
        nas.put_bytes(archive(files), f"{upload_dir}/bundle.tar")
        nas.change(commands.unpack(f"{upload_dir}/bundle.tar", upload_dir), sudo=False)
        argv = commands.install_bundle(session.settings, upload_dir)
        try:
            # Every exit status of install.sh is read below (contract.SCRIPT_EXITS); sudo's own
            # refusal is not one of them.
            result = nas.change(argv, sudo=True, ok=None)
            refused = result is not None and result.exited != 0 and nas.sudo_refusal(argv, result)
            if refused:
                raise refused
        except AuthFailed as error:
            raise AuthFailed(f"{error} (the installer runs as root from a temporary folder, so `inv setup` "
                             f"needs full sudo: run it once with NAS_SUDO_PASSWORD set)") from None
    finally:
        nas.change(commands.remove_upload_dir(upload_dir), sudo=False)
    if result is None:
        return
    if result.exited != 0:
        raise script_failure(commands.INSTALL_SCRIPT, result)
    session.say(result.stdout.rstrip())
    d = read(nas, DRIFT)
    if not is_in_sync(d):
        raise RemoteFailed(f"installed files do not match the bundle: {describe_drift(d)}")
    session.say(f"==> scripts {describe_drift(d)}")
    state = read(nas, STATUS)
    for problem in state.tool_problems:
        session.warn(f"the NAS lacks what the scripts use: {problem}")
    for problem in state.home_problems:
        session.warn(f"the loopctl home is not safe: {problem}")
    if state.tool_problems or state.home_problems:
        raise Refused("the NAS is not ready for deploys (see the warnings above)")
    session.say("==> the NAS has every tool the scripts use; the loopctl home is root's alone")
