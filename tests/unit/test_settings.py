from pathlib import Path

import pytest

from loopctl import settings as settings_module
from loopctl.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path, file_text="", **environ):
    env_file = tmp_path / ".env"
    env_file.write_text(file_text)
    return settings_module.load({"LOOP_ENV_FILE": str(env_file), **environ})


def test_environment_wins_over_env_file_and_defaults_fill_the_rest(tmp_path):
    settings = load(tmp_path, "NAS_HOST=from-file\nNAS_PORT=2200\n", NAS_HOST="from-env")
    assert settings.nas_host == "from-env"
    assert settings.nas_port == 2200
    assert settings.nas_docker == "/var/packages/ContainerManager/target/usr/bin/docker"
    assert settings.nas_app_dir == "/volume1/LOOP_CORE/vault/LOOP"
    rows = {name: (value, source) for name, value, source in settings.redacted()}
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
    ("STACK_PROXY_IMAGE", "nginx:1.27 alpine", "letters, digits"),
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
    settings = load(tmp_path, "NAS_HOST=nas\n")
    with pytest.raises(ConfigError, match="^NAS_USER is not set"):
        settings.require("NAS_HOST", "NAS_USER")


def test_secrets_are_redacted_and_listed_for_scrubbing(tmp_path):
    settings = load(tmp_path, "NAS_SUDO_PASSWORD='p a$s'\nMCP_TOKEN=tok\n")
    shown = {name: value for name, value, _ in settings.redacted()}
    assert shown["NAS_SUDO_PASSWORD"] == "(set, redacted)"
    assert shown["MCP_TOKEN"] == "(set, redacted)"
    assert shown["ALERT_WEBHOOK_URL"] == "(not set)"
    assert sorted(settings.secrets()) == ["p a$s", "tok"]


def test_env_example_documents_every_setting_with_placeholders_only():
    text = (REPO / ".env.example").read_text()
    assigned = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
                if line and not line.startswith("#")}
    assert set(assigned) == {setting.name for setting in settings_module.SETTINGS}
    for setting in settings_module.SETTINGS:
        if setting.secret:
            assert assigned[setting.name] == "", f"{setting.name} must be empty in .env.example"


def test_env_example_parses_as_valid_settings():
    settings = settings_module.load({"LOOP_ENV_FILE": str(REPO / ".env.example")})
    settings.require(*settings_module.SSH_REQUIRED, "PUBLIC_URL")


@pytest.mark.parametrize("raw", ["²", "٣", "1²", "+5", "5x", "inf", "1e3"])
def test_whole_numbers_and_seconds_are_ascii_digits_only(tmp_path, raw):
    """str.isdigit() and float() accept other scripts' digits (and 'inf'): one line, not a traceback."""
    for name in ("NAS_PORT", "CHECK_RETRIES", "KEEP_RELEASES", "CHECK_TIMEOUT"):
        with pytest.raises(ConfigError) as error:
            load(tmp_path, **{name: raw})
        assert str(error.value).startswith(f"{name}={raw!r} is invalid: expected"), str(error.value)


def test_a_flag_and_a_setting_count_the_same_way():
    assert settings_module.count("12") == 12 == settings_module.count("12", "--tail")
    with pytest.raises(ConfigError, match=r"^--tail takes a whole number \(0 or more\), not '²'$"):
        settings_module.count("²", "--tail")
    with pytest.raises(ValueError, match="expected a whole number"):
        settings_module.count("٣")


@pytest.mark.parametrize("raw, reason", [
    ("nas.lan:2222", "put the port in NAS_PORT"),
    ("[fe80::1]:22", "put the port in NAS_PORT"),
    ("ops@nas.lan", "put the user in NAS_USER"),
])
def test_nas_host_with_a_port_or_user_says_which_setting_to_use(tmp_path, raw, reason):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, NAS_HOST=raw)
    assert str(error.value) == f"NAS_HOST={raw!r} is invalid: expected the host only: {reason}"


def test_ipv6_and_plain_hosts_are_still_hosts(tmp_path):
    assert load(tmp_path, NAS_HOST="fe80::1").nas_host == "fe80::1"
    assert load(tmp_path, NAS_HOST="nas.lan").nas_host == "nas.lan"


def test_secrets_are_kept_exactly_with_their_spaces(tmp_path):
    from_file = load(tmp_path, "NAS_SUDO_PASSWORD=' pass word '\nMCP_TOKEN=\"\ttok \"\nNAS_HOST=' nas '\n")
    assert from_file.nas_sudo_password == " pass word "
    assert from_file.mcp_token == "\ttok "
    assert from_file.nas_host == "nas"  # ordinary values are still trimmed
    assert load(tmp_path, NAS_SUDO_PASSWORD="  lead and trail  ").nas_sudo_password == "  lead and trail  "
    with pytest.raises(ConfigError, match=r"^NAS_SUDO_PASSWORD='<redacted>' is invalid: expected one line$"):
        load(tmp_path, NAS_SUDO_PASSWORD="two\nlines")


def test_env_file_with_a_secret_readable_by_others_warns_once_with_the_chmod(tmp_path, capsys):
    env_file = tmp_path / ".env"
    env_file.write_text("NAS_HOST=nas\nNAS_SUDO_PASSWORD=hunter2\n")
    env_file.chmod(0o644)
    settings_module.load({"LOOP_ENV_FILE": str(env_file)})
    settings_module.load({"LOOP_ENV_FILE": str(env_file)})
    err = capsys.readouterr().err
    assert err == (f"warning: {env_file} holds NAS_SUDO_PASSWORD and other users can read it; "
                   f"run: chmod 600 {env_file}\n")
    assert "hunter2" not in err

    private = tmp_path / "private.env"
    private.write_text("NAS_SUDO_PASSWORD=hunter2\n")
    private.chmod(0o600)
    plain = tmp_path / "plain.env"
    plain.write_text("NAS_HOST=nas\n")
    plain.chmod(0o644)
    settings_module.load({"LOOP_ENV_FILE": str(private)})
    settings_module.load({"LOOP_ENV_FILE": str(plain)})
    assert capsys.readouterr().err == ""


def test_credentials_in_urls_are_secrets_and_never_shown(tmp_path):
    settings = load(tmp_path, PUBLIC_URL="https://monitor:pa%40ss@mcp.example.com", JWKS_URL="https://tok@auth.example.com/jwks")
    assert {"monitor:pa%40ss", "pa%40ss", "pa@ss", "tok"} <= set(settings.secrets())
    shown = {name: value for name, value, _ in settings.redacted()}
    assert shown["PUBLIC_URL"] == "https://<redacted>@mcp.example.com"
    assert shown["JWKS_URL"] == "https://<redacted>@auth.example.com/jwks"
    with pytest.raises(ConfigError) as error:
        load(tmp_path, PUBLIC_URL="htps://monitor:pa55@mcp.example.com")
    assert "pa55" not in str(error.value)


def test_allow_insecure_token_is_a_switch(tmp_path):
    assert load(tmp_path).allow_insecure_token is False
    assert load(tmp_path, ALLOW_INSECURE_TOKEN="1").allow_insecure_token is True
    with pytest.raises(ConfigError, match="ALLOW_INSECURE_TOKEN='maybe' is invalid: expected 1 or 0"):
        load(tmp_path, ALLOW_INSECURE_TOKEN="maybe")
