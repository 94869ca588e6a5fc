"""Stdlib coercion of simple CLI parameters: the same values and refusals as typer's, without
pydantic on ``alien debug``'s start-up path."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from alien.cli.fast_params import FastParamsCommand, FastParamsGroup, StdlibParam, simple_kind

app = typer.Typer(cls=FastParamsGroup)
seen: dict[str, object] = {}


@app.callback()
def _root() -> None:
    """Root."""


@app.command("run", cls=FastParamsCommand)
def run(
    name: Annotated[str, typer.Argument()],
    rest: Annotated[list[str] | None, typer.Argument()] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, max=10)] = None,
    wait: Annotated[float, typer.Option("--wait", min=0)] = 1.5,
    loud: Annotated[bool, typer.Option("--loud")] = False,
) -> None:
    seen.update(name=name, rest=rest, count=count, wait=wait, loud=loud)


def invoke(*args: str) -> tuple[int, str]:
    seen.clear()
    result = CliRunner().invoke(app, ["run", *args])
    return result.exit_code, result.output


def test_values_are_coerced_as_typer_would() -> None:
    code, _ = invoke("dep", "--count", "3", "--wait", "0.25", "--loud", "--", "aws", "--x")
    assert code == 0
    assert seen == {
        "name": "dep",
        "rest": ["aws", "--x"],
        "count": 3,
        "wait": 0.25,
        "loud": True,
    }
    assert invoke("dep")[0] == 0
    assert seen == {"name": "dep", "rest": None, "count": None, "wait": 1.5, "loud": False}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "x"], "'x' is not an integer"),
        (["--count", "0"], "below the minimum, 1"),
        (["--count", "11"], "above the maximum, 10"),
        (["--wait", "soon"], "'soon' is not a number"),
        (["--wait", "-1"], "below the minimum, 0"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_option(args: list[str], message: str) -> None:
    code, output = invoke("dep", *args)
    assert code == 2
    assert message in output
    assert args[0] in output


def test_every_parameter_on_the_path_takes_the_stdlib_coercion() -> None:
    command = typer.main.get_command(app)
    ctx = command.make_context("app", ["run", "dep"], resilient_parsing=True)
    run_command = command.get_command(ctx, "run")
    for owner in (command, run_command):
        params = owner.get_params(ctx)
        assert params and all(isinstance(p._runtime_param, StdlibParam) for p in params)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, (str, False)),
        (int | None, (int, False)),
        (list[str] | None, (str, True)),
        (list[bytes], None),
        (int | str, None),
        (dict, None),
    ],
)
def test_which_annotations_are_simple(annotation: object, expected: object) -> None:
    assert simple_kind(annotation) == expected


def test_alien_debug_parses_its_arguments_without_pydantic() -> None:
    """Up to the manager being unreachable: what ``alien debug`` does before its first call."""
    env = {**os.environ, "ALIEN_TOKEN": "ax_test", "ALIEN_MANAGER_URL": "http://127.0.0.1:9"}
    argv = [sys.executable, "-X", "importtime", "-m", "alien.cli.main", "debug", "acme/prod"]
    done = subprocess.run(
        [*argv, "--reason", "r", "--ttl", "60", "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr[-500:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "pydantic" not in imported
