"""contract.py: every name of scripts/contract.env as an attribute, and what each exit status
of a NAS script means here."""

import pytest

from loopctl import contract
from loopctl.errors import ConfigError, Locked, Refused, RemoteFailed, StillRunning


def test_every_name_of_the_contract_is_an_attribute_typed_by_one_rule():
    for name, value in contract.VALUES.items():
        assert getattr(contract, name) == contract.typed(value)
    assert contract.EXIT_LOCKED == 75 and contract.COLORS == ("blue", "green") and contract.STEP_PREFIX == "==> "
    with pytest.raises(AttributeError, match="contract.env defines no NO_SUCH_NAME"):
        contract.NO_SUCH_NAME  # noqa: B018


def test_the_exit_table_covers_every_exit_code_of_the_scripts_and_nothing_else():
    exits = {name for name in contract.VALUES if name.startswith("EXIT_")}
    assert set(contract.SCRIPT_EXITS) == exits
    assert len(contract.ERROR_OF_EXIT) == len(exits), "two EXIT_ names share a number"


@pytest.mark.parametrize("name, error, code, message", [
    ("EXIT_FAILED", RemoteFailed, 6, "rollback.sh failed (exit 1): nginx -t failed"),
    ("EXIT_USAGE", ConfigError, 2, "nginx -t failed"),
    ("EXIT_NOTHING_TO_ROLL_BACK", Refused, 7, "nginx -t failed"),
    ("EXIT_REFUSED", Refused, 7, "nginx -t failed"),
    ("EXIT_LOCKED", Locked, 7, "a deploy is already running: nginx -t failed"),
    ("EXIT_DISK_FULL", RemoteFailed, 6, "rollback.sh failed (exit 74): nginx -t failed"),
    ("EXIT_STILL_RUNNING", StillRunning, 8, "rollback.sh still runs on the NAS, though the wrapper that waits for it "
                                            "there ended; `inv status` shows when it is done"),
])
def test_each_exit_code_is_one_error_and_one_inv_exit_code(name, error, code, message):
    failure = contract.script_failure("rollback.sh", getattr(contract, name), "nginx -t failed")
    assert type(failure) is error and failure.code == code and str(failure) == message


def test_an_exit_code_outside_the_contract_is_a_failure():
    failure = contract.script_failure("prepare.sh", 3, "boom")
    assert type(failure) is RemoteFailed and str(failure) == "prepare.sh failed (exit 3): boom"


def test_a_colors_container_is_the_api_service_and_the_color():
    assert contract.api_container("loop-api", "blue") == "loop-api-blue"
