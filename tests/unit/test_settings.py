from pathlib import Path

import pytest

from loopctl import settings
from loopctl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path, file_text="", **environ):
    env_file = tmp_path / ".env"
    env_file.write_text(file_text)
    return settings.load({"LOOP_ENV_FILE": str(env_file), **environ})


def test_environment_wins_over_env_file_and_defaults_fill_the_rest(tmp_path):
    s = load(tmp_path, "NAS_HOST=from-file\nNAS_PORT=2200\n", NAS_HOST="from-env")
    assert s.nas_host == "from-env"
    assert s.nas_port == 2200
    assert s.nas_docker == "/var/packages/ContainerManager/target/usr/bin/docker"
    assert s.nas_app_dir == "/volume1/LOOP_CORE/vault/LOOP"
    rows = {name: (value, source) for name, value, source in s.redacted()}
    assert rows["NAS_HOST"] == ("from-env", "environment")
    assert rows["NAS_PORT"] == ("2200", str(tmp_path / ".env"))
    assert rows["NAS_DOCKER"][1] == "default"


@pytest.mark.parametrize("name, raw, reason", [
    ("NAS_PORT", "70000", "expected a port number from 1 to 65535"),
    ("NAS_HOST", "-oProxyCommand=x", "expected a single word"),
    ("NAS_APP_DIR", "relative/dir", "expected an absolute path"),
    ("NAS_DOCKER", "/usr/bin/docker; rm -rf /", "expected an absolute path"),
    ("NAS_CONNECT_TIMEOUT", "0", "greater than 0"),
    ("PUBLIC_URL", "mcp.example.com", "expected an http:// or https:// URL"),
    ("STACK_BASE_IMAGE", "python:3.12 slim", "letters, digits"),
])
def test_malformed_settings_are_one_line_naming_the_setting(tmp_path, name, raw, reason):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, **{name: raw})
    message = str(error.value)
    assert message.startswith(f"{name}=") and reason in message and "\n" not in message


def test_malformed_secret_does_not_echo_its_value(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, ALERT_WEBHOOK_URL="hooks.example.com/T0KEN")
    assert "T0KEN" not in str(error.value)
    assert "ALERT_WEBHOOK_URL='<redacted>' is invalid" in str(error.value)


def test_require_names_the_first_missing_setting(tmp_path):
    s = load(tmp_path, "NAS_HOST=nas\n")
    with pytest.raises(ConfigError, match="^NAS_USER is not set"):
        s.require("NAS_HOST", "NAS_USER")


def test_secrets_are_redacted_and_listed_for_scrubbing(tmp_path):
    s = load(tmp_path, "NAS_SUDO_PASSWORD='p a$s'\nMCP_TOKEN=tok\n")
    shown = {name: value for name, value, _ in s.redacted()}
    assert shown["NAS_SUDO_PASSWORD"] == "(set, redacted)"
    assert shown["MCP_TOKEN"] == "(set, redacted)"
    assert shown["ALERT_WEBHOOK_URL"] == "(not set)"
    assert sorted(s.secrets()) == ["p a$s", "tok"]


def test_env_example_documents_every_setting_with_placeholders_only():
    text = (REPO / ".env.example").read_text()
    assigned = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
                if line and not line.startswith("#")}
    assert set(assigned) == {s.name for s in settings.SETTINGS}
    for s in settings.SETTINGS:
        if s.secret:
            assert assigned[s.name] == "", f"{s.name} must be empty in .env.example"


def test_env_example_parses_as_valid_settings():
    s = settings.load({"LOOP_ENV_FILE": str(REPO / ".env.example")})
    s.require(*settings.SSH_REQUIRED, "PUBLIC_URL")
