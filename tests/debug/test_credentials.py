"""AssumeRole credentials against moto with signature checks on: cached, refreshed ahead."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import boto3
import pytest
from debug_moto import ACCOUNT, ROLE_NAME, MotoServer
from debug_session import REGION

from alien.errors import PlatformError, ValidationError
from alien.platforms.aws.credentials import (
    AssumeRoleCredentialProvider,
    AwsCredentials,
    role_session_name,
)


def _provider(
    moto: MotoServer, secret: str | None = None, **kwargs
) -> AssumeRoleCredentialProvider:
    base = boto3.Session(
        aws_access_key_id=moto.manager_key_id,
        aws_secret_access_key=secret or moto.manager_secret,
        region_name=REGION,
    )
    return AssumeRoleCredentialProvider(
        moto.role_arn,
        role_session_name("dbg_cred"),
        region=REGION,
        endpoint_url=moto.url,
        base_session=base,
        **kwargs,
    )


def _caller_arn(moto: MotoServer, creds: AwsCredentials) -> str:
    sts = boto3.client(
        "sts",
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )
    return sts.get_caller_identity()["Arn"]


async def test_credentials_are_the_roles_and_are_cached(moto: MotoServer) -> None:
    async with _provider(moto) as provider:
        first = await provider.get()
        assert await provider.get() is first  # no STS call per request
        assert provider.current is first
    assert _caller_arn(moto, first) == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/alien-debug-dbg_cred"
    )
    assert first.secret_access_key not in repr(first)
    assert first.session_token is not None and first.session_token not in repr(first)


async def test_refreshes_ahead_of_expiry_in_the_background(moto: MotoServer) -> None:
    # 900 s credentials refreshed 899.5 s ahead: the refresher wakes about half a second in.
    async with _provider(moto, refresh_ahead=timedelta(seconds=899.5)) as provider:
        first = await provider.get()
        fresh = await asyncio.wait_for(provider.next_refresh(), timeout=30)
        assert fresh.access_key_id != first.access_key_id
        assert await provider.get() is fresh
    assert _caller_arn(moto, fresh).endswith("/alien-debug-dbg_cred")


async def test_session_policy_is_accepted(moto: MotoServer) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::acme-*"}],
    }
    async with _provider(moto, policy=policy) as provider:
        assert (await provider.get()).session_token


async def test_failed_assume_role_is_a_platform_error(moto: MotoServer) -> None:
    provider = _provider(moto, secret="not-the-manager-secret")
    with pytest.raises(PlatformError) as failed:
        await provider.start()
    assert failed.value.field == "role_arn"
    assert "not-the-manager-secret" not in failed.value.message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_seconds": 60}, "duration_seconds"),
        ({"refresh_ahead": timedelta(hours=1)}, "refresh_ahead"),
        ({"policy": {"Version": "2012-10-17"}}, "policy"),
    ],
)
def test_bad_configuration_is_refused(moto: MotoServer, kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _provider(moto, **kwargs)
    assert refused.value.field == field


def test_role_arn_and_session_name_are_checked() -> None:
    with pytest.raises(ValidationError) as refused:
        AssumeRoleCredentialProvider("arn:aws:iam::1:user/x", "s", region=REGION)
    assert refused.value.field == "role_arn"
    assert role_session_name("dbg_a b/c" + "x" * 80).startswith("alien-debug-dbg_a-b-c")
    assert len(role_session_name("x" * 100)) == 64
