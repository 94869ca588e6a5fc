"""The pure parts of onboarding an AWS account: external ids, trusted principals, services, the
default role name, and the operator's endpoint setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import ValidationError
from alien.manager.services.aws_onboarding import (
    external_id,
    load_secret,
    services_of,
    trust_policy,
    trusted_principal,
)
from alien.manager.settings import ManagerSettings
from alien.platforms.aws.management_role import MAX_ROLE_NAME, default_role_name
from alien.stack import derive_permissions
from support.payloads import sample_manifest

names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


def test_an_external_id_is_stable_and_bound_to_its_group_and_name() -> None:
    secret = b"s" * 32
    first = external_id(secret, "grp_1", "acme")
    assert first == external_id(secret, "grp_1", "acme")
    assert first.startswith("alien-")
    assert first != external_id(secret, "grp_1", "other")
    assert first != external_id(secret, "grp_2", "acme")
    assert first != external_id(b"t" * 32, "grp_1", "acme")


@given(group=names, name=names)
def test_an_external_id_is_what_sts_accepts(group: str, name: str) -> None:
    value = external_id(b"k" * 32, group, name)
    assert 2 <= len(value) <= 1224
    assert all(c.isalnum() or c in "+=,.@:/-_" for c in value)


def test_the_secret_is_made_once_and_private(tmp_path: Path) -> None:
    secret = load_secret.__wrapped__(tmp_path)
    assert len(secret) == 32
    assert (tmp_path / "aws-external-id-secret").stat().st_mode & 0o777 == 0o600
    assert load_secret.__wrapped__(tmp_path) == secret


@pytest.mark.parametrize(
    ("caller", "trusted"),
    [
        ("arn:aws:iam::123456789012:user/manager", "arn:aws:iam::123456789012:user/manager"),
        ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
        (
            "arn:aws:sts::123456789012:assumed-role/VendorManager/i-0abc",
            "arn:aws:iam::123456789012:role/VendorManager",
        ),
        (
            "arn:aws-cn:sts::123456789012:assumed-role/M/session@x",
            "arn:aws-cn:iam::123456789012:role/M",
        ),
    ],
)
def test_an_assumed_role_is_trusted_as_its_role(caller: str, trusted: str) -> None:
    assert trusted_principal(caller) == trusted


def test_the_trust_policy_requires_the_external_id() -> None:
    [statement] = trust_policy("arn:aws:iam::1:user/m", "alien-x")["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::1:user/m"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "alien-x"}}


def test_debugging_reaches_the_services_the_stack_grants_and_sts() -> None:
    policy = derive_permissions(sample_manifest(), "aws")
    assert services_of(policy) == ["dynamodb", "s3", "sts"]
    assert services_of({"Statement": [{"Action": "logs:GetLogEvents"}]}) == ["logs", "sts"]
    assert services_of({}) == ["sts"]


@given(name=names)
def test_the_default_role_name_is_a_valid_iam_name(name: str) -> None:
    role = default_role_name(name)
    assert role.startswith("alien-")
    assert len(role) <= MAX_ROLE_NAME
    assert not role.endswith("-")


def test_the_operator_alone_points_the_manager_at_another_aws_endpoint(tmp_path: Path) -> None:
    env = {"ALIEN_DATA_DIR": str(tmp_path), "ALIEN_AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    assert ManagerSettings.from_env(env).aws_endpoint_url == "http://127.0.0.1:5000"
    assert ManagerSettings.from_env({"ALIEN_DATA_DIR": str(tmp_path)}).aws_endpoint_url is None
    with pytest.raises(ValidationError) as caught:
        ManagerSettings.from_env({**env, "ALIEN_AWS_ENDPOINT_URL": "ftp://x"})
    assert caught.value.field == "ALIEN_AWS_ENDPOINT_URL"
