"""``alien stack …``: good stacks exit 0 with the right output; bad ones exit 1 with one line
naming the resource, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alien.cli.stack import register
from alien.stack import dump_manifest, load_stack, manifest_digest

STACK = """\
import alien

data = alien.Storage("data")
tasks = alien.Queue("tasks")
api = (
    alien.Function("api").code(src="./api", entrypoint="app:app")
    .link(data).ingress("public").on_queue(tasks).schedule("nightly", "0 3 * * *")
    .env({"TOKEN_HINT": "do-not-print-me"})
)
stack = alien.Stack("my-app").add(api, "live").add(data, "frozen").add(tasks, "live")
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "api").mkdir()
    (tmp_path / "alien_stack.py").write_text(STACK)
    return tmp_path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_show_table(app: typer.Typer, good: Path) -> None:
    code, out, _ = run(app, "stack", "show", "--path", str(good))
    assert code == 0
    for word in ("api", "function", "live", "data", "frozen", "tasks", "queue", "TOKEN_HINT"):
        assert word in out
    assert "do-not-print-me" not in out  # env values are not shown
    assert manifest_digest(load_stack(good).manifest()) in out


def test_show_json_is_the_canonical_manifest(app: typer.Typer, good: Path) -> None:
    code, out, _ = run(app, "stack", "show", "--path", str(good / "alien_stack.py"), "--json")
    assert code == 0
    assert out.encode() == dump_manifest(load_stack(good).manifest())


def test_validate(app: typer.Typer, good: Path) -> None:
    code, out, _ = run(app, "stack", "validate", "--path", str(good), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["valid"] is True and data["resources"] == 3
    assert data["digest"].startswith("sha256:")
    code, out, _ = run(app, "stack", "validate", "--path", str(good))
    assert code == 0 and "stack my-app is valid: 3 resources" in out


def test_permissions(app: typer.Typer, good: Path) -> None:
    code, out, _ = run(app, "stack", "permissions", "--path", str(good))
    assert code == 0 and "storage:data" in out and "update-code" in out
    code, out, _ = run(app, "stack", "permissions", "--path", str(good), "--json")
    assert json.loads(out)["platform"] == "local"
    code, out, _ = run(
        app, "stack", "permissions", "--platform", "aws", "--prefix", "acme", "--path", str(good)
    )
    assert code == 0
    policy = json.loads(out)
    assert policy["Version"] == "2012-10-17"
    assert "arn:aws:s3:::acme-data" in out


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (STACK.replace("0 3 * * *", "0 3 * *"), "(resources.api.triggers[1].schedule)"),
        (STACK.replace('"./api"', '"../api"'), "(resources.api.code.src)"),
        (STACK.replace(".link(data)", '.link("ghost")'), "(resources.api.links)"),
        (STACK + "x = (\n", "alien_stack.py:11: syntax error"),
        ("import alien\nimport nowhere_to_be_found\n", "No module named 'nowhere_to_be_found'"),
    ],
)
def test_bad_stack_is_one_line_naming_the_resource(
    app: typer.Typer, good: Path, body: str, needle: str
) -> None:
    (good / "alien_stack.py").write_text(body)
    for command in (["show"], ["validate"], ["permissions", "--platform", "aws"]):
        code, out, err = run(app, "stack", *command, "--path", str(good))
        assert code == 1
        assert out == ""
        assert err.startswith("error: ") and err.count("\n") == 1
        assert needle in err
        assert "Traceback" not in err


def test_missing_code_dir_fails_validation(app: typer.Typer, good: Path) -> None:
    (good / "api").rmdir()
    code, _, err = run(app, "stack", "validate", "--path", str(good))
    assert code == 1
    assert "code directory 'api' does not exist" in err and "(resources.api.code.src)" in err


def test_bad_option_is_usage_error(app: typer.Typer, good: Path) -> None:
    code, _, _ = run(app, "stack", "permissions", "--platform", "gcp", "--path", str(good))
    assert code == 2


def test_real_entry_point(good: Path) -> None:
    """The installed ``alien`` command has the group registered and reports without a traceback."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    ok = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", "stack", "validate", "--json"],
        cwd=good,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["name"] == "my-app"
    (good / "alien_stack.py").write_text(textwrap.dedent(STACK).replace('"data"', '"Data"', 1))
    bad = subprocess.run(
        [sys.executable, "-m", "alien.cli.main", "stack", "show"],
        cwd=good,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
