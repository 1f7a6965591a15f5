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
import tarfile
import tempfile
from pathlib import Path

from . import commands
from .cli import Session
from .errors import AuthFailed, RemoteFailed
from .runner import Nas
from .settings import PROJECT_DIR, Settings

DEPLOY_FILES = ("deploy/docker-compose.yml", "deploy/nginx/nginx.conf")


def stack_env(s: Settings) -> str:
    """What the NAS scripts and compose read; every value passed the settings' plain-text check."""
    proxy_host = "127.0.0.1" if s.stack_bind in ("0.0.0.0", "") else s.stack_bind
    values = {
        "DOCKER": s.nas_docker,
        "BASE_IMAGE": s.stack_base_image,
        "PROXY_IMAGE": s.stack_proxy_image,
        "STACK_BIND": s.stack_bind,
        "PROXY_HOST": proxy_host,
        "PROXY_PORT": s.stack_proxy_port,
        "AUTH_PORT": s.stack_auth_port,
        "VAULT_DIR": s.stack_vault_dir,
        "EXEC_VAULT_DIR": s.stack_exec_vault_dir,
        "OAUTH_DIR": s.stack_oauth_dir,
        "KEEP_RELEASES": s.keep_releases,
    }
    lines = ["# Written by `inv setup` from the workstation's settings: change them there, run it again."]
    return "\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n"


def bundle(s: Settings) -> dict[str, bytes]:
    """Path inside .loopctl -> content."""
    files = {f"scripts/{p.name}": p.read_bytes() for p in sorted((PROJECT_DIR / "scripts").glob("*.sh"))}
    files.update({path: (PROJECT_DIR / path).read_bytes() for path in DEPLOY_FILES})
    files["stack.env"] = stack_env(s).encode()
    return files


def checksums(files: dict[str, bytes]) -> dict[str, str]:
    return {path: hashlib.sha256(content).hexdigest() for path, content in files.items()}


def manifest(files: dict[str, bytes]) -> str:
    """In `sha256sum` format, so `sha256sum -c MANIFEST` works on the NAS."""
    return "".join(f"{digest}  {path}\n" for path, digest in checksums(files).items())


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in {**files, "MANIFEST": manifest(files).encode()}.items():
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


def drift(nas: Nas) -> dict:
    """{'files': n, 'changed': [...], 'missing': [...]} of the NAS copies against the local bundle."""
    wanted = checksums(bundle(nas.settings))
    prefix = commands.home(nas.settings) + "/"
    out = nas.probe(commands.checksums([prefix + path for path in wanted]), ok=(0, 1))
    found = parse_sha256sum(out.stdout, prefix)
    return {
        "files": len(wanted),
        "missing": [p for p in wanted if p not in found],
        "changed": [p for p in wanted if p in found and found[p] != wanted[p]],
    }


def describe_drift(d: dict) -> str:
    if len(d["missing"]) == d["files"]:
        return "not installed: run `inv setup`"
    if is_in_sync(d):
        return f"in sync ({d['files']} files)"
    parts = [f"{p} differs" for p in d["changed"]] + [f"{p} missing" for p in d["missing"]]
    return "DRIFT: " + ", ".join(parts) + " (run `inv setup`)"


def is_in_sync(d: dict) -> bool:
    return not d["missing"] and not d["changed"]


def setup(s: Session) -> None:
    nas, files = s.nas, bundle(s.settings)
    s.say(f"==> installing {len(files)} files into {commands.home(s.settings)} on {nas.where}")
    made = nas.change(commands.make_upload_dir(), sudo=False)
    upload_dir = made.stdout.strip() if made else "/tmp/loopctl-setup.XXXXXX"
    try:
        with tempfile.TemporaryDirectory() as local_dir:
            local_archive = Path(local_dir) / "bundle.tar"
            local_archive.write_bytes(archive(files))
            nas.put(str(local_archive), f"{upload_dir}/bundle.tar")
        nas.change(commands.unpack(f"{upload_dir}/bundle.tar", upload_dir), sudo=False)
        try:
            result = nas.change(commands.install_bundle(s.settings, upload_dir), sudo=True)
        except AuthFailed as error:
            raise AuthFailed(f"{error} (the installer runs as root from a temporary folder, so `inv setup` "
                             f"needs full sudo: run it once with NAS_SUDO_PASSWORD set)") from None
    finally:
        nas.change(commands.remove_upload_dir(upload_dir), sudo=False)
    if result is None:
        return
    s.say(result.stdout.rstrip())
    d = drift(nas)
    if not is_in_sync(d):
        raise RemoteFailed(f"installed files do not match the bundle: {describe_drift(d)}")
    s.say(f"==> scripts {describe_drift(d)}")
