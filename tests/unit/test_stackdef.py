"""A release's stack definition, from the real output of prepare.sh under Compose v1 and v2 for
the example app (tests/unit/data: `config` and `config --no-interpolate` with the commit's
export as the project folder, made on the sandbox), and each kind of bad input as one line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from loopctl import settings as settings_module, stackdef
from loopctl.errors import ConfigError

DATA = Path(__file__).parent / "data"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
APP = "/volume1/LOOP_CORE/vault/LOOP"
EXPORT = "/volume1/@loopctl/build/src/LOOP"


@pytest.fixture
def settings(tmp_path):
    return settings_module.load({"LOOP_ENV_FILE": "/dev/null"})


def prepared(resolved: str, major: int, raw: str | None = None, literal: str | None = None) -> stackdef.Prepared:
    return stackdef.Prepared(major, raw if raw is not None else (DATA / "example-raw.yml").read_text(), resolved,
                             literal if literal is not None else (DATA / f"example-v{major}-literal.yml").read_text())


def in_checkout(volumes: list) -> list:
    """The app's mounts as the stack has them: against the checkout, the OAuth folder a volume."""
    out = []
    for entry in volumes:
        mount = stackdef.parse_mount(entry)
        if mount.source == f"{EXPORT}/api/oauth":
            out.append(f"loopctl-oauth:{mount.target}{':ro' if mount.read_only else ''}")
        elif isinstance(entry, dict):
            out.append({**entry, "source": entry["source"].replace(EXPORT, APP, 1)})
        else:
            out.append(entry.replace(EXPORT, APP, 1))
    return out


@pytest.mark.parametrize("major", [1, 2])
def test_colors_are_the_api_with_only_names_ports_and_loopctls_additions_changed(settings, major):
    resolved = (DATA / f"example-v{major}.yml").read_text()
    release = stackdef.build_release(prepared(resolved, major), settings, COMMIT)
    api = yaml.safe_load(resolved)["services"]["loop-api"]
    services = release.stack["services"]
    assert set(services) == {"loop-api-blue", "loop-api-green", "loop-auth", "proxy"}
    for color in ("blue", "green"):
        copy = services[f"loop-api-{color}"]
        assert copy["container_name"] == f"loop-api-{color}"
        assert copy["image"] == "loop-api:0123456789ab"
        assert "ports" not in copy
        assert copy["volumes"] == in_checkout(api["volumes"])
        assert copy["healthcheck"] == api["healthcheck"]
        assert copy["environment"] == {**api["environment"], "LOOPCTL_COLOR": color, "LOOPCTL_COMMIT": "0123456789ab"}
        assert copy["build"]["context"] == EXPORT
        assert copy["build"]["args"] == api["build"]["args"]
        untouched = {k: v for k, v in copy.items()
                     if k not in ("container_name", "image", "environment", "build", "labels", "volumes")}
        assert untouched == {k: v for k, v in api.items()
                             if k not in ("container_name", "image", "environment", "build", "ports", "labels",
                                          "volumes")}
    auth = yaml.safe_load(resolved)["services"]["loop-auth"]
    assert services["loop-auth"] == {**auth, "volumes": ["loopctl-oauth:/app/api/oauth"]}
    assert services["proxy"]["ports"] == ["127.0.0.1:8082:8082"]
    assert services["proxy"]["volumes"] == ["/volume1/@loopctl/deploy/nginx:/etc/loop-nginx:ro",
                                           "/volume1/@loopctl/state/nginx:/etc/loop-live:ro"]
    assert release.stack["networks"] == {"default": {"name": "loop_default", "external": True}}
    assert release.stack["volumes"] == {"loopctl-oauth": {"name": "loop-oauth", "external": True}}
    assert release.fields == {
        "COMMIT": COMMIT, "SHORT": "0123456789ab", "PROJECT": "loop", "API_SERVICE": "loop-api",
        "API_REPO": "loop-api", "CONTAINER_PORT": "8081", "PROXY_BIND": "127.0.0.1", "PROXY_PORT": "8082",
        "PROXY_IMAGE": "nginx:1.27-alpine", "HEALTH_PATH": "/health", "PUBLIC_HOST": "", "AUX_SERVICES": "loop-auth",
        "BUILD_SERVICES": "loop-auth", "OAUTH_VOLUME": "loop-oauth", "OAUTH_FROM": f"{APP}/api/oauth",
        "NETWORKS": "loop_default", "VOLUMES": "",
        "BIND_SOURCES": f"/volume1/@loopctl/deploy/nginx,/volume1/@loopctl/state/nginx,/volume1/LOOP_CLevel/vault/"
                        f"loop_exec,{APP}",
    }
    assert release.notes == [f"OAuth state (/app/api/oauth) in the volume loop-oauth, moved from {APP}/api/oauth "
                             f"(the api can replace a folder of the checkout with a link)"]


def test_v1_and_v2_give_the_same_stack(settings):
    v1 = stackdef.build_release(prepared((DATA / "example-v1.yml").read_text(), 1), settings, COMMIT)
    v2 = stackdef.build_release(prepared((DATA / "example-v2.yml").read_text(), 2), settings, COMMIT)
    assert v1.fields == v2.fields
    assert set(v1.stack["services"]) == set(v2.stack["services"])


def test_a_missing_healthcheck_is_supplied_and_said(settings):
    model = yaml.safe_load((DATA / "example-v2.yml").read_text())
    del model["services"]["loop-api"]["healthcheck"]
    release = stackdef.build_release(prepared(yaml.safe_dump(model), 2), settings, COMMIT)
    check = release.stack["services"]["loop-api-blue"]["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "http://127.0.0.1:8081/health" in check["test"][1]
    assert check["interval"] == "1s"
    assert release.notes[0] == "loop-api defines no healthcheck: loopctl checks HTTP /health on port 8081 every second"


@pytest.mark.parametrize("major", [1, 2])
def test_dollars_stay_literal_for_the_second_reading(settings, major):
    model = yaml.safe_load((DATA / f"example-v{major}.yml").read_text())
    model["services"]["loop-api"]["environment"]["PW"] = "a$$b$$$$c"  # both write a literal $ as $$
    release = stackdef.build_release(prepared(yaml.safe_dump(model), major), settings, COMMIT)
    assert release.stack["services"]["loop-api-blue"]["environment"]["PW"] == "a$$b$$$$c"


def test_stack_json_and_release_env_are_what_the_scripts_read(settings):
    release = stackdef.build_release(prepared((DATA / "example-v2.yml").read_text(), 2), settings, COMMIT)
    assert yaml.safe_load(release.stack_json()) == release.stack
    lines = release.release_env().splitlines()
    assert lines[0].startswith("#") and f"COMMIT={COMMIT}" in lines and "AUX_SERVICES=loop-auth" in lines


def edited(change) -> str:
    model = yaml.safe_load((DATA / "example-v2.yml").read_text())
    change(model["services"])
    return yaml.safe_dump(model)


@pytest.mark.parametrize("change, message", [
    (lambda sv: sv.pop("loop-api"), "API_SERVICE 'loop-api' is not a service in docker-compose.yml (it has: loop-auth)"),
    (lambda sv: sv.pop("loop-auth"), "AUTH_SERVICE 'loop-auth' is not a service in docker-compose.yml (it has: loop-api)"),
    (lambda sv: sv["loop-api"].update(network_mode="host"),
     "service loop-api uses network_mode: host: blue-green needs it on a Compose network, where the proxy "
     "reaches each color by name"),
    (lambda sv: sv["loop-auth"]["ports"].append({"host_ip": "127.0.0.1", "target": 9, "published": "8082"}),
     "services loop-api and loop-auth both publish port 8082"),
    (lambda sv: sv["loop-api"].pop("ports"),
     "service loop-api publishes no port: the proxy takes the port the api publishes"),
    (lambda sv: sv["loop-api"]["volumes"].append({"type": "bind", "source": "/volume1", "target": "/nas"}),
     "service loop-api mounts /volume1, which holds the loopctl home /volume1/@loopctl: refused (a container "
     "must not reach what root runs)"),
    (lambda sv: sv["loop-auth"]["volumes"].append({"type": "bind", "source": "/var/run/docker.sock",
                                                   "target": "/s"}),
     "service loop-auth mounts /var/run/docker.sock: refused (root on the NAS from the container)"),
    (lambda sv: sv["loop-auth"]["volumes"].append({"type": "bind", "source": "/run", "target": "/r"}),
     "service loop-auth mounts /run: refused (root on the NAS from the container)"),
    (lambda sv: sv["loop-auth"]["volumes"].append("/volume1/@docker/volumes:/v:ro"),
     "service loop-auth mounts /volume1/@docker/volumes: refused (root on the NAS from the container)"),
    # Nested under a folder another service writes, outside the checkout.
    (lambda sv: (sv["loop-auth"]["volumes"].append({"type": "bind", "source": "/volume1/LOOP_CLevel/vault/loop_exec/k",
                                                    "target": "/k"})),
     "service loop-auth mounts /volume1/LOOP_CLevel/vault/loop_exec/k, inside /volume1/LOOP_CLevel/vault/loop_exec, "
     "which loop-api-blue writes: that container could replace it with a link, which Docker follows at every start; "
     "mount a named volume there, or a folder outside /volume1/LOOP_CLevel/vault/loop_exec"),
    (lambda sv: sv["loop-auth"]["build"].update(context="/srv/elsewhere"),
     "service loop-auth builds from /srv/elsewhere, outside the commit's files: loopctl builds from the deployed "
     "commit only"),
    (lambda sv: sv["loop-auth"]["build"].update(context=APP),
     f"service loop-auth builds from {APP}, outside the commit's files: loopctl builds from the deployed commit only"),
    # Inside the checkout the api writes: it could make the folder a link to / before a restart.
    (lambda sv: sv["loop-auth"]["volumes"].append({"type": "bind", "source": f"{EXPORT}/config", "target": "/c",
                                                   "read_only": True}),
     f"service loop-auth mounts {APP}/config, inside {APP}, which loop-api-blue writes: that container could "
     f"replace it with a link, which Docker follows at every start; mount a named volume there, or a folder "
     f"outside {APP}"),
])
def test_bad_compose_input_is_one_line(settings, change, message):
    with pytest.raises(ConfigError) as error:
        stackdef.build_release(prepared(edited(change), 2), settings, COMMIT)
    assert str(error.value) == message


@pytest.mark.parametrize("major", [1, 2])
@pytest.mark.parametrize("literal, variable, field", [
    ("/volume1/LOOP_CLevel/vault/loop_exec", "${EXEC}", "volumes"),
    ("BASE_IMAGE: loop-rig-base:bookworm", "BASE_IMAGE: ${BASE}", "build"),
    ("host_ip: 127.0.0.1", "host_ip: ${BIND}", "ports"),
])
def test_host_settings_and_what_is_built_from_variables_are_refused(settings, major, literal, variable, field):
    """Read on Compose's model without variables substituted: whatever committed file (included,
    extended) wrote it, a `${VAR}` there is the checkout's .env's to decide."""
    if major == 1 and field == "ports":
        literal, variable = "127.0.0.1:8082:8081", "${BIND}:8082:8081"
    text = (DATA / f"example-v{major}-literal.yml").read_text()
    assert literal in text
    with pytest.raises(ConfigError) as error:
        stackdef.build_release(prepared((DATA / f"example-v{major}.yml").read_text(), major,
                                        literal=text.replace(literal, variable, 1)), settings, COMMIT)
    assert str(error.value).startswith(f"docker-compose.yml: service loop-api: `{field}` takes a value from a variable")
    # The environment is the container's own business: variables there are fine.
    assert "${PUBLIC_URL" in text


def test_a_volume_that_binds_a_folder_is_refused(settings):
    model = yaml.safe_load((DATA / "example-v2.yml").read_text())
    model["volumes"] = {"data": {"driver": "local", "driver_opts": {"type": "none", "o": "bind",
                                                                    "device": f"{APP}/data"}}}
    with pytest.raises(ConfigError) as error:
        stackdef.build_release(prepared(yaml.safe_dump(model), 2), settings, COMMIT)
    assert str(error.value) == (f"volume data binds a folder through driver_opts ({APP}/data): Docker follows links "
                                f"there at every start; mount the folder as a bind instead")


@pytest.mark.parametrize("section", ["secrets", "configs"])
def test_files_read_at_start_are_refused(settings, section):
    model = yaml.safe_load((DATA / "example-v2.yml").read_text())
    model[section] = {"token": {"file": f"{EXPORT}/token.txt"}}
    with pytest.raises(ConfigError) as error:
        stackdef.build_release(prepared(yaml.safe_dump(model), 2), settings, COMMIT)
    assert str(error.value) == (f"{section} token is read from a file ({EXPORT}/token.txt): loopctl releases do not "
                                f"keep files; use `environment:` or a variable instead")


def test_invalid_yaml_and_prepare_output(settings):
    with pytest.raises(ConfigError, match="is not valid YAML"):
        stackdef.build_release(prepared("services: [", 2), settings, COMMIT)
    with pytest.raises(ConfigError, match="defines no services"):
        stackdef.build_release(prepared("{}", 2), settings, COMMIT)
    with pytest.raises(ConfigError, match="printed no resolved compose model"):
        stackdef.parse_prepared("compose: 2\n")
    with pytest.raises(ConfigError, match="printed no resolved compose model"):  # an older prepare.sh
        stackdef.parse_prepared(f"compose: 1\nraw: {base64.b64encode(b'a').decode()}\nresolved: eA==\n")
    text = f"compose: 1\nraw: {base64.b64encode(b'a').decode()}\nresolved: {base64.b64encode(b'b').decode()}\n" \
           f"literal: {base64.b64encode(b'c').decode()}\n"
    assert stackdef.parse_prepared(text) == stackdef.Prepared(1, "a", "b", "c")


def test_port_and_mount_syntaxes():
    assert stackdef.parse_port("127.0.0.1:8082:8081/tcp") == stackdef.Port("127.0.0.1", "8082", 8081)
    assert stackdef.parse_port("8082:8081") == stackdef.Port("", "8082", 8081)
    assert stackdef.parse_port("8081") is None
    assert stackdef.parse_port({"target": 8081, "published": "8082", "host_ip": "127.0.0.1"}) == \
        stackdef.Port("127.0.0.1", "8082", 8081)
    assert stackdef.parse_mount("/a:/b:ro") == stackdef.Mount("bind", "/a", "/b", True)
    assert stackdef.parse_mount("data:/b") == stackdef.Mount("volume", "data", "/b", False)
    assert stackdef.project_name("/volume1/LOOP_CORE/vault/LOOP") == "loop"


def test_the_public_host_is_what_the_mcp_gate_sends_as_host(tmp_path):
    settings = settings_module.load({"LOOP_ENV_FILE": "/dev/null", "PUBLIC_URL": "https://mcp.example.com:8443/x"})
    release = stackdef.build_release(prepared((DATA / "example-v2.yml").read_text(), 2), settings, COMMIT)
    assert release.fields["PUBLIC_HOST"] == "mcp.example.com:8443"


def test_the_oauth_volume_is_the_one_the_state_moves_into_the_apps_own_or_none():
    bind, volume = stackdef.parse_mount(f"{APP}/api/oauth:/app/api/oauth"), stackdef.parse_mount("keys:/app/api/oauth")
    assert stackdef.oauth_volume_of(bind, {}, "loop") == "loop-oauth"
    assert stackdef.oauth_volume_of(volume, {"keys": {"name": "loop_keys", "external": True}}, "loop") == "loop_keys"
    assert stackdef.oauth_volume_of(None, {}, "loop") == ""


@pytest.mark.parametrize("healthcheck, has", [({"test": ["CMD", "true"]}, True), ({}, False),
                                              ({"test": ["CMD", "true"], "disable": True}, False)])
def test_a_disabled_or_missing_healthcheck_is_none(healthcheck, has):
    assert stackdef.has_healthcheck({"healthcheck": healthcheck}) is has
