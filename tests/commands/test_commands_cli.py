"""``alien commands …`` against the real manager, with a test agent answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_double import CommandAgent, Deployment, echo
from typer.testing import CliRunner

from alien.cli.main import app as alien_cli
from support.manager import ManagerProcess


@pytest.fixture
def serving(commands_manager: ManagerProcess, deployment: Deployment) -> Iterator[CommandAgent]:
    with CommandAgent(commands_manager.ws_url, deployment.token) as agent:
        agent.serve(echo)
        yield agent


def _env(manager: ManagerProcess) -> dict[str, str]:
    return {"ALIEN_MANAGER_URL": manager.url, "ALIEN_TOKEN": manager.admin_key}


def run(manager: ManagerProcess, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(alien_cli, ["commands", *args], env=_env(manager))
    return result.exit_code, result.stdout, result.stderr


def test_invoke_prints_the_result(
    commands_manager: ManagerProcess, deployment: Deployment, serving: CommandAgent
) -> None:
    code, out, err = run(
        commands_manager,
        "invoke",
        "--deployment",
        deployment.ref,
        "--command",
        "generate-report",
        "--params",
        '{"start_date": "2025-01-01"}',
    )
    assert code == 0, err
    assert json.loads(out)["params"] == {"start_date": "2025-01-01"}


def test_invoke_json_target_and_params_file(
    commands_manager: ManagerProcess,
    deployment: Deployment,
    serving: CommandAgent,
    tmp_path: Path,
) -> None:
    params = tmp_path / "params.json"
    params.write_text('{"from": "file"}')
    code, out, err = run(
        commands_manager,
        "invoke",
        "-d",
        deployment.ref,
        "-c",
        "echo",
        "--target",
        "api",
        "--params",
        f"@{params}",
        "--json",
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["state"] == "succeeded" and shown["target"] == "api"
    assert shown["result"]["params"] == {"from": "file"}


def test_failures_exit_non_zero_with_one_line(
    commands_manager: ManagerProcess, deployment: Deployment, serving: CommandAgent
) -> None:
    code, out, err = run(commands_manager, "invoke", "-d", deployment.ref, "-c", "fail")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == ["error: HANDLER_ERROR: ValueError: asked to fail"]
    code, _, err = run(commands_manager, "invoke", "-d", deployment.ref, "-c", "nope")
    assert code == 1 and err.startswith("error: UNKNOWN_COMMAND: ")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(commands_manager, "invoke", "-d", deployment.ref, "-c", "echo", "-p", "[1]")
    assert code == 1 and "must be a JSON object" in err


def test_params_that_are_not_utf8_are_one_line_of_error(
    commands_manager: ManagerProcess, deployment: Deployment, serving: CommandAgent, tmp_path: Path
) -> None:
    """A params file PowerShell wrote (UTF-16) is refused in one line, not a traceback — from a
    file and from stdin; UTF-8 with a byte order mark (as Windows tools write it) is read."""
    utf16 = tmp_path / "p.json"
    utf16.write_bytes('{"from": "powershell"}'.encode("utf-16"))
    for source, stdin in ((f"@{utf16}", None), ("@-", utf16.read_bytes())):
        result = CliRunner().invoke(
            alien_cli,
            ["commands", "invoke", "-d", deployment.ref, "-c", "echo", "--params", source],
            env=_env(commands_manager),
            input=stdin,
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        assert result.exit_code == 1 and result.stdout == ""
        name = utf16 if stdin is None else "stdin"
        assert result.stderr.splitlines() == [
            f"error: VALIDATION_ERROR: cannot read {name}: it is not UTF-8 text "
            "(byte 0xff at offset 0); save it as UTF-8"
        ]
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes('{"from": "bom"}'.encode("utf-8-sig"))
    code, out, err = run(
        commands_manager, "invoke", "-d", deployment.ref, "-c", "echo", "-p", f"@{with_bom}"
    )
    assert code == 0, err
    assert json.loads(out)["params"] == {"from": "bom"}


@pytest.mark.parametrize("timeout", ["604801", "1e12", "1e300", "inf"])
def test_a_timeout_over_the_maximum_is_one_line(
    commands_manager: ManagerProcess, deployment: Deployment, timeout: str
) -> None:
    code, out, err = run(
        commands_manager, "invoke", "-d", deployment.ref, "-c", "echo", "--timeout", timeout
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: VALIDATION_ERROR: a command may run for at most 604800 seconds"
    ]


def test_timeout_expires_the_command(
    commands_manager: ManagerProcess, deployment: Deployment
) -> None:
    code, _, err = run(
        commands_manager, "invoke", "-d", deployment.ref, "-c", "echo", "--timeout", "0.5"
    )
    assert code == 1 and err.startswith("error: COMMAND_EXPIRED: ")


def test_async_get_ls_cancel(commands_manager: ManagerProcess, deployment: Deployment) -> None:
    code, out, err = run(commands_manager, "invoke", "-d", deployment.ref, "-c", "slow", "--async")
    assert code == 0, err
    command_id = out.strip()
    assert command_id.startswith("cmd_")

    code, out, _ = run(commands_manager, "get", command_id, "--json")
    assert code == 0 and json.loads(out)["state"] == "pending"
    code, out, _ = run(commands_manager, "ls", "--deployment", deployment.ref, "--json")
    assert code == 0 and [c["id"] for c in json.loads(out)] == [command_id]
    code, out, _ = run(commands_manager, "ls", "--deployment", deployment.ref)
    assert code == 0 and command_id in out

    code, out, err = run(commands_manager, "get", command_id, "--wait", "0.3")
    assert code == 3, (code, out, err)  # the wait ran out: not the exit code of an ended one
    assert "state     pending" in out
    assert err.splitlines() == [
        f"error: command {command_id} has not ended after 0.3s (state pending)"
    ]
    code, out, err = run(commands_manager, "get", command_id, "--wait", "0.3", "--json")
    assert code == 3 and json.loads(out)["state"] == "pending" and err.startswith("error: ")

    code, out, _ = run(commands_manager, "cancel", command_id, "--reason", "no longer needed")
    assert code == 0 and out.strip() == f"{command_id} cancelled"
    code, out, _ = run(commands_manager, "get", command_id)
    assert code == 0 and "cancelled" in out and "COMMAND_CANCELLED" in out
    code, out, err = run(commands_manager, "get", command_id, "--wait", "5")
    assert code == 0 and err == "" and "cancelled" in out  # ended: the wait is over at once
    code, _, err = run(commands_manager, "cancel", command_id)
    assert code == 1 and err.startswith("error: COMMAND_CANCELLED: ")


def test_get_help_says_what_a_wait_that_ran_out_exits_with() -> None:
    shown = CliRunner().invoke(alien_cli, ["commands", "get", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "exit 3" in shown.stdout


def test_ls_piped_is_whole_and_names_the_deployment(
    commands_manager: ManagerProcess, deployment: Deployment, serving: CommandAgent
) -> None:
    """``alien commands ls | cat``: no terminal, yet nothing is cut to 80 columns, and each row
    says by name which deployment the command ran on."""
    code, out, err = run(commands_manager, "invoke", "-d", deployment.ref, "-c", "generate-report")
    assert code == 0, err
    code, out, err = run(commands_manager, "ls", "-d", deployment.ref, "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    done = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", "commands", "ls", "-d", deployment.ref],
        env={**_env(commands_manager), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout, done.stdout
    lines = done.stdout.splitlines()
    header = next(_cells(line, "┃") for line in lines if " id " in line)
    assert header == ["id", "deployment", "command", "target", "state", "attempt", "created"]
    row = next(_cells(line, "│") for line in lines if listed["id"] in line)
    assert row[:5] == [
        listed["id"],
        deployment.ref,  # group/name, where the JSON has the id
        "generate-report",
        listed["target"],
        "succeeded",
    ]


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.split(bar) if cell.strip()]


def test_group_fan_out(
    commands_manager: ManagerProcess, deployment: Deployment, serving: CommandAgent
) -> None:
    code, out, err = run(commands_manager, "invoke", "-g", deployment.group, "-c", "echo", "--json")
    assert code == 0, err
    shown = json.loads(out)[deployment.ref]
    assert shown["ok"] is True and shown["command_id"].startswith("cmd_"), shown
    code, out, err = run(commands_manager, "get", shown["command_id"], "--json")
    assert code == 0, err
    ran = json.loads(out)
    assert ran["deployment_id"] == deployment.id and ran["result"] == shown["result"]


def test_usage_errors(commands_manager: ManagerProcess, deployment: Deployment) -> None:
    code, _, err = run(commands_manager, "invoke", "-c", "echo")
    assert code == 1 and "--deployment or --group" in err
    unreachable = CliRunner().invoke(
        alien_cli,
        ["commands", "ls", "--manager", "http://127.0.0.1:9"],
        env={"ALIEN_TOKEN": commands_manager.admin_key},
    )
    assert unreachable.exit_code == 1 and "MANAGER_UNREACHABLE" in unreachable.stderr


def test_real_process_exit_code(commands_manager: ManagerProcess, deployment: Deployment) -> None:
    """The installed entry point, not the in-process runner: exit status and stderr as a shell
    sees them."""
    argv = ["commands", "invoke", "-d", deployment.ref, "-c", "echo", "--timeout", "0.3"]
    done = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", *argv],
        env={**_env(commands_manager), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: COMMAND_EXPIRED: ")


def test_ctrl_c_on_invoke_says_the_command_goes_on(
    commands_manager: ManagerProcess, deployment: Deployment
) -> None:
    """Ctrl-C stops the waiting, not the command: the CLI says so instead of exiting silently."""
    argv = ["commands", "invoke", "-d", deployment.ref, "-c", "slow", "--timeout", "60"]
    waiting = subprocess.Popen(
        [sys.executable, "-m", "alien.cli.main", *argv],
        env={**os.environ, **_env(commands_manager)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    mine = ("ls", "-d", deployment.ref, "-c", "slow", "--state", "pending", "--json")
    while not json.loads(run(commands_manager, *mine)[1]):
        assert time.monotonic() < deadline and waiting.poll() is None
        time.sleep(0.1)
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 130, err
    assert err.splitlines() == [
        f"error: interrupted: the command was not cancelled and may still run (alien commands "
        f"ls --deployment {deployment.ref} --command slow; alien commands cancel ID)"
    ]
