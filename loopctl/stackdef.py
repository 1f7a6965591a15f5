"""A release's stack definition, written from the app's own compose file.

Why: the app's `docker-compose.yml` is the source of truth for how its services are built
and run. The NAS resolves it with Compose itself (`scripts/prepare.sh`: `compose config`
of the commit, relative paths against the checkout); this module turns that resolved model
into the blue-green stack: the api service copied once per color with only the names, the
published ports (the proxy takes those) and what loopctl must add (a healthcheck where the
app has none, the color and commit in the environment) changed; the app's other services
as it defines them; and the proxy. Everything is pure: the tests feed it Compose v1's and
v2's real output.

It also refuses what would put root on the NAS within the app container's reach. Compose read
only the commit's files (the export is the project folder); the one input the app controls is
the checkout's `.env`, so host settings (mounts, devices, privileges, namespaces) must be
written out, never taken from a variable (checked on `config --no-interpolate`, includes and
extends merged). No mount may reach the loopctl home, and no bind source may sit inside a
folder a container writes: Docker follows links in a bind source at every start, and a
container can swap such a folder for a link. The OAuth folder, which the app's compose mounts
from inside the checkout, becomes a named volume (see scripts/lib-oauth.sh for the move).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from . import contract
from .errors import ConfigError

# What decides the host's exposure and what is built: written out in the committed file, never
# taken from a variable (the checkout's .env is the app's to rewrite).
HOST_FIELDS = ("volumes", "devices", "privileged", "cap_add", "security_opt", "network_mode", "pid", "ipc",
               "uts", "userns_mode", "cgroup_parent", "cgroup", "device_cgroup_rules", "runtime", "volumes_from",
               "env_file", "sysctls", "ports", "image", "build", "group_add", "gpus", "isolation", "extends")
# The stack's key for the volume the OAuth state lives in; its name is `<project>-oauth`.
OAUTH_VOLUME_KEY = "loopctl-oauth"
# What no mount may reach, whatever the app says: the Docker socket (root on the NAS) and
# Docker's own data (every container's and volume's files, Synology's included), from any
# folder above them too.
FORBIDDEN_SOURCES = ("/var/run/docker.sock", "/run/docker.sock", "/var/lib/docker", "/volume1/@docker")
SAFE_VALUE = re.compile(r"[A-Za-z0-9_./:@,+-]*")


@dataclass
class Release:
    """What `prepare.sh` printed, resolved into the release loopctl deploys."""

    commit: str
    stack: dict[str, Any]
    fields: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.commit[:12]

    def stack_json(self) -> str:
        return json.dumps(self.stack, indent=2, sort_keys=True) + "\n"

    def release_env(self) -> str:
        lines = ["# Written by loopctl for this release; read by the NAS scripts (lib-deploy.sh)."]
        return "\n".join(lines + [f"{k}={v}" for k, v in self.fields.items()]) + "\n"


@dataclass(frozen=True)
class Prepared:
    """What prepare.sh printed: the committed top-level file, and Compose's model of the commit
    with variables substituted (resolved) and without (literal)."""

    compose_major: int
    raw: str
    resolved: str
    literal: str


def parse_prepared(output: str) -> Prepared:
    """The four lines of `prepare.sh`."""
    found = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    try:
        return Prepared(int(found["compose"]), *(base64.b64decode(found[key]).decode()
                                                 for key in ("raw", "resolved", "literal")))
    except (KeyError, ValueError, binascii.Error, UnicodeDecodeError):
        raise ConfigError("prepare.sh on the NAS printed no resolved compose model") from None


def project_name(app_dir: str) -> str:
    """Compose's default project name: the checkout folder's name, lowercased, letters, digits, - and _."""
    return re.sub(r"[^a-z0-9_-]", "", posixpath.basename(app_dir.rstrip("/")).lower())


def load_yaml(text: str, what: str) -> dict[str, Any]:
    try:
        model = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(model, dict) or not isinstance(model.get("services"), dict) or not model["services"]:
        raise ConfigError(f"{what} defines no services")
    return model


# --- ports and mounts, in either Compose's syntax ----------------------------------------------

@dataclass(frozen=True)
class Port:
    host_ip: str
    published: str
    target: int


def parse_port(entry: Any) -> Port | None:
    """A published port from v2's long syntax or v1's `[ip:]published:target[/proto]`."""
    if isinstance(entry, dict):
        if not entry.get("published"):
            return None
        return Port(str(entry.get("host_ip") or ""), str(entry["published"]), int(entry["target"]))
    text = str(entry).split("/")[0]
    parts = text.rsplit(":", 2)
    if len(parts) == 1:
        return None
    if len(parts) == 2:
        return Port("", parts[0], int(parts[1]))
    return Port(parts[0].strip("[]"), parts[1], int(parts[2]))


@dataclass(frozen=True)
class Mount:
    kind: str
    source: str
    target: str
    read_only: bool


def parse_mount(entry: Any) -> Mount:
    if isinstance(entry, dict):
        return Mount(entry.get("type", "volume"), str(entry.get("source") or ""), str(entry.get("target", "")),
                     bool(entry.get("read_only")))
    parts = str(entry).split(":")
    if len(parts) == 1:
        return Mount("volume", "", parts[0], False)
    mode = parts[2] if len(parts) > 2 else "rw"
    kind = "bind" if parts[0].startswith(("/", ".", "~")) else "volume"
    return Mount(kind, parts[0], parts[1], "ro" in mode.split(","))


def within(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


# --- the checks ------------------------------------------------------------------------------

def literal_host_fields(raw: dict[str, Any], compose_file: str) -> None:
    """Host settings must be written out in the committed files (`raw`: Compose's model of them
    without variables substituted): a `${VAR}` there takes its value from the checkout's .env,
    which the app container can rewrite."""
    def strings(value: Any):
        if isinstance(value, dict):
            for k, v in value.items():
                yield str(k)
                yield from strings(v)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif value is not None:
            yield str(value)

    for name, service in (raw.get("services") or {}).items():
        service = dict(service or {})
        for key in HOST_FIELDS:
            if key in service and any("$" in text for text in strings(service[key])):
                raise ConfigError(f"{compose_file}: service {name}: `{key}` takes a value from a variable; host "
                                  f"settings and what is built must be written out in the file (the app can "
                                  f"change the checkout's .env)")
    for section in ("volumes", "networks", "secrets", "configs"):
        for name, item in (raw.get(section) or {}).items():
            if any("$" in text for text in strings(item)):
                raise ConfigError(f"{compose_file}: {section} {name} takes a value from a variable; host settings "
                                  f"must be written out in the file (the app can change the checkout's .env)")


def check_mounts(name: str, service: dict[str, Any], loopctl_dir: str) -> None:
    for entry in service.get("volumes") or []:
        mount = parse_mount(entry)
        if mount.kind != "bind":
            continue
        if within(loopctl_dir, mount.source) or within(mount.source, loopctl_dir):
            raise ConfigError(f"service {name} mounts {mount.source}, which holds the loopctl home {loopctl_dir}: "
                              f"refused (a container must not reach what root runs)")
        if mount.source == "/" or any(within(forbidden, mount.source) or within(mount.source, forbidden)
                                      for forbidden in FORBIDDEN_SOURCES):
            raise ConfigError(f"service {name} mounts {mount.source}: refused (root on the NAS from the container)")


def published_ports(services: dict[str, Any]) -> dict[str, list[Port]]:
    ports = {name: [p for p in map(parse_port, service.get("ports") or []) if p] for name, service in services.items()}
    seen: dict[str, str] = {}
    for name, found in ports.items():
        for port in found:
            other = seen.get(port.published)
            if other and other != name:
                raise ConfigError(f"services {other} and {name} both publish port {port.published}")
            if other == name:
                raise ConfigError(f"service {name} publishes port {port.published} twice")
            seen[port.published] = name
    return ports


# --- the transform --------------------------------------------------------------------------------

def supplied_healthcheck(container_port: int, health_path: str) -> dict[str, Any]:
    """An HTTP check of HEALTH_PATH on the container port with whatever the image has: curl, wget or
    Python. Every second, so a started color is reported healthy within about a second."""
    url = f"http://127.0.0.1:{container_port}{health_path}"
    script = (f"if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null -m 3 {url}; "
              f"elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null -T 3 {url}; "
              f"elif command -v python3 >/dev/null 2>&1; then python3 -c "
              f"\"import urllib.request; urllib.request.urlopen('{url}', timeout=3)\"; "
              f"else exit 1; fi")
    return {"test": ["CMD-SHELL", script], "interval": "1s", "timeout": "3s", "retries": 3, "start_period": "60s"}


def with_environment(service: dict[str, Any], extra: dict[str, str]) -> None:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    service["environment"] = {**env, **extra}


def with_labels(mapping: dict[str, Any], key: str, extra: dict[str, str]) -> None:
    labels = mapping.get(key) or {}
    if isinstance(labels, list):
        labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in labels)
    mapping[key] = {**labels, **extra}


def check_build(name: str, service: dict[str, Any], export_dir: str) -> None:
    """Builds read the commit's export (the project folder Compose resolved against), never the
    checkout (which the app writes) or anything else on the NAS."""
    build = service.get("build")
    if build is None:
        return
    context = str(build.get("context", ".") if isinstance(build, dict) else build)
    if not context.startswith("/") or not within(context, export_dir):
        raise ConfigError(f"service {name} builds from {context}, outside the commit's files: loopctl builds "
                          f"from the deployed commit only")
    dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
    if isinstance(dockerfile, str) and dockerfile.startswith("/") and not within(dockerfile, export_dir):
        raise ConfigError(f"service {name}'s Dockerfile {dockerfile} is outside the commit's files")


def in_checkout(entry: Any, export_dir: str, app_dir: str) -> Any:
    """A mount resolved against the export, against the checkout again: the app's data is there
    (only what is built comes from the export)."""
    mount = parse_mount(entry)
    if mount.kind != "bind" or not within(mount.source, export_dir):
        return entry
    source = app_dir.rstrip("/") + mount.source[len(export_dir):]
    if isinstance(entry, dict):
        return {**entry, "source": source}
    return source + str(entry)[len(mount.source):]


def with_oauth_volume(entry: Any, oauth_from: str) -> Any:
    """A bind of the OAuth folder, as a mount of the OAuth volume at the same place."""
    mount = parse_mount(entry)
    if mount.kind != "bind" or mount.source != oauth_from:
        return entry
    return f"{OAUTH_VOLUME_KEY}:{mount.target}{':ro' if mount.read_only else ''}"


def refuse_nested_binds(services: dict[str, Any]) -> None:
    """A bind source inside a folder some container writes can be swapped for a link by that
    container, and Docker follows it at the next start (its own restarts included)."""
    binds = [(name, parse_mount(entry)) for name, service in services.items() for entry in service.get("volumes") or []]
    binds = [(name, mount) for name, mount in binds if mount.kind == "bind"]
    for name, mount in binds:
        for writer, outer in binds:
            if not outer.read_only and mount.source != outer.source and within(mount.source, outer.source):
                raise ConfigError(f"service {name} mounts {mount.source}, inside {outer.source}, which {writer} "
                                  f"writes: that container could replace it with a link, which Docker follows at "
                                  f"every start; mount a named volume there, or a folder outside {outer.source}")


def refuse_bind_volumes(model: dict[str, Any]) -> None:
    """A named volume with the local driver's bind options is a bind mount Docker makes at every
    start, following links like any other: none is taken (a plain volume or a bind instead)."""
    for name, spec in (model.get("volumes") or {}).items():
        options = (spec or {}).get("driver_opts") or {}
        if options.get("device") or "bind" in str(options.get("o", "")).split(","):
            raise ConfigError(f"volume {name} binds a folder through driver_opts ({options.get('device', '?')}): "
                              f"Docker follows links there at every start; mount the folder as a bind instead")


def refuse_file_objects(model: dict[str, Any]) -> None:
    """File secrets and configs are read when a container starts, from the export of whichever
    commit was built last: a rollback would get the newest commit's files."""
    for section in ("secrets", "configs"):
        for name, item in (model.get(section) or {}).items():
            if isinstance(item, dict) and item.get("file"):
                raise ConfigError(f"{section} {name} is read from a file ({item['file']}): loopctl releases do not "
                                  f"keep files; use `environment:` or a variable instead")


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with `change` applied to every string value in it (keys stay as they are)."""
    if isinstance(value, dict):
        return {k: map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, change) for v in value]
    return change(value) if isinstance(value, str) else value


def escape_dollars(value: Any) -> Any:
    """The stack file is read by Compose again, which interpolates `$`: resolved values are literal."""
    return map_strings(value, lambda text: text.replace("$", "$$"))


def unescape_dollars(value: Any) -> Any:
    """Both Composes' `config` write a literal `$` as `$$`."""
    return map_strings(value, lambda text: text.replace("$$", "$"))


def external_objects(model: dict[str, Any], section: str, used: set[str], project: str) -> dict[str, Any]:
    """Networks or volumes the stack shares with the app's own compose, declared external by their
    real names: neither Compose then checks the labels whoever made them left on them."""
    declared = model.get(section) or {}
    out = {}
    for key in sorted(used):
        spec = declared.get(key) or {}
        external = spec.get("external")
        if isinstance(external, dict) and external.get("name"):
            real = external["name"]
        else:
            real = spec.get("name") or f"{project}_{key}"
        out[key] = {"name": real, "external": True}
    return out


def app_model(prepared: Prepared, settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The committed file and Compose's resolved model of the commit, after the checks that
    need the whole model (host settings written out, no file objects, no bind volumes) and
    with the api and auth services there; `$$` back to `$` (both Composes write a literal `$`
    so; escaped again, once, when the stack file is written)."""
    compose_file = settings.app_compose_file
    raw = load_yaml(prepared.raw, compose_file)
    literal_host_fields(load_yaml(prepared.literal, f"{compose_file} (as committed)"), compose_file)
    model = load_yaml(prepared.resolved, f"{compose_file} (resolved)")
    refuse_file_objects(model)
    refuse_bind_volumes(model)
    model = unescape_dollars(model)
    services = model["services"]
    names = ", ".join(sorted(services))
    for setting, name in (("API_SERVICE", settings.api_service), ("AUTH_SERVICE", settings.auth_service)):
        if name and name not in services:
            raise ConfigError(f"{setting} {name!r} is not a service in {compose_file} (it has: {names})")
    return raw, model


def stack_project(raw: dict[str, Any], app_dir: str) -> str:
    """A `name:` written in the committed file, else the checkout folder's: the resolved model's
    name may come from COMPOSE_PROJECT_NAME in the checkout's .env, which the app can write."""
    literal_name = raw.get("name") if isinstance(raw.get("name"), str) and "$" not in raw["name"] else None
    return literal_name or project_name(app_dir)


def mounted_from_checkout(services: dict[str, Any], settings: Any) -> None:
    """Each service's builds checked against the commit's export and its mounts moved back to the
    checkout (Compose resolved them against the export), then checked for what they reach."""
    app_dir, home = settings.nas_app_dir, settings.nas_loopctl_dir
    export_dir = f"{home}/{contract.EXPORT_DIR}/{posixpath.basename(app_dir.rstrip('/'))}"
    for name, service in services.items():
        check_build(name, service, export_dir)
        if service.get("volumes"):
            service["volumes"] = [in_checkout(entry, export_dir, app_dir) for entry in service["volumes"]]
        check_mounts(name, service, home)


def proxied_port(services: dict[str, Any], settings: Any) -> Port:
    """The api's published port the proxy takes over: STACK_PROXY_PORT's, else the only one. The
    api must be on a Compose network, where the proxy reaches each color by name."""
    api_name = settings.api_service
    mode = str(services[api_name].get("network_mode") or "")
    if mode:
        raise ConfigError(f"service {api_name} uses network_mode: {mode}: blue-green needs it on a Compose network, "
                          f"where the proxy reaches each color by name")
    ports = published_ports(services)[api_name]
    if settings.stack_proxy_port:
        chosen = [p for p in ports if p.published == str(settings.stack_proxy_port)] or ports[:1]
    else:
        chosen = ports
    if not chosen:
        raise ConfigError(f"service {api_name} publishes no port: the proxy takes the port the api publishes")
    if len(chosen) > 1:
        raise ConfigError(f"service {api_name} publishes ports {', '.join(p.published for p in chosen)}; set "
                          f"STACK_PROXY_PORT to the one the proxy takes")
    return chosen[0]


def color_services(api: dict[str, Any], settings: Any, image: str, project: str, short: str,
                   port: Port) -> dict[str, Any]:
    """The api service copied once per color: only the names and the published ports (the
    proxy's now) changed, plus what loopctl adds (labels, the color and commit in the
    environment, a healthcheck where the app has none)."""
    colors = {}
    for color in contract.COLORS:
        service = copy.deepcopy(api)
        name = contract.api_container(settings.api_service, color)
        service.pop("ports", None)
        service["container_name"] = name
        service["image"] = image
        if "build" in service:
            # Rebuilding a tag leaves the image it replaced untagged: this label lets only this
            # stack's be pruned.
            with_labels(service["build"], "labels", {"org.loopctl.project": project})
        with_labels(service, "labels", {"org.loopctl.color": color, "org.loopctl.commit": short})
        with_environment(service, {"LOOPCTL_COLOR": color, "LOOPCTL_COMMIT": short})
        health = service.get("healthcheck") or {}
        if not health or health.get("disable") or health.get("test") in (["NONE"], "NONE"):
            service["healthcheck"] = supplied_healthcheck(port.target, settings.health_path)
        colors[name] = service
    return colors


def proxy_service(api: dict[str, Any], settings: Any, port: Port, proxy_port: str) -> dict[str, Any]:
    """The nginx proxy on the api's networks, publishing the port the api published."""
    home = settings.nas_loopctl_dir
    api_networks = api.get("networks") or {"default": None}
    return {
        "image": settings.stack_proxy_image,
        "container_name": contract.PROXY_CONTAINER,
        "command": ["nginx", "-c", f"{contract.PROXY_CONF_MOUNT}/nginx.conf", "-g", "daemon off;"],
        "ports": [f"{port.host_ip + ':' if port.host_ip else ''}{proxy_port}:{contract.PROXY_LISTEN_PORT}"],
        # Directories, not single files: a bind-mounted file keeps its old inode after the
        # atomic rename the scripts do, so nginx would never see the new upstream.
        "volumes": [f"{home}/{contract.NGINX_CONF_DIR}:{contract.PROXY_CONF_MOUNT}:ro",
                    f"{home}/{posixpath.dirname(contract.UPSTREAM_FILE)}:{contract.PROXY_LIVE_MOUNT}:ro"],
        "networks": sorted(api_networks) if isinstance(api_networks, dict) else list(api_networks),
        "restart": "unless-stopped",
        "labels": {"org.loopctl.role": "proxy"},
    }


def shared_objects(model: dict[str, Any], stack_services: dict[str, Any],
                   project: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The networks and named volumes the stack's services use, declared external (the app's
    own compose made them); the OAuth volume is not among them (oauth_volume_of)."""
    used_networks: set[str] = set()
    used_volumes: set[str] = set()
    for service in stack_services.values():
        nets = service.get("networks") or ({} if service.get("network_mode") else {"default": None})
        used_networks.update(nets if isinstance(nets, (dict, list)) else [])
        for entry in service.get("volumes") or []:
            mount = parse_mount(entry)
            if mount.kind == "volume" and mount.source and mount.source != OAUTH_VOLUME_KEY:
                used_volumes.add(mount.source)
    return (external_objects(model, "networks", used_networks, project),
            external_objects(model, "volumes", used_volumes, project))


def stack_file(model: dict[str, Any], stack_services: dict[str, Any], networks: dict[str, Any],
               volumes: dict[str, Any], oauth_from: str, project: str) -> dict[str, Any]:
    """The release's stack.json: its services, the shared objects, the app's secrets and configs;
    every `$` escaped, since Compose interpolates the file again."""
    stack: dict[str, Any] = {"services": stack_services}
    if oauth_from:
        # Not among the shared volumes the scripts make when missing: only the move of the state
        # makes it (lib-oauth.sh), so a lost one is said, never replaced by an empty one.
        volumes = {**volumes, OAUTH_VOLUME_KEY: {"name": f"{project}-oauth", "external": True}}
    if networks:
        stack["networks"] = networks
    if volumes:
        stack["volumes"] = volumes
    for section in ("secrets", "configs"):
        if model.get(section):
            stack[section] = model[section]
    return escape_dollars(stack)


def bind_sources(stack_services: dict[str, Any]) -> list[str]:
    """Every folder the stack bind-mounts, for the scripts' checks before a start (comma-separated
    in release.env, so none may hold a comma)."""
    binds = sorted({m.source for service in stack_services.values() for m in map(parse_mount, service.get("volumes") or [])
                    if m.kind == "bind"})
    if any("," in source for source in binds):
        raise ConfigError(f"a bind mount source has a comma in its path: {next(b for b in binds if ',' in b)}")
    return binds


def checked_fields(fields: dict[str, str], compose_file: str) -> dict[str, str]:
    """release.env's fields, each a plain word the NAS scripts read without a shell (lib.sh's
    read_env_file); a value that is not is refused here, naming the setting it came from."""
    for key, value in fields.items():
        if not SAFE_VALUE.fullmatch(value):
            source = {"PUBLIC_HOST": "PUBLIC_URL", "HEALTH_PATH": "HEALTH_PATH",
                      "PROXY_IMAGE": "STACK_PROXY_IMAGE"}.get(key, compose_file)
            raise ConfigError(f"{key}={value!r} from {source} has characters the NAS scripts refuse "
                              f"(letters, digits and . _ / : @ , + - only)")
    return fields


def has_healthcheck(api: dict[str, Any]) -> bool:
    """Whether the app's compose gives the api a healthcheck of its own (else color_services
    supplies one, and the deploy says so)."""
    health = api.get("healthcheck") or {}
    return bool(health.get("test")) and not health.get("disable")


def into_oauth_volume(stack_services: dict[str, Any], oauth_from: str) -> None:
    """Every service's bind of the OAuth folder `oauth_from` (inside the checkout, which the api
    can replace with a link) as a mount of the OAuth volume instead (see lib-oauth.sh)."""
    for service in stack_services.values():
        if service.get("volumes"):
            service["volumes"] = [with_oauth_volume(entry, oauth_from) for entry in service["volumes"]]


def oauth_volume_of(oauth_mount: Mount | None, volumes: dict[str, Any], project: str) -> str:
    """The named volume the OAuth state lives in, for rebuild-all's backup: the one it moves into
    from a bind of the folder, the app's own volume mounted there, or none."""
    if oauth_mount and oauth_mount.kind == "bind" and oauth_mount.source:
        return f"{project}-oauth"
    if oauth_mount and oauth_mount.kind == "volume" and oauth_mount.source:
        return volumes[oauth_mount.source]["name"]
    return ""


def oauth_mount_of(api: dict[str, Any], settings: Any) -> Mount | None:
    """What the api mounts at API_OAUTH_PATH, if anything."""
    return next((m for m in map(parse_mount, api.get("volumes") or [])
                 if m.target.rstrip("/") == settings.api_oauth_path.rstrip("/")), None)


def public_host(settings: Any) -> str:
    """The Host the app sees behind the proxy (PUBLIC_URL's, without credentials): the MCP gate
    sends it too."""
    return urlsplit(settings.public_url).netloc.rpartition("@")[2] if settings.public_url else ""


def build_release(prepared: Prepared, settings: Any, commit: str) -> Release:
    """The release for `commit` from what prepare.sh printed, in the order a reader checks it: the
    app's model, its mounts, the proxy's port, the colors, the other services and the proxy, the
    OAuth volume, the shared objects, release.env; ConfigError (one line) before any write."""
    raw, model = app_model(prepared, settings)
    services: dict[str, Any] = model["services"]
    api_name, project, short = settings.api_service, stack_project(raw, settings.nas_app_dir), commit[:12]
    mounted_from_checkout(services, settings)
    api = services[api_name]
    oauth_mount = oauth_mount_of(api, settings)
    oauth_from = oauth_mount.source if oauth_mount and oauth_mount.kind == "bind" else ""
    port = proxied_port(services, settings)
    proxy_port = str(settings.stack_proxy_port or port.published)
    image = str(api.get("image") or "")
    repo = re.sub(r":[^/:]*$", "", image) if image else api_name
    stack_services = color_services(api, settings, f"{repo}:{short}", project, short, port)
    notes = [] if has_healthcheck(api) else [f"{api_name} defines no healthcheck: loopctl checks HTTP "
                                             f"{settings.health_path} on port {port.target} every second"]
    aux = [name for name in services if name != api_name]
    stack_services.update({name: copy.deepcopy(services[name]) for name in aux})
    stack_services[contract.PROXY_SERVICE] = proxy_service(api, settings, port, proxy_port)
    if oauth_from:
        into_oauth_volume(stack_services, oauth_from)
        notes.append(f"OAuth state ({settings.api_oauth_path}) in the volume {project}-oauth, moved from {oauth_from} "
                     f"(the api can replace a folder of the checkout with a link)")
    refuse_nested_binds(stack_services)
    networks, volumes = shared_objects(model, stack_services, project)
    stack = stack_file(model, stack_services, networks, volumes, oauth_from, project)
    fields = {
        "COMMIT": commit, "SHORT": short, "PROJECT": project, "API_SERVICE": api_name, "API_REPO": repo,
        "CONTAINER_PORT": str(port.target), "PROXY_BIND": port.host_ip, "PROXY_PORT": proxy_port,
        "PROXY_IMAGE": settings.stack_proxy_image, "HEALTH_PATH": settings.health_path,
        "PUBLIC_HOST": public_host(settings),
        "AUX_SERVICES": ",".join(aux), "BUILD_SERVICES": ",".join(name for name in aux if "build" in services[name]),
        "OAUTH_VOLUME": oauth_volume_of(oauth_mount, volumes, project), "OAUTH_FROM": oauth_from,
        "NETWORKS": ",".join(v["name"] for v in networks.values()),
        "VOLUMES": ",".join(v["name"] for v in volumes.values()),
        "BIND_SOURCES": ",".join(bind_sources(stack_services)),
    }
    return Release(commit, stack, checked_fields(fields, settings.app_compose_file), notes)
