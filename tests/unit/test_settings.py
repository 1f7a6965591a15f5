import re
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
    # No value holds a newline or a control character (a tab only a secret may hold).
    ("PUBLIC_URL", "https://mcp.example.com\nX-Injected: 1", "expected one line"),
    ("HEALTH_EXPECT", "status=ok\r", "expected one line"),
    ("HEALTH_EXPECT", "status=\x1b[31mok", "expected no control characters"),
    ("NAS_SSH_KEY", "/keys/id\nrm", "expected one line"),
    ("GIT_BRANCH", "main\x00", "expected no control characters"),
    ("HEALTH_EXPECT", "status=\tok", "expected no control characters"),
    ("MCP_TOKEN", "tok\x85en", "expected no control characters"),
])
def test_a_malformed_value_is_one_line_naming_the_setting_from_either_source(tmp_path, name, raw, reason):
    for source in ("environment", "file"):
        if source == "environment":
            message = file_error(tmp_path, "", **{name: raw})
        else:
            quoted = raw.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
            message = file_error(tmp_path, f'HEALTH_PATH=/health\n{name}="{quoted}"\n')
            assert message.endswith(f"({tmp_path / '.env'}:2)"), message
        assert message.startswith(f"{name}=") and "is invalid: " in message and reason in message, message
        assert "\x1b" not in message and "\r" not in message


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


def env_example() -> dict[str, tuple[str, str]]:
    """NAME -> (value, the comment lines just above it, joined)."""
    entries, comment = {}, []
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif line:
            name, value = line.split("=", 1)
            entries[name] = (value, " ".join(comment))
            comment = []
        else:
            comment = []
    return entries


def test_env_example_documents_every_setting_with_its_real_default_and_maximum():
    """Each entry's comment states the table's default exactly (`default X`, once), or says
    `(required)` or nothing about a default when there is none; a setting with a default shows
    that default as its value; a bounded number states its maximum; secrets are left empty."""
    entries = env_example()
    assert set(entries) == {setting.name for setting in settings_module.SETTINGS}
    for setting in settings_module.SETTINGS:
        value, comment = entries[setting.name]
        stated = re.findall(r"\bdefault (\S+?)[;,.)]?(?:\s|$)", comment, re.IGNORECASE)
        if setting.default is None:
            assert "(required)" in comment and not stated, setting.name
        elif setting.default == "":
            assert not stated, f"{setting.name} has no default, but .env.example states {stated}"
        else:
            assert stated == [setting.default], f"{setting.name}: the default is {setting.default}, not {stated}"
            assert value == setting.default, f"{setting.name}={value} in .env.example, but the default is {setting.default}"
        if setting.maximum is not None:
            assert f"at most {setting.maximum:g}" in comment, f"{setting.name}: state its maximum {setting.maximum:g}"
        if setting.secret:
            assert value == "", f"{setting.name} must be empty in .env.example"


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


# --- strictness: every mistake in the settings file is one line naming its line ---

def file_error(tmp_path, text: str, **environ) -> str:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text, **environ)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_an_unknown_name_in_the_file_names_its_line_and_the_closest_setting(tmp_path):
    message = file_error(tmp_path, "NAS_HOST=nas\n\nNAS_PROT=41000\n")
    assert message == f"{tmp_path / '.env'}:3: NAS_PROT is not a loopctl setting; did you mean NAS_PORT?"
    far = file_error(tmp_path, "# a comment\nCOMPLETELY_UNRELATED=1\n")
    assert far == f"{tmp_path / '.env'}:2: COMPLETELY_UNRELATED is not a loopctl setting; see .env.example for the settings"


def test_a_key_given_twice_names_both_lines(tmp_path):
    message = file_error(tmp_path, "NAS_PORT=22\nNAS_HOST=nas\n# later\nNAS_PORT=2222\n")
    assert message == f"{tmp_path / '.env'}: NAS_PORT is set twice, on lines 1 and 4; keep one"


@pytest.mark.parametrize("text, line", [
    ("NAS_HOST=nas\nNAS_SUDO_PASSWORD='unterminated hunter2\n", 2),
    ("NAS HOST=nas\n", 1),
    ("NAS_HOST=nas\n=hunter2\n", 2),
])
def test_a_line_dotenv_cannot_read_is_an_error_with_its_number_and_not_its_text(tmp_path, text, line):
    message = file_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / '.env'}:{line}: cannot read this line"), message
    assert "hunter2" not in message


def test_a_bare_name_without_equals_is_an_error(tmp_path):
    assert file_error(tmp_path, "NAS_HOST\n") == f"{tmp_path / '.env'}:1: NAS_HOST has no '=' (write NAS_HOST= for an empty value)"


def test_a_line_without_equals_that_names_no_setting_is_not_repeated(tmp_path):
    """A token pasted on a line of its own must not reach the terminal or a monitor's line."""
    error = file_error(tmp_path, "NAS_HOST=nas\nghp_s3cretT0ken\n")
    assert error == f"{tmp_path / '.env'}:2: this line is not NAME=value (nor a setting's name)"


def test_the_quoting_forms_of_env_example_and_the_sandbox_still_read(tmp_path):
    settings = load(tmp_path, "NAS_HOST=nas # the NAS\nexport NAS_USER=ops\nHEALTH_EXPECT=\"status=ok\"\n"
                              "NAS_SUDO_PASSWORD='rig pw\\'$(id)\"#6d'\nMCP_TOKEN=\n\r\n")
    assert (settings.nas_host, settings.nas_user, settings.health_expect) == ("nas", "ops", "status=ok")
    assert settings.nas_sudo_password == "rig pw'$(id)\"#6d"


def test_a_settings_file_that_does_not_exist_is_an_error_and_dev_null_is_none(tmp_path):
    missing = tmp_path / "missing.env"
    with pytest.raises(ConfigError) as error:
        settings_module.load({"LOOP_ENV_FILE": str(missing)})
    assert str(error.value) == f"LOOP_ENV_FILE='{missing}' does not exist (for no settings file, use /dev/null)"
    with pytest.raises(ConfigError, match="is a directory"):
        settings_module.load({"LOOP_ENV_FILE": str(tmp_path)})
    assert settings_module.load({"LOOP_ENV_FILE": "/dev/null"}).nas_port == 22


def test_a_tab_is_kept_in_a_secret_only(tmp_path):
    assert load(tmp_path, MCP_TOKEN="a\tb").mcp_token == "a\tb"


@pytest.mark.parametrize("name, raw, maximum", [
    ("NAS_CONNECT_TIMEOUT", "999999999999", "300"),
    ("CHECK_TIMEOUT", "301", "300"),
    ("CHECK_RETRIES", "1000", "10"),
    ("KEEP_RELEASES", "101", "100"),
    ("DEPLOY_BUILD_TIMEOUT", "86401", "86400"),
])
def test_numbers_beyond_their_maximum_are_refused(tmp_path, name, raw, maximum):
    assert file_error(tmp_path, "", **{name: raw}) == f"{name}={raw!r} is invalid: expected at most {maximum}"


def test_every_numeric_setting_has_a_maximum_in_the_table():
    numeric = (settings_module.seconds, settings_module.positive_int, settings_module.count)
    for setting in settings_module.SETTINGS:
        if setting.parse in numeric:
            assert setting.maximum is not None, f"{setting.name} needs a maximum"
            if setting.default:
                assert setting.parse(setting.default) <= setting.maximum, setting.name


def test_only_the_settings_asked_for_are_read(tmp_path):
    env_file = tmp_path / "only.env"
    env_file.write_text("NAS_PORT=22x\nPUBLIC_URL=https://mcp.example.com\n")
    loaded = settings_module.load({"LOOP_ENV_FILE": str(env_file)}, only=("PUBLIC_URL", "CHECK_TIMEOUT"))
    assert loaded.public_url == "https://mcp.example.com" and loaded.check_timeout == 5
    with pytest.raises(AttributeError):
        loaded.nas_port  # noqa: B018
    # The file's form is the file's, whoever reads it.
    env_file.write_text("NAS_PROT=1\n")
    with pytest.raises(ConfigError, match="NAS_PROT is not a loopctl setting; did you mean NAS_PORT"):
        settings_module.load({"LOOP_ENV_FILE": str(env_file)}, only=("PUBLIC_URL",))


def test_a_near_miss_in_the_environment_warns_once_and_unrelated_names_do_not(tmp_path, capsys):
    load(tmp_path, NAS_PROT="41000", NAS_SOMETHING_ELSE="x", PATH="/bin", GIT_DIR="/x", CHECK_TIMOUT="3")
    load(tmp_path, NAS_PROT="41000")
    assert capsys.readouterr().err == (
        "warning: the environment variable NAS_PROT is not a loopctl setting; did you mean NAS_PORT?\n"
        "warning: the environment variable CHECK_TIMOUT is not a loopctl setting; did you mean CHECK_TIMEOUT?\n")


@pytest.mark.parametrize("raw", ["http://a b", "http://mcp.example.com:99999", "https://mcp.example.com/a path"])
def test_a_url_that_cannot_be_sent_is_refused(tmp_path, raw):
    assert file_error(tmp_path, "", PUBLIC_URL=raw).startswith(f"PUBLIC_URL={raw!r} is invalid: expected a URL")
