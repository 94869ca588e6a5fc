"""``alien release``, ``alien deployments``, ``alien groups`` and ``alien-deploy``: exit codes
and one-line errors (never a traceback), against a real manager on SQLite."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import unique, write_app
from typer.testing import CliRunner, Result

from alien.cli.deploy import app as deploy_cli
from alien.cli.groups import NAME_PATTERN, NAME_RULE
from alien.cli.main import app as alien_cli
from alien.client import ClientConfig, ManagerClient
from alien.manager.schemas import Name
from support.manager import ManagerProcess


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    proc = ManagerProcess(tmp_path_factory.mktemp("manager")).start()
    try:
        yield proc
    finally:
        proc.stop()


def _env(manager: ManagerProcess, token: str | None = None) -> dict[str, str | None]:
    return {
        "ALIEN_MANAGER_URL": manager.url,
        "ALIEN_API_KEY": token if token is not None else manager.admin_key,
        "ALIEN_TOKEN": None,
        "ALIEN_DEPLOY_STATE_DIR": None,
        "ALIEN_GROUP_TOKEN": None,
    }


def alien(manager: ManagerProcess, *args: str, token: str | None = None) -> Result:
    return CliRunner().invoke(alien_cli, list(args), env=_env(manager, token))


def _one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_groups_tokens_release_and_listing(manager: ManagerProcess, tmp_path: Path) -> None:
    group = unique("grp")
    created = alien(manager, "groups", "create", group, "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["name"] == group
    listed = alien(manager, "groups", "ls")
    assert listed.exit_code == 0 and group in listed.stdout

    token = alien(manager, "groups", "token", "create", group)
    assert token.exit_code == 0
    assert token.stdout.strip().startswith("ax_dg_") and "\n" not in token.stdout.strip()
    assert "shown only now" in token.stderr

    # A leaked onboarding token is found and revoked from the CLI; no listing shows a secret.
    [issued] = json.loads(alien(manager, "groups", "token", "ls", group, "--json").stdout)
    assert issued["revoked_at"] is None and "token" not in issued
    table = alien(manager, "groups", "token", "ls", group)
    assert table.exit_code == 0 and issued["id"] in table.stdout and "ax_dg_" not in table.stdout
    revoked = alien(manager, "groups", "token", "revoke", group, issued["id"])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.strip() == f"onboarding token {issued['id']} of group {group} revoked"
    [gone] = json.loads(alien(manager, "groups", "token", "ls", group, "--json").stdout)
    assert gone["revoked_at"] is not None
    onboard = CliRunner().invoke(
        deploy_cli,
        ["up", "--name", "late", "--state-dir", str(tmp_path / "late")],
        env={**_env(manager), "ALIEN_GROUP_TOKEN": token.stdout.strip()},
    )
    _one_line_error(onboard, 1, "invalid or revoked token")
    typo = alien(manager, "groups", "token", "revoke", group, "gtk_nope")
    assert typo.exit_code == 1 and len(typo.stderr.strip().splitlines()) == 1

    app = write_app(tmp_path / "app", "v1")
    released = alien(manager, "release", "--path", str(app), "--group", group)
    assert released.exit_code == 0, released.output
    release_id = released.stdout.strip()
    assert release_id.startswith("rel_") and "sent to 0 deployment(s)" in released.stderr
    again = alien(manager, "release", "--path", str(app), "--json")
    body = json.loads(again.stdout)
    assert body["id"] != release_id and body["uploaded"] is False and "manifest" not in body

    listing = alien(manager, "deployments", "ls", "--json")
    assert listing.exit_code == 0 and isinstance(json.loads(listing.stdout), list)


def test_bad_input_and_bad_tokens_fail_in_one_line(manager: ManagerProcess, tmp_path: Path) -> None:
    _one_line_error(alien(manager, "release", "--path", str(tmp_path)), 1, "no alien_stack.py")
    app = write_app(tmp_path / "app", "v1")
    _one_line_error(
        alien(manager, "release", "--path", str(app), "--all", "--group", "g"), 1, "choose one"
    )
    _one_line_error(
        alien(manager, "deployments", "describe", "nope"), 1, "no deployment 'nope'", "(deployment)"
    )
    bad = "ax_key_0123456789abcdef_" + "s" * 43
    result = alien(manager, "deployments", "ls", token=bad)
    _one_line_error(result, 1, "invalid or revoked token")
    assert bad not in result.output
    _one_line_error(alien(manager, "groups", "ls", token=""), 1, "no token")
    _one_line_error(alien(manager, "groups", "create", "Bad_Name"), 1, "(NAME)")
    unreachable = CliRunner().invoke(
        alien_cli, ["deployments", "ls", "--manager", "http://127.0.0.1:9"], env=_env(manager)
    )
    _one_line_error(unreachable, 1, "cannot reach the manager at http://127.0.0.1:9")
    _one_line_error(
        CliRunner().invoke(alien_cli, ["groups", "ls", "--manager", "ftp://x"], env=_env(manager)),
        1,
        "not an http(s) URL",
    )


def test_wait_exits_3_on_timeout(manager: ManagerProcess, tmp_path: Path) -> None:
    group = unique("grp")
    alien(manager, "groups", "create", group)
    token = alien(manager, "groups", "token", "create", group).stdout.strip()
    # An onboarded deployment without an agent never runs anything.
    with ManagerClient(ClientConfig(base_url=manager.url, token=token)) as client:
        dep = client.onboard("idle", "local").deployment
    app = write_app(tmp_path / "app", "v1")
    release_id = alien(manager, "release", "--path", str(app), "--group", group).stdout.strip()
    result = alien(
        manager, "deployments", "wait", f"{group}/idle", "--release", release_id, "--timeout", "0.5"
    )
    _one_line_error(result, 3, f"{group}/idle does not run {release_id}", "state pending")
    described = alien(manager, "deployments", "describe", dep.id, "--json")
    assert json.loads(described.stdout)["desired_release"] == release_id


def test_waiting_for_a_release_that_can_never_arrive_fails_at_once(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    """A typo, or a release sent elsewhere, is refused now, naming --release, instead of
    waiting out the timeout."""
    group, other = unique("grp"), unique("grp")
    for name in (group, other):
        alien(manager, "groups", "create", name)
    token = alien(manager, "groups", "token", "create", group).stdout.strip()
    with ManagerClient(ClientConfig(base_url=manager.url, token=token)) as client:
        client.onboard("idle", "local")
    app = write_app(tmp_path / "app", "v1")
    elsewhere = alien(manager, "release", "--path", str(app), "--group", other).stdout.strip()
    started = time.monotonic()
    for release, says in (("rel_nosuch", "no release 'rel_nosuch'"), (elsewhere, "not assigned")):
        result = alien(
            manager, "deployments", "wait", f"{group}/idle", "--release", release, "--timeout", "60"
        )
        _one_line_error(result, 1, says, "(--release)")
    assert time.monotonic() - started < 10


def test_flag_errors_name_the_flag(manager: ManagerProcess) -> None:
    """A value out of range says the range and the flag the user typed, never the API field."""
    for value, says in (("0s", "'0s' is too short"), ("13h", "'13h' is too long")):
        result = alien(manager, "approvals", "approve", "cmd_x", "--for", value)
        _one_line_error(result, 1, says, "give 1s to 12h", "(--for)")
    result = alien(manager, "approvals", "approve", "cmd_x", "--for", "soon")
    _one_line_error(result, 1, "'soon' is not a duration", "(--for)")
    result = alien(manager, "debug", "acme/prod", "--reason", "x", "--ttl", "999999", "--", "true")
    _one_line_error(result, 1, "invalid --ttl: ", "43200", "(--ttl)")
    assert "ttl_seconds" not in result.stderr


def test_the_cli_checks_names_by_the_managers_rule() -> None:
    """The CLI refuses a bad name before the call, by its own copy of the manager's rule."""
    (constraints,) = [m for m in Name.__metadata__ if hasattr(m, "pattern")]
    assert constraints.pattern == NAME_PATTERN


def test_refused_values_name_the_flag_and_say_the_rule(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    """Never an API field (``name``, ``allowed_services.0``, ``targets.group.group``) nor a
    pydantic regex: the flag or argument the user typed, and the rule in words."""
    result = alien(manager, "groups", "create", "Bad_Name")
    _one_line_error(result, 1, "'Bad_Name' is not a valid group name: " + NAME_RULE, "(NAME)")
    _one_line_error(alien(manager, "groups", "token", "create", ""), 1, "GROUP is empty")

    def register_aws(deployment: str = "acme/x", **changed: str) -> Result:
        flags = {
            "--region": "eu-west-1",
            "--role-arn": "arn:aws:iam::123456789012:role/alien-management",
            "--service": "s3",
        } | {f"--{flag.replace('_', '-')}": value for flag, value in changed.items()}
        args = [arg for flag_and_value in flags.items() for arg in flag_and_value]
        return alien(manager, "deployments", "register-aws", deployment, *args)

    for result, says, named in (
        (register_aws(region="bogus"), "'bogus' is not an AWS region (like eu-west-1)", "--region"),
        (
            register_aws(endpoint_url="notaurl"),
            "'notaurl' is not an http:// or https:// URL",
            "--endpoint-url",
        ),
        (register_aws(service="S3"), "'S3' is not an AWS service's signing name", "--service"),
        (register_aws(role_arn="arn:x"), "'arn:x' is not an IAM role ARN (arn:aws:", "--role-arn"),
        (register_aws("acme/Bad_Name"), "not a valid deployment name: " + NAME_RULE, "DEPLOYMENT"),
    ):
        _one_line_error(result, 1, says, f"({named})")
        assert "pattern" not in result.stderr
        for field in ("(region)", "endpoint_url", "allowed_services", "role_arn", "(name)"):
            assert field not in result.stderr

    app = write_app(tmp_path / "app", "v1")
    result = alien(manager, "release", "--path", str(app), "--group", "")
    _one_line_error(result, 1, "--group is empty: give a group name or id", "(--group)")
    result = alien(manager, "release", "--path", str(app), "--group", "nosuch")
    _one_line_error(result, 1, "nosuch", "(--group)")
    result = alien(manager, "keys", "create", "--role", "viewer", "--group", "")
    _one_line_error(result, 1, "--group is empty: give a group name or id", "(--group)")
    result = alien(manager, "keys", "create", "--role", "viewer", "--group", "nosuch")
    _one_line_error(result, 1, "nosuch", "(--group)")


def test_a_group_scoped_key_releasing_to_all_is_told_to_name_a_group(
    manager: ManagerProcess, tmp_path: Path
) -> None:
    group = unique("grp")
    alien(manager, "groups", "create", group)
    key = alien(manager, "keys", "create", "--role", "operator", "--group", group)
    assert key.exit_code == 0, key.output
    app = write_app(tmp_path / "app", "v1")
    result = alien(manager, "release", "--path", str(app), token=key.stdout.strip())
    _one_line_error(
        result,
        1,
        "may not release to all deployments (--all, the default): name its group with --group",
    )
    assert "targets" not in result.stderr
    scoped = alien(
        manager, "release", "--path", str(app), "--group", group, token=key.stdout.strip()
    )
    assert scoped.exit_code == 0, scoped.output


def test_alien_deploy_refuses_what_it_cannot_do(tmp_path: Path, manager: ManagerProcess) -> None:
    def deploy(*args: str) -> Result:
        return CliRunner().invoke(deploy_cli, list(args), env=_env(manager))

    empty = str(tmp_path / "state")
    _one_line_error(deploy("run", "--state-dir", empty), 1, "holds no onboarded deployment")
    _one_line_error(deploy("status", "--state-dir", empty), 1, "holds no onboarded deployment")
    _one_line_error(deploy("debug", "--state-dir", empty), 1, "holds no onboarded deployment")
    _one_line_error(deploy("up", "--state-dir", empty), 1, "set ALIEN_GROUP_TOKEN=", "(token)")
    key = deploy("up", "--state-dir", empty, "--token", "ax_key_0123456789abcdef_" + "k" * 43)
    _one_line_error(key, 1, "takes the group token (ax_dg_…)", "this is an API key")
    _one_line_error(
        deploy("up", "--state-dir", empty, "--token", "x", "--platform", "gcp"), 1, "(platform)"
    )
    bad_token = "ax_dg_0123456789abcdef_" + "t" * 43
    no_region = {"AWS_REGION": None, "AWS_DEFAULT_REGION": None, "AWS_CONFIG_FILE": os.devnull}
    aws = CliRunner().invoke(
        deploy_cli,
        ["up", "--token", bad_token, "--platform", "aws", "--name", "x"],
        env={**_env(manager), **no_region},
    )
    _one_line_error(aws, 1, "--region", "(region)")
    result = deploy("up", "--state-dir", empty, "--token", bad_token, "--name", "x")
    _one_line_error(result, 1, "invalid or revoked token")
    assert bad_token not in result.output
    assert not (tmp_path / "state").exists()  # a refused first up leaves no state dir behind
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("the admin's")
    deploy("up", "--state-dir", str(kept), "--token", bad_token, "--name", "x")
    assert sorted(p.name for p in kept.iterdir()) == [
        "agent.lock",
        "downloads",
        "notes.txt",
        "packages",
    ]
