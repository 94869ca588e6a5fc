"""Runs one AWS debug session's loopback proxy as its own process, the way the CLI will.

Wiring: LoopbackProxy (SigV4 with the session keys) -> AwsResigningUpstream -> AssumeRole
credentials -> the endpoint in the config (a moto server). Reads a JSON config from stdin's
first line, prints ``{"url": ...}`` once listening, and shuts down when stdin closes, so the test
controls its life without signals or sleeps.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import boto3

from alien.debug.proxy import LoopbackProxy
from alien.platforms.aws.credentials import AssumeRoleCredentialProvider, role_session_name
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.proxy_auth import SigV4SessionAuthenticator
from alien.platforms.aws.upstream import AwsResigningUpstream


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    base = boto3.Session(
        aws_access_key_id=config["manager_key_id"],
        aws_secret_access_key=config["manager_secret"],
        region_name=config["region"],
    )
    credentials = AssumeRoleCredentialProvider(
        config["role_arn"],
        role_session_name(config["session_id"]),
        region=config["region"],
        endpoint_url=config["endpoint"],
        base_session=base,
    )
    policy = AwsEndpointPolicy.create(
        region=config["region"],
        allowed_services=config["allowed_services"],
        endpoint_override=config["endpoint"],
    )
    upstream = AwsResigningUpstream(policy, credentials)
    authenticator = SigV4SessionAuthenticator(
        config["session_key_id"], config["session_secret"], spool_dir=Path(config["spool_dir"])
    )
    loop = asyncio.get_running_loop()
    async with (
        credentials,
        LoopbackProxy(upstream, authenticator, error_response=aws_error_response) as proxy,
    ):
        print(json.dumps({"url": proxy.url}), flush=True)
        await loop.run_in_executor(None, sys.stdin.read)  # returns at EOF
    await upstream.aclose()


if __name__ == "__main__":
    asyncio.run(main())
