"""`inv setup`: put the bundle (bundle.py: the NAS-side scripts and stack files) on the NAS.

The bundle is uploaded as one tar archive, as the SSH user, to a temporary folder and
installed by `scripts/install.sh` as root, one atomic rename per file. Afterwards the drift
fact (facts.DRIFT) must find the NAS copies the same bytes as the bundle.
"""

from __future__ import annotations

import io
import tarfile

from . import commands, contract
from .bundle import bundle, manifest
from .errors import AuthFailed, Refused, RemoteFailed
from .facts import DRIFT, STATUS, describe_drift, is_in_sync, read
from .session import Session
from .runlog import script_failure


def archive(files: dict[str, bytes]) -> bytes:
    """The bundle and its MANIFEST as one upload: a tar, with the scripts executable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content in {**files, contract.MANIFEST_FILE: manifest(files).encode()}.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o755 if path.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


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
