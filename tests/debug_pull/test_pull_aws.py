"""``alien debug`` on a pull-model deployment with the real aws CLI: CLI → loopback proxy →
tunnel → manager (relays, audits) → the deployment's agent (re-signs with ITS identity) → moto
with signature checks on. The manager has no AWS identity at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from dbg_world import AWS, World, s3_round_trip, signed_chunk_uploads
from debug_moto import ACCOUNT, ROLE_NAME, USER_NAME

from support.names import unique


def test_caller_identity_is_the_agents_role_named_after_the_session(world: World) -> None:
    result = world.debug(AWS, "sts", "get-caller-identity", "--query", "Arn", "--output", "text")
    assert result.returncode == 0, result.stderr
    session = world.latest_session()
    arn = result.stdout.strip()
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/alien-debug-{session['id']}"
    assert USER_NAME not in arn
    assert "through the deployment's agent" in result.stderr
    assert session["state"] == "closed" and session["exit_code"] == 0
    [request] = world.requests(session["id"])
    assert request["target"] == "sts:GetCallerIdentity"
    assert request["details"]["status"] == 200 and request["outcome"] == "succeeded"
    assert request["actor"] == {"kind": "debug_session", "id": session["id"], "role": None}
    assert request["deployment_id"] == world.deployment_id


def test_s3_up_and_down_through_the_agent(world: World, tmp_path: Path) -> None:
    s3_round_trip(world, tmp_path, size_mib=4, bucket=unique("pull"))


def test_signed_chunk_uploads_are_resigned_by_the_agent(world: World) -> None:
    signed_chunk_uploads(world, bucket=unique("chunks"))


@pytest.mark.slow
def test_s3_50mb_up_and_down_through_the_agent(world: World, tmp_path: Path) -> None:
    s3_round_trip(world, tmp_path, size_mib=50, bucket=unique("pull"))


def test_the_agent_mints_no_credentials_and_the_refusal_is_audited(world: World) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
    args = ("sts", "assume-role", "--role-arn", role, "--role-session-name", "escape")
    result = world.debug(AWS, *args)
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "outlive the debug session" in result.stderr
    [request] = world.requests(world.latest_session()["id"])
    assert request["outcome"] == "denied" and request["target"] == "sts:AssumeRole"
    assert request["details"]["status"] == 403


def test_service_outside_the_agents_allowlist_is_refused_and_audited(world: World) -> None:
    result = world.debug(AWS, "dynamodb", "list-tables")
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "'dynamodb' is not allowed" in result.stderr
    session = world.latest_session()
    [request] = world.requests(session["id"])
    assert request["outcome"] == "denied" and request["target"] == "dynamodb:ListTables"
    assert request["details"]["status"] == 403
    assert request["details"]["error"] == "FORBIDDEN"
