"""The bundle: what the loopctl home on the NAS should hold, as this checkout defines it.

It is the repository's `scripts/*.sh` and contract.env, the `deploy/` files the NAS runs,
and a `stack.env` rendered from the settings, with their MANIFEST. `inv setup` installs
exactly this (install.py), and the drift fact compares the NAS copies against it
(facts.DRIFT): one definition for both, so what is installed and what is checked cannot
differ. Its own module because both sides import it, and facts.py cannot import install.py.
"""

from __future__ import annotations

import hashlib
import re

from . import contract
from .errors import ConfigError
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
